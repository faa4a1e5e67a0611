package main

// kubelet-sim: the kubelet's real plugin manager and DRA manager for one fake node. Only the
// container side is simulated: a pod whose claims were prepared is marked Running and the CDI
// device IDs the kubelet would hand to the container runtime are recorded.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	drapbv1 "k8s.io/kubelet/pkg/apis/dra/v1"
	drapbv1beta1 "k8s.io/kubelet/pkg/apis/dra/v1beta1"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
	"k8s.io/kubernetes/pkg/kubelet/cm/dra"
	"k8s.io/kubernetes/pkg/kubelet/config"
	"k8s.io/kubernetes/pkg/kubelet/pluginmanager"
)

// CDIAnnotation holds, on a pod the simulator marked Running, a JSON object mapping each
// container name to the CDI device IDs the kubelet would pass to the container runtime.
const CDIAnnotation = "kubelet-sim.tessera.dev/cdi-devices"

type kubeletSim struct {
	node      string
	root      string
	statusDir string
	client    kubernetes.Interface
	manager   *dra.Manager
	pods      cache.Indexer
	recorder  record.EventRecorder
	queue     workqueue.TypedRateLimitingInterface[types.UID]
	logger    klog.Logger

	mu       sync.Mutex
	known    map[types.UID]*corev1.Pod // last seen object, also after deletion from the API
	prepared sets.Set[types.UID]

	registered sync.Mutex
}

func runKubeletSim(args []string) int {
	fs := flag.NewFlagSet("kubelet-sim", flag.ContinueOnError)
	node := fs.String("node", "", "name of the fake Node (required)")
	root := fs.String("root", "", "kubelet root for this node: plugins_registry/, plugins/, state/ and status/ live here (required; keep it short)")
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the identity the kubelet uses")
	gates := fs.String("feature-gates", "", "kubelet feature gates (k=v,...)")
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *node == "" || *root == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "kubelet-sim: --node, --root and --kubeconfig are required")
		return 2
	}
	if *gates != "" {
		if err := utilfeature.DefaultMutableFeatureGate.Set(*gates); err != nil {
			fmt.Fprintf(os.Stderr, "kubelet-sim: --feature-gates: %v\n", err)
			return 2
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := kubeletSimMain(ctx, *node, *root, *kubeconfig); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-sim: %v\n", err)
		return 1
	}
	return 0
}

func kubeletSimMain(ctx context.Context, node, root, kubeconfig string) error {
	logger := klog.Background().WithValues("node", node)
	ctx = klog.NewContext(ctx, logger)

	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	registry := filepath.Join(root, "plugins_registry")
	for _, d := range []string{registry, filepath.Join(root, "plugins"), filepath.Join(root, "state"), filepath.Join(root, "status", "pods")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	restConfig.UserAgent = "kubelet-sim/" + node
	client, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		return err
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: node})

	s := &kubeletSim{
		node:      node,
		root:      root,
		statusDir: filepath.Join(root, "status"),
		client:    client,
		recorder:  recorder,
		logger:    logger,
		known:     map[types.UID]*corev1.Pod{},
		prepared:  sets.New[types.UID](),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.NewTypedItemExponentialFailureRateLimiter[types.UID](time.Second, 30*time.Second),
			workqueue.TypedRateLimitingQueueConfig[types.UID]{Name: "kubelet-sim"}),
	}
	if err := s.writeRegistered(map[string]registration{}); err != nil {
		return err
	}

	// Pods bound to this node.
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		}))
	podInformer := factory.Core().V1().Pods().Informer()
	s.pods = podInformer.GetIndexer()
	if _, err := podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.observe(obj) },
		UpdateFunc: func(_, obj any) { s.observe(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			s.observe(obj)
		},
	}); err != nil {
		return err
	}
	sourcesReady := config.NewSourcesReady(func(sets.Set[string]) bool { return podInformer.HasSynced() })

	// The DRA manager, as the kubelet wires it. Start wipes this node's ResourceSlices.
	s.manager, err = dra.NewManager(logger, client, filepath.Join(root, "state"))
	if err != nil {
		return err
	}
	getNode := func(ctx context.Context) (*corev1.Node, error) {
		return client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	}
	if err := s.manager.Start(ctx, s.activePods, getNode, sourcesReady); err != nil {
		return err
	}

	plugins := pluginmanager.NewPluginManager(registry, recorder)
	plugins.AddHandler(registerapi.DRAPlugin, &recordingHandler{PluginHandlerDelegate: s.manager.GetWatcherHandler(), sim: s})
	go plugins.Run(ctx, sourcesReady, ctx.Done())

	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.HasSynced) {
		return errors.New("pod informer did not sync")
	}
	go s.healthUpdates(ctx)
	go func() {
		<-ctx.Done()
		s.queue.ShutDown()
	}()
	fmt.Printf("KUBELET-SIM READY %s\n", node)
	for s.processNext(ctx) {
	}
	logger.Info("kubelet-sim stopped")
	return nil
}

