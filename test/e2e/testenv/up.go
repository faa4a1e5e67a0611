package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	// Controllers that need no kubelet. Not run: node-lifecycle and taint-eviction (they would
	// mark the fake nodes Unknown and evict everything) and the service-account controllers.
	defaultControllers = "resourceclaim-controller,garbage-collector-controller,namespace-controller,device-taint-eviction-controller"

	// Labels a GPU node carries in real clusters: Node Feature Discovery's PCI vendor label and
	// the NVIDIA GPU feature discovery label.
	defaultGPUNodeLabels = "feature.node.kubernetes.io/pci-10de.present=true,nvidia.com/gpu.present=true"
)

type upOptions struct {
	dir            string
	nodes          []string
	featureGates   string
	runtimeConfig  string
	controllers    string
	nodeLabels     map[string]string
	verbosity      int
	emulated       string // "" or "1.NN": the control plane emulates that minor
	kubeletVersion string
	readyTimeout   time.Duration
}

var minorVersionRE = regexp.MustCompile(`^1\.(\d+)$`)

func parseUpFlags(args []string) (*upOptions, error) {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	o := &upOptions{}
	var nodes, labels string
	fs.StringVar(&o.dir, "dir", "", "directory for PKI, kubeconfig, env file and logs (required; keep it short: unix socket paths are limited to 108 bytes)")
	fs.StringVar(&nodes, "nodes", "n0", "comma-separated names of the fake Nodes to create")
	fs.StringVar(&o.featureGates, "feature-gates", "", "feature gates for kube-apiserver, kube-scheduler and kube-controller-manager (k=v,...)")
	fs.StringVar(&o.runtimeConfig, "runtime-config", "", "kube-apiserver --runtime-config, e.g. resource.k8s.io/v1beta2=true")
	fs.StringVar(&o.controllers, "controllers", defaultControllers, "kube-controller-manager --controllers")
	fs.StringVar(&labels, "node-labels", "", "extra labels for every fake Node (k=v,...)")
	fs.IntVar(&o.verbosity, "log-verbosity", 1, "klog verbosity of the components")
	fs.StringVar(&o.emulated, "version-skew", "", "run the control plane as an older minor (1.NN, passed as --emulated-version); fake Nodes then report kubelet v1.NN.0")
	fs.StringVar(&o.kubeletVersion, "kubelet-version", "", "kubelet version the fake Nodes report (default: the pinned or emulated version)")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", 120*time.Second, "how long each component may take to become ready")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.dir == "" {
		return nil, errors.New("--dir is required")
	}
	for _, n := range strings.Split(nodes, ",") {
		if n = strings.TrimSpace(n); n != "" {
			o.nodes = append(o.nodes, n)
		}
	}
	if len(o.nodes) == 0 {
		return nil, errors.New("--nodes: at least one node name is required")
	}
	var err error
	if o.nodeLabels, err = parseKeyValues(defaultGPUNodeLabels + "," + labels); err != nil {
		return nil, fmt.Errorf("--node-labels: %w", err)
	}
	if o.emulated != "" && !minorVersionRE.MatchString(o.emulated) {
		return nil, fmt.Errorf("--version-skew: %q is not a version of the form 1.NN", o.emulated)
	}
	if o.kubeletVersion == "" {
		o.kubeletVersion = kubernetesVersion()
		if o.emulated != "" {
			o.kubeletVersion = "v" + o.emulated + ".0"
		}
	}
	return o, nil
}

