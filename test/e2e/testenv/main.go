// Command testenv is tessera's end-to-end test environment: one multi-call binary that runs etcd,
// the Kubernetes control-plane components, an orchestrator that starts them ("up") and a kubelet
// simulator built from the kubelet's own DRA code ("kubelet-sim"). Every role runs in its own process.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"

	// The same registrations the upstream mains import.
	_ "time/tzdata"

	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
)

type role struct {
	summary string
	run     func(args []string) int
}

var roles = map[string]role{
	"etcd":                    {"the etcd server (go.etcd.io/etcd/server/v3)", runEtcd},
	"kube-apiserver":          {"the upstream kube-apiserver command", runAPIServer},
	"kube-scheduler":          {"the upstream kube-scheduler command", runScheduler},
	"kube-controller-manager": {"the upstream kube-controller-manager command", runControllerManager},
	"up":                      {"start a whole control plane and fake nodes (see `testenv up --help`)", runUp},
	"kubelet-sim":             {"the kubelet's plugin and DRA managers for one fake node", runKubeletSim},
	"kubectl":                 {"the upstream kubectl, same version as the control plane", runKubectl},
	"version":                 {"print the pinned Kubernetes and etcd versions", runVersion},
}

func usage() {
	names := make([]string, 0, len(roles))
	for name := range roles {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: testenv ROLE [ARGS...]\n\nroles:\n")
	for _, name := range names {
		fmt.Fprintf(&b, "  %-24s %s\n", name, roles[name].summary)
	}
	fmt.Fprint(os.Stderr, b.String())
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	r, ok := roles[os.Args[1]]
	if !ok {
		if os.Args[1] != "-h" && os.Args[1] != "--help" && os.Args[1] != "help" {
			fmt.Fprintf(os.Stderr, "testenv: unknown role %q\n\n", os.Args[1])
		}
		usage()
		os.Exit(2)
	}
	os.Exit(r.run(os.Args[2:]))
}