// activePods is what the DRA manager's reconcile loop treats as running: pods bound here that
// are not terminal and not being deleted.
func (s *kubeletSim) activePods() []*corev1.Pod {
	var out []*corev1.Pod
	for _, obj := range s.pods.List() {
		pod := obj.(*corev1.Pod)
		if pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
			out = append(out, pod)
		}
	}
	return out
}

func (s *kubeletSim) observe(obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	s.mu.Lock()
	s.known[pod.UID] = pod
	s.mu.Unlock()
	s.queue.Add(pod.UID)
}

func (s *kubeletSim) processNext(ctx context.Context) bool {
	uid, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(uid)
	if err := s.sync(ctx, uid); err != nil {
		s.logger.Info("pod sync failed, will retry", "podUID", uid, "err", err, "retries", s.queue.NumRequeues(uid))
		s.queue.AddRateLimited(uid)
		return true
	}
	s.queue.Forget(uid)
	return true
}

// sync brings one pod to its next state: prepared and Running, or unprepared and gone.
func (s *kubeletSim) sync(ctx context.Context, uid types.UID) error {
	s.mu.Lock()
	last := s.known[uid]
	s.mu.Unlock()
	if last == nil {
		return nil
	}
	current, exists, err := s.pods.GetByKey(last.Namespace + "/" + last.Name)
	if err != nil {
		return err
	}
	var pod *corev1.Pod
	if exists && current.(*corev1.Pod).UID == uid {
		pod = current.(*corev1.Pod)
	}

	if pod == nil || pod.DeletionTimestamp != nil {
		return s.finish(ctx, last, pod != nil)
	}
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return nil
	}
	return s.run(ctx, pod)
}

// run prepares the pod's claims through the registered plugin and marks the pod Running.
func (s *kubeletSim) run(ctx context.Context, pod *corev1.Pod) error {
	attempt := s.queue.NumRequeues(pod.UID) + 1
	if err := s.manager.PrepareResources(ctx, pod); err != nil {
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedPrepareDynamicResources", "Failed to prepare dynamic resources: %v", err)
		_ = s.writePodStatus(pod, podStatusRecord{Attempts: attempt, LastError: err.Error()})
		return err
	}
	devices := map[string][]string{}
	for _, c := range pod.Spec.Containers {
		info, err := s.manager.GetResources(pod, &c)
		if err != nil {
			return fmt.Errorf("container %s: %w", c.Name, err)
		}
		ids := []string{}
		for _, d := range info.CDIDevices {
			ids = append(ids, d.Name)
		}
		devices[c.Name] = ids
	}
	if err := s.writePodStatus(pod, podStatusRecord{Attempts: attempt, Prepared: true, CDIDevices: devices}); err != nil {
		return err
	}
	s.mu.Lock()
	s.prepared.Insert(pod.UID)
	s.mu.Unlock()

	encoded, err := json.Marshal(devices)
	if err != nil {
		return err
	}
	if pod.Annotations[CDIAnnotation] != string(encoded) {
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{"uid": pod.UID, "annotations": map[string]string{CDIAnnotation: string(encoded)}},
		})
		if _, err := s.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("annotate pod: %w", err)
		}
	}
	if pod.Status.Phase == corev1.PodRunning {
		return nil
	}
	return s.markRunning(ctx, pod)
}

func (s *kubeletSim) markRunning(ctx context.Context, pod *corev1.Pod) error {
	now := metav1.Now()
	status := pod.Status.DeepCopy()
	status.Phase = corev1.PodRunning
	status.StartTime = &now
	status.HostIP = "127.0.0.1"
	status.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	for _, t := range []corev1.PodConditionType{corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
		setCondition(status, corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, LastTransitionTime: now})
	}
	status.ContainerStatuses = nil
	for _, c := range pod.Spec.Containers {
		started := true
		status.ContainerStatuses = append(status.ContainerStatuses, corev1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: &started,
			ContainerID: "sim://" + string(pod.UID) + "/" + c.Name,
			State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
		})
	}
	updated := pod.DeepCopy()
	updated.Status = *status
	if _, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("mark pod Running: %w", err)
	}
	s.logger.Info("pod running", "pod", klog.KObj(pod))
	return nil
}

func setCondition(status *corev1.PodStatus, c corev1.PodCondition) {
	for i := range status.Conditions {
		if status.Conditions[i].Type == c.Type {
			status.Conditions[i] = c
			return
		}
	}
	status.Conditions = append(status.Conditions, c)
}

// finish unprepares a pod that is being deleted (or is already gone) and removes it from the API.
func (s *kubeletSim) finish(ctx context.Context, pod *corev1.Pod, inAPI bool) error {
	if err := s.manager.UnprepareResources(ctx, pod); err != nil {
		s.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedUnprepareDynamicResources", "Failed to unprepare dynamic resources: %v", err)
		_ = s.writePodStatus(pod, podStatusRecord{LastError: err.Error()})
		return err
	}
	if inAPI {
		grace := int64(0)
		err := s.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: &grace,
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod: %w", err)
		}
		// The delete event brings the pod back here once more, to forget it.
		return nil
	}
	s.mu.Lock()
	delete(s.known, pod.UID)
	s.prepared.Delete(pod.UID)
	s.mu.Unlock()
	_ = os.Remove(filepath.Join(s.statusDir, "pods", string(pod.UID)+".json"))
	s.logger.Info("pod finished", "pod", klog.KObj(pod))
	return nil
}

