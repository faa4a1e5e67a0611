#ifndef TESSERA_TEST_E2E_FRAMEWORK_NODE_H_
#define TESSERA_TEST_E2E_FRAMEWORK_NODE_H_

// What runs on a fake node: the kubelet simulator (the kubelet's own plugin manager and DRA
// manager, from `testenv kubelet-sim`) and a kubelet plugin registered with it.

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cluster.h"
#include "process.h"

namespace tessera::e2e {

class KubeletSim {
 public:
  // Starts `testenv kubelet-sim` for `node` with a fresh root under the cluster's directory and
  // waits until it watches its plugin registry. Starting it deletes the node's ResourceSlices,
  // as the kubelet does.
  static absl::StatusOr<std::unique_ptr<KubeletSim>> Start(const Cluster& cluster,
                                                           const std::string& node);

  const std::string& node() const { return node_; }
  const std::string& root() const { return root_; }
  std::string registry_dir() const { return root_ + "/plugins_registry"; }
  std::string plugin_dir(const std::string& driver) const { return root_ + "/plugins/" + driver; }
  std::string log_path() const { return root_ + "/kubelet-sim.log"; }

  // status/registered.json: driver name -> {endpoint, supportedServices, chosenService, time}.
  absl::StatusOr<Json> Registered() const;
  // status/pods/<uid>.json: {prepared, attempts, lastError, cdiDevices}.
  absl::StatusOr<Json> PodStatus(const std::string& pod_uid) const;
  int Stop() { return process_->Stop(); }

 private:
  KubeletSim() = default;
  std::string node_;
  std::string root_;
  std::unique_ptr<ChildProcess> process_;
};

// tessera-e2e-test-plugin: a minimal DRA kubelet plugin (C++, tessera's own protos) that answers
// every claim with one device and the CDI ID "<cdi kind>=<claim uid>", and logs every call.
struct TestPluginOptions {
  std::string driver{};  // set by the fixture
  std::string node{};
  std::vector<std::string> supported_versions = {"v1.DRAPlugin", "v1beta1.DRAPlugin"};
  std::string request = "gpu";
  std::string device = "gpu-0";
  int fail_prepare = 0;  // the first N NodePrepareResources calls fail
};

class TestPlugin {
 public:
  static absl::StatusOr<std::unique_ptr<TestPlugin>> Start(const KubeletSim& kubelet,
                                                           TestPluginOptions options);

  const TestPluginOptions& options() const { return options_; }
  std::string cdi_kind() const { return "e2e.tessera.dev/test"; }
  std::string log_path() const { return log_path_; }
  // The calls the plugin served, one JSON object per line of its calls log.
  std::vector<Json> Calls() const;
  int Stop() { return process_->Stop(); }

 private:
  TestPlugin() = default;
  TestPluginOptions options_;
  std::string log_path_;
  std::string calls_path_;
  std::unique_ptr<ChildProcess> process_;
};

// tessera-kubelet-plugin with the fake GPU backend on `kubelet`'s node: writes the host's
// /proc/devices (nvidia and nvidia-caps majors) and the fake GPU description below the kubelet
// root, starts the plugin with its data, CDI and host roots there (heartbeat every 2 s, health
// endpoint off; the log is <root>/plugin.log) and waits until it serves.
struct TesseraPluginOptions {
  std::string binary{};          // tessera-kubelet-plugin
  std::string source_dir{};      // the repository (for the fake nvidia-cuda-mps-control)
  std::string fake_gpus_yaml{};  // e.g. "gpus:\n- model: h100-80gb\n  count: 2\n"
  std::string metrics_address = "0";
  std::string kubeconfig{};  // empty: the cluster's admin kubeconfig
};
absl::StatusOr<std::unique_ptr<ChildProcess>> StartTesseraPlugin(
    const Cluster& cluster, const KubeletSim& kubelet, const TesseraPluginOptions& options);

// The fake GPUs' state file of the plugin StartTesseraPlugin runs on `kubelet`'s node.
absl::StatusOr<Json> FakeGpuState(const KubeletSim& kubelet);
// The MIG instances on those fake GPUs, as MigName::Key() spells them.
absl::StatusOr<std::set<std::string>> FakeMigInstances(const KubeletSim& kubelet);

// A MIG device name of tessera's ("gpu-1-mig-3g40gb-p4", "...-mps", "...-ts"), taken apart.
struct MigName {
  int gpu = -1;
  std::string token;  // "3g40gb"
  int start = -1;
  bool share = false;
  // "<gpu>/<token>@<start>", as FakeMigInstances writes the fake GPUs' instances.
  std::string Key() const;
};
std::optional<MigName> ParseMig(const std::string& device);

}  // namespace tessera::e2e

#endif  // TESSERA_TEST_E2E_FRAMEWORK_NODE_H_