func parseKeyValues(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

// cluster is the running control plane.
type cluster struct {
	o          *upOptions
	start      time.Time
	pki        *pki
	logDir     string
	etcdDir    string
	kubeconfig string
	apiserver  string
	children   []*child // in start order
}

func (c *cluster) progress(format string, args ...any) {
	fmt.Printf("[%6.2fs] %s\n", time.Since(c.start).Seconds(), fmt.Sprintf(format, args...))
}

func runUp(args []string) int {
	o, err := parseUpFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Printf("FAILED: %v\n", err)
		return 2
	}
	c := &cluster{o: o, start: time.Now()}

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	// SIGUSR1 restarts kube-apiserver on the same port (for tests of clients that must survive it).
	restarts := make(chan os.Signal, 1)
	signal.Notify(restarts, syscall.SIGUSR1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		s := <-signals
		fmt.Printf("received %s, stopping\n", s)
		cancel()
	}()

	err = c.up(ctx)
	if err != nil {
		fmt.Printf("FAILED: %v\n", err)
		c.down()
		return 1
	}
	fmt.Println("READY")

	// Run until a signal, or until a component dies on its own.
	exited := make(chan *child, len(c.children)+16)
	watch := func(ch *child) {
		go func() {
			<-ch.exited
			exited <- ch
		}()
	}
	for _, ch := range c.children {
		watch(ch)
	}
	rc := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case ch := <-exited:
			if ch.replaced {
				continue
			}
			if ctx.Err() == nil {
				fmt.Printf("FAILED: %s\n", ch.exitReason())
				rc = 1
			}
			break loop
		case <-restarts:
			ch, err := c.restartAPIServer(ctx)
			if err != nil {
				fmt.Printf("FAILED: restarting kube-apiserver: %v\n", err)
				rc = 1
				break loop
			}
			watch(ch)
			fmt.Println("APISERVER RESTARTED")
		}
	}
	c.reportMemory()
	c.down()
	return rc
}

func (c *cluster) up(ctx context.Context) error {
	o := c.o
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	c.logDir = filepath.Join(o.dir, "logs")
	for _, d := range []string{o.dir, c.logDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if c.pki, err = newPKI(filepath.Join(o.dir, "pki")); err != nil {
		return fmt.Errorf("PKI: %w", err)
	}
	c.kubeconfig = filepath.Join(o.dir, "admin.kubeconfig")

	// etcd's data lives in memory when /dev/shm is there; it is removed on shutdown.
	if c.etcdDir, err = os.MkdirTemp("/dev/shm", "tessera-etcd-"); err != nil {
		c.etcdDir = filepath.Join(o.dir, "etcd")
	}
	c.progress("directory %s, etcd data in %s", o.dir, c.etcdDir)

	etcdURL, err := c.startEtcd(ctx)
	if err != nil {
		return err
	}
	if err := c.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	if err := c.pki.writeKubeconfig(c.kubeconfig, c.apiserver); err != nil {
		return err
	}
	if err := c.createNodes(ctx); err != nil {
		return err
	}
	for _, name := range []string{"kube-scheduler", "kube-controller-manager"} {
		if err := c.startController(ctx, name); err != nil {
			return err
		}
	}
	return c.writeEnv()
}

// startWithRetry starts a component on fresh ports until it is ready, picking new ports when
// another process took one meanwhile.
func (c *cluster) startWithRetry(ctx context.Context, name string, ports int, argsFor func([]int) []string, ready func([]int) func() error) error {
	began := time.Now()
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		p, err := freePorts(ports)
		if err != nil {
			return err
		}
		ch, err := startChild(name, filepath.Join(c.logDir, name+".log"), argsFor(p))
		if err != nil {
			return err
		}
		c.children = append(c.children, ch)
		err = waitReady(ch, c.o.readyTimeout, func() error {
			if ctx.Err() != nil {
				return nil
			}
			return ready(p)()
		})
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err == nil {
			c.progress("%s ready (pid %d, ports %v) in %.2fs", name, ch.pid(), p, time.Since(began).Seconds())
			return nil
		}
		ch.stop(5 * time.Second)
		c.children = c.children[:len(c.children)-1]
		if attempt < 3 && ch.addressInUse() {
			c.progress("%s: a port was taken meanwhile, retrying with new ports", name)
			continue
		}
		return err
	}
}