// healthUpdates turns the DRA manager's device-health notifications into
// containerStatuses[].allocatedResourcesStatus, as the kubelet's status manager does.
func (s *kubeletSim) healthUpdates(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-s.manager.Updates():
			for _, uid := range u.PodUIDs {
				s.mu.Lock()
				pod := s.known[types.UID(uid)]
				s.mu.Unlock()
				if pod == nil {
					continue
				}
				current, err := s.client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
				if err != nil || current.UID != pod.UID {
					continue
				}
				s.manager.UpdateAllocatedResourcesStatus(current, &current.Status)
				if _, err := s.client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, current, metav1.UpdateOptions{}); err != nil {
					s.logger.Info("health status update failed", "pod", klog.KObj(pod), "err", err)
				}
			}
		}
	}
}

type podStatusRecord struct {
	Pod        string              `json:"pod"`
	UID        types.UID           `json:"uid"`
	Prepared   bool                `json:"prepared"`
	Attempts   int                 `json:"attempts,omitempty"`
	LastError  string              `json:"lastError,omitempty"`
	CDIDevices map[string][]string `json:"cdiDevices,omitempty"`
	Time       time.Time           `json:"time"`
}

func (s *kubeletSim) writePodStatus(pod *corev1.Pod, r podStatusRecord) error {
	r.Pod = pod.Namespace + "/" + pod.Name
	r.UID = pod.UID
	r.Time = time.Now().UTC()
	return writeJSONAtomic(filepath.Join(s.statusDir, "pods", string(pod.UID)+".json"), r)
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// registration is one entry of status/registered.json.
type registration struct {
	Endpoint          string    `json:"endpoint"`
	SupportedServices []string  `json:"supportedServices"`
	ChosenService     string    `json:"chosenService"`
	Time              time.Time `json:"time"`
}

func (s *kubeletSim) writeRegistered(drivers map[string]registration) error {
	return writeJSONAtomic(filepath.Join(s.statusDir, "registered.json"), drivers)
}

func (s *kubeletSim) readRegistered() map[string]registration {
	out := map[string]registration{}
	data, err := os.ReadFile(filepath.Join(s.statusDir, "registered.json"))
	if err == nil {
		_ = json.Unmarshal(data, &out)
	}
	return out
}

// PluginHandlerDelegate is the DRA manager's plugin handler.
type PluginHandlerDelegate interface {
	ValidatePlugin(pluginName string, endpoint string, versions []string) error
	RegisterPlugin(pluginName, endpoint string, versions []string, pluginClientTimeout *time.Duration) error
	DeRegisterPlugin(pluginName, endpoint string)
}

// recordingHandler passes every call to the DRA manager and records the outcome in
// status/registered.json, for tests to wait on.
type recordingHandler struct {
	PluginHandlerDelegate
	sim *kubeletSim
}

// kubeletServices are the DRA services this kubelet speaks, most preferred first; the manager
// picks the first entry of the plugin's list that is among them.
var kubeletServices = []string{drapbv1.DRAPluginService, drapbv1beta1.DRAPluginService}

func (h *recordingHandler) RegisterPlugin(name, endpoint string, versions []string, timeout *time.Duration) error {
	err := h.PluginHandlerDelegate.RegisterPlugin(name, endpoint, versions, timeout)
	if err != nil {
		return err
	}
	chosen := ""
	for _, v := range versions {
		if slices.Contains(kubeletServices, v) {
			chosen = v
			break
		}
	}
	h.sim.registered.Lock()
	defer h.sim.registered.Unlock()
	drivers := h.sim.readRegistered()
	drivers[name] = registration{Endpoint: endpoint, SupportedServices: versions, ChosenService: chosen, Time: time.Now().UTC()}
	if werr := h.sim.writeRegistered(drivers); werr != nil {
		h.sim.logger.Error(werr, "writing registered.json")
	}
	h.sim.logger.Info("plugin registered", "driver", name, "endpoint", endpoint, "service", chosen)
	return nil
}

func (h *recordingHandler) DeRegisterPlugin(name, endpoint string) {
	h.PluginHandlerDelegate.DeRegisterPlugin(name, endpoint)
	h.sim.registered.Lock()
	defer h.sim.registered.Unlock()
	drivers := h.sim.readRegistered()
	if r, ok := drivers[name]; ok && r.Endpoint == endpoint {
		delete(drivers, name)
	}
	if werr := h.sim.writeRegistered(drivers); werr != nil {
		h.sim.logger.Error(werr, "writing registered.json")
	}
	h.sim.logger.Info("plugin deregistered", "driver", name, "endpoint", endpoint)
}
