// tessera-kubelet-plugin: prepares and unprepares ResourceClaims on one GPU node.
//
// Start-up order (dra-protocol §10.1): flags, GPU backend, checkpoint, reconcile, then the DRA
// socket, then the registration socket, then the GpuInventory heartbeat. SIGTERM/SIGINT stop in
// reverse order. Every flag can also be set through the environment variable named in --help.
#include <malloc.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <thread>

#include "CLI/CLI.hpp"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/kube/client.h"
#include "tessera/kube/config.h"
#include "tessera/plugin/cdi.h"
#include "tessera/plugin/checkpoint.h"
#include "tessera/plugin/device_nodes.h"
#include "tessera/plugin/driver_files.h"
#include "tessera/plugin/fake_backend.h"
#include "tessera/plugin/files.h"
#include "tessera/plugin/inventory.h"
#include "tessera/plugin/metrics.h"
#include "tessera/plugin/mps.h"
#include "tessera/plugin/nvml_backend.h"
#include "tessera/plugin/prepare.h"
#include "tessera/plugin/server.h"
#include "tessera/tools/cli.h"
#include "tessera/tools/http_endpoints.h"

namespace {

using tessera::StrCat;
namespace plugin = tessera::plugin;

struct Flags {
  std::string node_name;
  std::string driver_name = "gpu.tessera.dev";
  std::string kubelet_root = "/var/lib/kubelet";
  std::string plugin_dir;  // default <kubelet root>/plugins/<driver>
  std::string data_dir;    // default the plugin dir
  std::string cdi_root = "/var/run/cdi";
  std::string kubeconfig;
  std::string backend = "nvml";
  std::string fake_gpus;
  std::string driver_root = "/";
  std::string host_driver_root;  // default: driver_root
  std::string nvml_library;
  std::string host_root = "/";
  std::string mps_control_binary;
  tessera::tools::CommonFlags common;  // address defaults are set in main
  std::string pod_uid;
  int heartbeat_seconds = 10;
  std::string lock_scope = "gpu";
  std::string boot_id_file = "/proc/sys/kernel/random/boot_id";
};

absl::StatusOr<std::unique_ptr<plugin::GpuBackend>> OpenBackend(const Flags& f) {
  if (f.backend == "fake") {
    if (f.fake_gpus.empty()) {
      return absl::InvalidArgumentError("--gpu-backend=fake needs --fake-gpus FILE");
    }
    absl::StatusOr<std::string> text = plugin::ReadWholeFile(f.fake_gpus);
    if (!text.ok()) return text.status();
    absl::StatusOr<plugin::FakeNodeSpec> spec = plugin::ParseFakeNodeSpec(*text);
    if (!spec.ok()) {
      return absl::InvalidArgumentError(StrCat(f.fake_gpus, ": ", spec.status().message()));
    }
    auto backend =
        plugin::FakeGpuBackend::Open(*std::move(spec), StrCat(f.data_dir, "/fake-gpus-state.json"));
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<plugin::GpuBackend>(std::move(*backend));
  }
  if (f.backend == "nvml") {
    auto backend = plugin::NvmlBackend::Open({.driver_root = f.driver_root,
                                              .library_path = f.nvml_library,
                                              .nvidia_smi_path = {},
                                              .watch_events = true});
    if (!backend.ok()) return backend.status();
    return std::unique_ptr<plugin::GpuBackend>(std::move(*backend));
  }
  return absl::InvalidArgumentError(
      StrCat("--gpu-backend: \"", f.backend, "\" is not one of nvml, fake"));
}

int Fail(const absl::Status& s) {
  spdlog::critical("{}", std::string(s.message()));
  std::cerr << "tessera-kubelet-plugin: " << s.message() << std::endl;
  return 1;
}

int Serve(Flags f) {
  if (f.node_name.empty()) return Fail(absl::InvalidArgumentError("--node-name is required"));
  if (f.plugin_dir.empty()) f.plugin_dir = StrCat(f.kubelet_root, "/plugins/", f.driver_name);
  if (f.data_dir.empty()) f.data_dir = f.plugin_dir;
  absl::StatusOr<plugin::LockScope> lock_scope = plugin::ParseLockScope(f.lock_scope);
  if (!lock_scope.ok()) {
    return Fail(absl::InvalidArgumentError(
        StrCat("--lock-scope (TESSERA_LOCK_SCOPE): ", lock_scope.status().message())));
  }
  std::error_code ec;
  std::filesystem::create_directories(f.data_dir, ec);
  if (ec)
    return Fail(
        absl::FailedPreconditionError(StrCat("--data-dir ", f.data_dir, ": ", ec.message())));

  absl::StatusOr<std::unique_ptr<plugin::GpuBackend>> backend = OpenBackend(f);
  if (!backend.ok()) return Fail(backend.status());

  std::string boot_id = plugin::ReadBootId(f.boot_id_file);
  if (boot_id.empty()) {
    spdlog::warn("cannot read the boot ID from {}; reboots cannot be told from restarts",
                 f.boot_id_file);
  }
  plugin::CheckpointLoadReport loaded;
  auto checkpoint =
      plugin::CheckpointStore::Open(StrCat(f.data_dir, "/checkpoint"), boot_id, &loaded);
  if (!checkpoint.ok()) return Fail(checkpoint.status());
  for (const std::string& c : loaded.corrupt)
    spdlog::error("corrupt checkpoint moved aside: {}", c);
  if (!loaded.other_boot.empty()) {
    spdlog::warn("the node rebooted: forgot {} prepared claim(s) of the previous boot",
                 loaded.other_boot.size());
  }

  plugin::CdiWriter cdi(f.cdi_root);
  // A spec, like a checkpoint record, matters only within its boot (see checkpoint.h).
  cdi.set_sync(checkpoint->get()->sync());
  absl::StatusOr<plugin::DeviceNodes> nodes = plugin::DeviceNodes::Load(f.host_root);
  if (!nodes.ok()) return Fail(nodes.status());

  // Before Start(): it rewrites the CDI specs of prepared claims whose spec is missing.
  plugin::DriverFiles driver_files(
      {.driver_root = f.driver_root,
       .host_driver_root = f.host_driver_root.empty() ? f.driver_root : f.host_driver_root});
  absl::StatusOr<std::shared_ptr<const plugin::DriverFileSet>> found = driver_files.Refresh();
  if (!found.ok()) return Fail(found.status());
  for (const std::string& s : (*found)->skipped) spdlog::warn("driver files: skipped {}", s);
  for (const std::string& w : (*found)->warnings) spdlog::warn("driver files: {}", w);
  spdlog::info("driver files: {} file(s) under driver root {} (host path {}), driver version {}",
               (*found)->mounts.size(), f.driver_root, driver_files.options().host_driver_root,
               (*found)->driver_version.empty() ? "unknown" : (*found)->driver_version);

  std::unique_ptr<plugin::MpsManager> mps;
  std::string mps_binary = f.mps_control_binary;
  if (mps_binary.empty()) {
    mps_binary =
        StrCat(f.driver_root == "/" ? "" : f.driver_root, "/usr/bin/nvidia-cuda-mps-control");
  }
  if (::access(mps_binary.c_str(), X_OK) == 0) {
    mps = std::make_unique<plugin::MpsManager>(
        plugin::MpsOptions{.control_binary = mps_binary, .root_dir = StrCat(f.data_dir, "/mps")});
  } else {
    spdlog::warn("no MPS control binary at {}: MPS devices cannot be prepared", mps_binary);
  }

  absl::StatusOr<tessera::kube::Config> kube_config = tessera::kube::ResolveConfig(f.kubeconfig);
  if (!kube_config.ok()) return Fail(kube_config.status());
  tessera::kube::Client client(
      *std::move(kube_config),
      {.user_agent = StrCat("tessera-kubelet-plugin/", tessera::tools::Version())});
  plugin::KubeClaimReader claims(client);

  plugin::Preparer preparer({.driver_name = f.driver_name,
                             .node_name = f.node_name,
                             .lock_dir = StrCat(f.data_dir, "/locks"),
                             .lock_scope = *lock_scope,
                             .driver_files = &driver_files},
                            **backend, **checkpoint, cdi, *nodes, mps.get(), claims);
  absl::StatusOr<plugin::ReconcileReport> reconciled = preparer.Start();
  if (!reconciled.ok()) return Fail(reconciled.status());
  for (const auto& uid : reconciled->rolled_back)
    spdlog::info("rolled back half-done prepare of claim {}", uid);
  for (const auto& uid : reconciled->finished)
    spdlog::info("finished half-done unprepare of claim {}", uid);
  for (const auto& uid : reconciled->restored)
    spdlog::warn("restored claim {} from its CDI spec", uid);
  for (const auto& p : reconciled->problems) spdlog::error("reconcile: {}", p);
  for (const auto& uid : reconciled->stray_cdi)
    spdlog::info("removed stray CDI spec of claim {}", uid);
  for (const auto& id : reconciled->stray_mps) spdlog::info("stopped stray MPS daemon {}", id);

  plugin::PluginMetrics metrics;
  metrics.set_memory_sampler([gpus = backend->get()](int gpu, std::string_view uuid) {
    return gpus->MemoryUsed(gpu, uuid);
  });
  plugin::PluginServer server({.driver_name = f.driver_name,
                               .registrar_dir = StrCat(f.kubelet_root, "/plugins_registry"),
                               .plugin_dir = f.plugin_dir,
                               .pod_uid = f.pod_uid},
                              preparer);
  plugin::InventoryPublisher inventory(
      client, preparer,
      {.node_name = f.node_name,
       .plugin_version = tessera::tools::Version(),
       .heartbeat = std::chrono::seconds(std::max(1, f.heartbeat_seconds))});
  plugin::CheckpointStore* store = checkpoint->get();
  // After every prepare or unprepare: inventory and health follow the claims. The gauges are
  // brought up to date when they are scraped, so a burst of prepares does not rebuild them once
  // per claim.
  auto claims_changed = [&] {
    inventory.Changed();
    server.HealthChanged();
  };
  preparer.set_observer({.on_prepare =
                             [&](const plugin::ClaimRef&, const plugin::PrepareResult& r) {
                               if (!r.error.empty()) metrics.ClaimFailed("prepare", r.reason);
                               claims_changed();
                             },
                         .on_unprepare =
                             [&](const plugin::ClaimRef&, const std::string& error) {
                               if (!error.empty()) metrics.ClaimFailed("unprepare", "actuation");
                               claims_changed();
                             }});
  server.set_observer(
      {.on_call = [&](std::string_view method, std::string_view service, double seconds, int n,
                      int failed) { metrics.ObserveCall(method, service, seconds, n, failed); }});

  tessera::tools::HttpEndpoints http;
  http.Handle("/metrics", [&] {
    metrics.Update(store->All());
    return tessera::tools::HttpReply{
        .status = 200, .body = metrics.Render(), .content_type = "text/plain; version=0.0.4"};
  });
  http.Handle("/healthz", [] { return tessera::tools::HttpReply{.body = "ok\n"}; });
  http.Handle("/readyz", [&] {
    const plugin::RegistrationState r = server.registration();
    if (r.registered) return tessera::tools::HttpReply{.body = "registered\n"};
    return tessera::tools::HttpReply{.status = 503,
                                     .body = r.notified ? "registration refused: " + r.error + "\n"
                                                        : "not registered with the kubelet yet\n"};
  });
  if (absl::Status s = http.Listen({f.common.metrics_address, f.common.health_address}); !s.ok())
    return Fail(s);
  if (absl::Status s = server.Start(); !s.ok()) return Fail(s);
  std::cout << "tessera-kubelet-plugin serving " << server.registration_socket() << std::endl;
  inventory.Start();

  const int sig = tessera::tools::WaitForStopSignal();
  spdlog::info("stopping on signal {}", sig);
  server.Stop();
  inventory.Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // gRPC serves each call on its own thread; glibc would give each a malloc arena, which a burst of
  // concurrent prepares turns into megabytes of resident memory that are never returned.
  mallopt(M_ARENA_MAX, 2);
  // Block the stop signals before any thread starts; Serve() waits for them.
  tessera::tools::BlockStopSignals();

  CLI::App app{"tessera-kubelet-plugin: prepares GPU ResourceClaims on this node"};
  Flags f;
  f.common.metrics_address = ":9400";
  f.common.health_address = ":9401";
  tessera::tools::AddCommonFlags(app, f.common);
  app.add_option("--node-name", f.node_name, "this node's name (the pool name)")
      ->envname("NODE_NAME");
  app.add_option("--driver-name", f.driver_name, "DRA driver name")
      ->envname("TESSERA_DRIVER_NAME")
      ->capture_default_str();
  app.add_option("--kubelet-root", f.kubelet_root, "the kubelet's root directory")
      ->envname("TESSERA_KUBELET_ROOT")
      ->capture_default_str();
  app.add_option("--plugin-dir", f.plugin_dir,
                 "where dra.sock lives (default <kubelet root>/plugins/<driver>)")
      ->envname("TESSERA_PLUGIN_DIR");
  app.add_option("--data-dir", f.data_dir,
                 "checkpoint, locks and MPS directories (default: the plugin dir)")
      ->envname("TESSERA_DATA_DIR");
  app.add_option("--cdi-root", f.cdi_root, "CDI spec directory")
      ->envname("TESSERA_CDI_ROOT")
      ->capture_default_str();
  app.add_option("--kubeconfig", f.kubeconfig,
                 "kubeconfig file (default: $KUBECONFIG, then in-cluster)");
  app.add_option("--gpu-backend", f.backend, "nvml or fake")
      ->envname("TESSERA_GPU_BACKEND")
      ->capture_default_str();
  app.add_option("--fake-gpus", f.fake_gpus, "YAML description of simulated GPUs (fake backend)")
      ->envname("TESSERA_FAKE_GPUS");
  app.add_option("--driver-root", f.driver_root,
                 "where the NVIDIA driver's files are: /, /run/nvidia/driver, ...")
      ->envname("TESSERA_DRIVER_ROOT")
      ->capture_default_str();
  app.add_option("--host-driver-root", f.host_driver_root,
                 "the driver root as the host sees it, for the CDI mounts of the driver's files "
                 "(default: --driver-root)")
      ->envname("TESSERA_HOST_DRIVER_ROOT");
  app.add_option("--nvml-library", f.nvml_library, "explicit libnvidia-ml.so.1 path")
      ->envname("TESSERA_NVML_LIBRARY");
  app.add_option("--host-root", f.host_root, "where the host's /proc is visible (device majors)")
      ->envname("TESSERA_HOST_ROOT")
      ->capture_default_str();
  app.add_option("--mps-control-binary", f.mps_control_binary,
                 "nvidia-cuda-mps-control (default <driver root>/usr/bin/nvidia-cuda-mps-control)")
      ->envname("TESSERA_MPS_CONTROL_BINARY");
  app.add_option("--pod-uid", f.pod_uid, "this pod's UID: rolling-update socket names")
      ->envname("POD_UID");
  app.add_option("--heartbeat-seconds", f.heartbeat_seconds, "GpuInventory heartbeat period")
      ->envname("TESSERA_HEARTBEAT_SECONDS")
      ->capture_default_str();
  app.add_option("--lock-scope", f.lock_scope,
                 "gpu: claims on different GPUs prepare in parallel; node: one node-wide lock for "
                 "the whole prepare/unprepare of every claim, as NVIDIA's DRA driver serialises "
                 "(only for benchmarks that compare the two)")
      ->envname("TESSERA_LOCK_SCOPE")
      ->capture_default_str();
  app.add_option("--boot-id-file", f.boot_id_file, "the node's boot ID")
      ->envname("TESSERA_BOOT_ID_FILE")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  if (std::optional<int> done = tessera::tools::RunInfoFlags(f.common, "tessera-kubelet-plugin"))
    return *done;
  if (absl::Status s = tessera::tools::ConfigureLogging(f.common.log_format, f.common.verbosity,
                                                        "tessera-kubelet-plugin");
      !s.ok()) {
    std::cerr << "tessera-kubelet-plugin: " << s.message() << std::endl;
    return 2;
  }
  return Serve(std::move(f));
}