func (c *cluster) startEtcd(ctx context.Context) (string, error) {
	var url string
	err := c.startWithRetry(ctx, "etcd", 2, func(p []int) []string {
		client := fmt.Sprintf("http://127.0.0.1:%d", p[0])
		peer := fmt.Sprintf("http://127.0.0.1:%d", p[1])
		url = client
		return []string{
			"--name=e2e", "--data-dir=" + c.etcdDir,
			"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=e2e=" + peer,
			"--unsafe-no-fsync", "--log-level=warn",
		}
	}, func(p []int) func() error {
		return func() error {
			body, err := httpGet(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/health", p[0]))
			if err == nil && !strings.Contains(body, `"health":"true"`) {
				err = fmt.Errorf("health: %s", body)
			}
			return err
		}
	})
	return url, err
}

func (c *cluster) adminHTTPClient() (*http.Client, error) {
	cert, err := tls.LoadX509KeyPair(c.pki.AdminCertFile, c.pki.AdminKeyFile)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(c.pki.CACertFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}, nil
}

// restartAPIServer stops kube-apiserver and starts it again with the same flags and port.
func (c *cluster) restartAPIServer(ctx context.Context) (*child, error) {
	for i, old := range c.children {
		if old.name != "kube-apiserver" {
			continue
		}
		old.replaced = true
		began := time.Now()
		old.stop(30 * time.Second)
		client, err := c.adminHTTPClient()
		if err != nil {
			return nil, err
		}
		ch, err := startChild(old.name, old.logPath, old.args)
		if err != nil {
			return nil, err
		}
		c.children[i] = ch
		err = waitReady(ch, c.o.readyTimeout, func() error {
			if ctx.Err() != nil {
				return nil
			}
			body, err := httpGet(client, c.apiserver+"/readyz")
			if err != nil {
				return fmt.Errorf("%v %s", err, body)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		c.progress("kube-apiserver restarted (pid %d) in %.2fs", ch.pid(), time.Since(began).Seconds())
		return ch, nil
	}
	return nil, fmt.Errorf("no kube-apiserver running")
}

func (c *cluster) startAPIServer(ctx context.Context, etcdURL string) error {
	client, err := c.adminHTTPClient()
	if err != nil {
		return err
	}
	return c.startWithRetry(ctx, "kube-apiserver", 1, func(p []int) []string {
		c.apiserver = fmt.Sprintf("https://127.0.0.1:%d", p[0])
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(p[0]),
			"--tls-cert-file=" + c.pki.ServingCertFile, "--tls-private-key-file=" + c.pki.ServingKeyFile,
			"--client-ca-file=" + c.pki.CACertFile,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-account-key-file=" + c.pki.ServiceAccountPub,
			"--service-account-signing-key-file=" + c.pki.ServiceAccountKey,
			"--service-cluster-ip-range=10.0.0.0/24",
			"--authorization-mode=Node,RBAC",
			// No kubelet publishes 127.0.0.1 as the `kubernetes` endpoint; the reconciler would
			// keep failing.
			"--endpoint-reconciler-type=none",
			// No service-account controller runs, and TaintNodesByCondition would put a
			// not-ready taint on every new Node.
			"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
			"--allow-privileged=true",
			"--profiling=false",
			"--v=" + strconv.Itoa(c.o.verbosity),
		}
		if c.o.runtimeConfig != "" {
			args = append(args, "--runtime-config="+c.o.runtimeConfig)
		}
		return append(args, c.commonFlags()...)
	}, func([]int) func() error {
		return func() error {
			body, err := httpGet(client, c.apiserver+"/readyz")
			if err != nil {
				return fmt.Errorf("%v %s", err, body)
			}
			return nil
		}
	})
}

// commonFlags are the flags every control-plane component gets.
func (c *cluster) commonFlags() []string {
	var out []string
	if c.o.featureGates != "" {
		out = append(out, "--feature-gates="+c.o.featureGates)
	}
	if c.o.emulated != "" {
		out = append(out, "--emulated-version="+c.o.emulated)
	}
	return out
}

func (c *cluster) startController(ctx context.Context, name string) error {
	insecure := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	return c.startWithRetry(ctx, name, 1, func(p []int) []string {
		args := []string{
			"--kubeconfig=" + c.kubeconfig,
			"--authentication-kubeconfig=" + c.kubeconfig,
			"--authorization-kubeconfig=" + c.kubeconfig,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(p[0]),
			"--cert-dir=" + filepath.Join(c.o.dir, "pki", name),
			"--v=" + strconv.Itoa(c.o.verbosity),
		}
		if name == "kube-controller-manager" {
			args = append(args, "--controllers="+c.o.controllers)
		}
		return append(args, c.commonFlags()...)
	}, func(p []int) func() error {
		return func() error {
			_, err := httpGet(insecure, fmt.Sprintf("https://127.0.0.1:%d/healthz", p[0]))
			return err
		}
	})
}

func httpGet(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(body), nil
}

// createNodes creates one Ready Node per name, with the labels and resources the scheduler
// needs, and no taints.
func (c *cluster) createNodes(ctx context.Context) error {
	config, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	for _, name := range c.o.nodes {
		labels := map[string]string{
			"kubernetes.io/hostname": name,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
		}
		for k, v := range c.o.nodeLabels {
			labels[k] = v
		}
		node, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		}, metav1.CreateOptions{FieldValidation: "Strict"})
		if err != nil {
			return fmt.Errorf("create Node %s: %w", name, err)
		}
		node.Status = fakeNodeStatus(c.o.kubeletVersion)
		if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("set status of Node %s: %w", name, err)
		}
	}
	c.progress("created %d Ready node(s): %s (kubelet %s)", len(c.o.nodes), strings.Join(c.o.nodes, ","), c.o.kubeletVersion)
	return nil
}

