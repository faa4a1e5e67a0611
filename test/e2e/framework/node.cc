#include "node.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <regex>
#include <sstream>

#include "tessera/api/strings.h"
#include "tessera/plugin/fake_backend.h"

namespace tessera::e2e {
namespace {

absl::StatusOr<Json> ReadJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  Json parsed = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InternalError(StrCat(path, " is not JSON"));
  return parsed;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KubeletSim>> KubeletSim::Start(const Cluster& cluster,
                                                              const std::string& node) {
  static std::atomic<int> counter{0};
  std::unique_ptr<KubeletSim> k(new KubeletSim());
  k->node_ = node;
  k->root_ = StrCat(cluster.dir(), "/", node, "-", counter++);
  if (mkdir(k->root_.c_str(), 0755) != 0) return absl::InternalError("mkdir " + k->root_);
  ProcessOptions process;
  process.argv = {cluster.testenv(), "kubelet-sim", "--node",       node,
                  "--root",          k->root_,      "--kubeconfig", cluster.kubeconfig()};
  process.stdout_path = k->log_path();
  absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start(std::move(process));
  if (!p.ok()) return p.status();
  k->process_ = std::move(*p);
  absl::StatusOr<std::string> ready = k->process_->WaitForLine("KUBELET-SIM READY", 60s);
  if (!ready.ok()) {
    return absl::Status(ready.status().code(),
                        StrCat(ready.status().message(), "\n", TailFile(k->log_path(), 30)));
  }
  return k;
}

absl::StatusOr<Json> KubeletSim::Registered() const {
  return ReadJson(root_ + "/status/registered.json");
}

absl::StatusOr<Json> KubeletSim::PodStatus(const std::string& pod_uid) const {
  return ReadJson(StrCat(root_, "/status/pods/", pod_uid, ".json"));
}

absl::StatusOr<std::unique_ptr<TestPlugin>> TestPlugin::Start(const KubeletSim& kubelet,
                                                              TestPluginOptions options) {
  const char* binary = std::getenv("TESSERA_E2E_TEST_PLUGIN");
  if (binary == nullptr) return absl::FailedPreconditionError("TESSERA_E2E_TEST_PLUGIN is unset");
  std::unique_ptr<TestPlugin> t(new TestPlugin());
  t->options_ = std::move(options);
  const TestPluginOptions& o = t->options_;
  t->log_path_ = StrCat(kubelet.root(), "/", o.driver, ".log");
  t->calls_path_ = StrCat(kubelet.root(), "/", o.driver, ".calls");
  ProcessOptions process;
  process.argv = {binary,
                  "--driver-name",
                  o.driver,
                  "--node-name",
                  o.node,
                  "--registrar-dir",
                  kubelet.registry_dir(),
                  "--plugin-dir",
                  kubelet.plugin_dir(o.driver),
                  "--supported-versions",
                  StrJoin(o.supported_versions, ","),
                  "--request",
                  o.request,
                  "--device",
                  o.device,
                  "--cdi-kind",
                  t->cdi_kind(),
                  "--fail-prepare",
                  std::to_string(o.fail_prepare),
                  "--calls-log",
                  t->calls_path_};
  process.stdout_path = t->log_path_;
  absl::StatusOr<std::unique_ptr<ChildProcess>> p = ChildProcess::Start(std::move(process));
  if (!p.ok()) return p.status();
  t->process_ = std::move(*p);
  absl::StatusOr<std::string> ready = t->process_->WaitForLine("TEST-PLUGIN READY", 30s);
  if (!ready.ok()) {
    return absl::Status(ready.status().code(),
                        StrCat(ready.status().message(), "\n", TailFile(t->log_path_, 30)));
  }
  return t;
}

std::vector<Json> TestPlugin::Calls() const {
  std::vector<Json> out;
  std::istringstream lines(ReadFile(calls_path_).value_or(""));
  for (std::string line; std::getline(lines, line);) {
    Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!parsed.is_discarded()) out.push_back(std::move(parsed));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> StartTesseraPlugin(
    const Cluster& cluster, const KubeletSim& kubelet, const TesseraPluginOptions& options) {
  const std::string root = kubelet.root();
  if (mkdir((root + "/host").c_str(), 0755) != 0 && errno != EEXIST)
    return absl::InternalError("mkdir " + root + "/host");
  if (mkdir((root + "/host/proc").c_str(), 0755) != 0 && errno != EEXIST)
    return absl::InternalError("mkdir " + root + "/host/proc");
  if (absl::Status s = WriteFileAtomic(root + "/host/proc/devices",
                                       "Character devices:\n195 nvidia\n508 nvidia-caps\n");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WriteFileAtomic(root + "/gpus.yaml", options.fake_gpus_yaml); !s.ok())
    return s;
  ProcessOptions p;
  p.argv = {options.binary,
            StrCat("--node-name=", kubelet.node()),
            StrCat("--kubelet-root=", root),
            StrCat("--cdi-root=", root, "/cdi"),
            StrCat("--data-dir=", root, "/tessera"),
            StrCat("--kubeconfig=",
                   options.kubeconfig.empty() ? cluster.kubeconfig() : options.kubeconfig),
            "--gpu-backend=fake",
            StrCat("--fake-gpus=", root, "/gpus.yaml"),
            StrCat("--host-root=", root, "/host"),
            StrCat("--mps-control-binary=", options.source_dir,
                   "/kubelet-plugin/fake/nvidia-cuda-mps-control"),
            StrCat("--metrics-address=", options.metrics_address),
            "--health-address=0",
            "--heartbeat-seconds=2"};
  p.stdout_path = root + "/plugin.log";
  absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(std::move(p));
  if (!started.ok()) return started.status();
  absl::StatusOr<std::string> serving =
      (*started)->WaitForLine("tessera-kubelet-plugin serving", 30s);
  if (!serving.ok()) return serving.status();
  return started;
}

absl::StatusOr<Json> FakeGpuState(const KubeletSim& kubelet) {
  absl::StatusOr<std::string> text = ReadFile(kubelet.root() + "/tessera/fake-gpus-state.json");
  if (!text.ok()) return text.status();
  // The plugin rewrites the file with a rename and appends whole lines: what is read is complete.
  return plugin::ReadFakeGpuState(*text);
}

absl::StatusOr<std::set<std::string>> FakeMigInstances(const KubeletSim& kubelet) {
  absl::StatusOr<Json> state = FakeGpuState(kubelet);
  if (!state.ok()) return state.status();
  std::set<std::string> keys;
  for (std::size_t g = 0; g < (*state)["gpus"].size(); ++g) {
    for (const Json& i : (*state)["gpus"][g]["instances"]) {
      std::string token = i["profile"];  // "1g.10gb+me" -> "1g10gb-me", as in device names
      token.erase(std::remove(token.begin(), token.end(), '.'), token.end());
      std::replace(token.begin(), token.end(), '+', '-');
      keys.insert(StrCat(g, "/", token, "@", i["start"].get<int>()));
    }
  }
  return keys;
}

std::string MigName::Key() const { return StrCat(gpu, "/", token, "@", start); }

std::optional<MigName> ParseMig(const std::string& device) {
  static const std::regex re("gpu-([0-9]+)-mig-([0-9a-z-]+?)-p([0-9]+)(-mps|-ts)?");
  std::smatch m;
  if (!std::regex_match(device, m, re)) return std::nullopt;
  return MigName{std::stoi(m[1]), m[2], std::stoi(m[3]), m[4].matched};
}

}  // namespace tessera::e2e