func fakeNodeStatus(kubeletVersion string) corev1.NodeStatus {
	now := metav1.Now()
	resources := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("16"),
		corev1.ResourceMemory: resource.MustParse("64Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	return corev1.NodeStatus{
		Capacity:    resources,
		Allocatable: resources,
		Phase:       corev1.NodeRunning,
		Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady",
			Message: "kubelet-sim node", LastHeartbeatTime: now, LastTransitionTime: now,
		}},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: kubeletVersion, OperatingSystem: "linux", Architecture: "amd64",
		},
	}
}

func (c *cluster) writeEnv() error {
	lines := []string{
		"KUBECONFIG=" + c.kubeconfig,
		"APISERVER=" + c.apiserver,
		"NODES=" + strings.Join(c.o.nodes, ","),
		"K8S_VERSION=" + kubernetesVersion(),
		"EMULATED_VERSION=" + c.o.emulated,
		"KUBELET_VERSION=" + c.o.kubeletVersion,
		"FEATURE_GATES=" + c.o.featureGates,
		"RUNTIME_CONFIG=" + c.o.runtimeConfig,
		"LOG_DIR=" + c.logDir,
		"UP_PID=" + strconv.Itoa(os.Getpid()),
	}
	c.progress("wrote %s", filepath.Join(c.o.dir, "env"))
	return os.WriteFile(filepath.Join(c.o.dir, "env"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

// reportMemory prints the resident memory of each component, for the record.
func (c *cluster) reportMemory() {
	var parts []string
	total := 0
	for _, ch := range c.children {
		if kb := rssKiB(ch.pid()); kb > 0 {
			parts = append(parts, fmt.Sprintf("%s=%dMiB", ch.name, kb/1024))
			total += kb
		}
	}
	sort.Strings(parts)
	fmt.Printf("rss: %s total=%dMiB\n", strings.Join(parts, " "), total/1024)
}

func rssKiB(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return kb
		}
	}
	return 0
}

// down stops the components in reverse start order and removes etcd's data.
func (c *cluster) down() {
	for i := len(c.children) - 1; i >= 0; i-- {
		ch := c.children[i]
		began := time.Now()
		ch.stop(10 * time.Second)
		c.progress("stopped %s in %.2fs", ch.name, time.Since(began).Seconds())
	}
	if strings.HasPrefix(c.etcdDir, "/dev/shm/") {
		_ = os.RemoveAll(c.etcdDir)
	}
}
