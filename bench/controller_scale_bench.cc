// controller-scale-bench: publish pools for N nodes × 8 H100-80GB in mig-dynamic from cold against
// a real API server (testenv), then the same objects created by a bare client at the same
// concurrency. Prints one JSON object: wall times, API writes, the controller's CPU seconds and
// peak RSS, and the ratio controller / bare client.
//
//   TESSERA_TESTENV=build/default/testenv/testenv
//   build/default/bench/controller-scale-bench --nodes 500 --workers 4
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "controller_bench.h"
#include "framework/cluster.h"
#include "framework/process.h"
#include "tessera/api/crd.h"
#include "tessera/api/strings.h"
#include "tessera/kube/client.h"
#include "tessera/kube/config.h"
#include "tessera/kube/leader.h"
#include "tessera/partitioner/catalogue.h"

namespace {

using tessera::StrCat;
using tessera::api::Json;
namespace kube = tessera::kube;
namespace res = kube::resources;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Runs fn(i) for i in [0, n) on `threads` threads; the first error wins.
absl::Status Parallel(int n, int threads, const std::function<absl::Status(int)>& fn) {
  std::atomic<int> next{0};
  std::mutex mu;
  absl::Status first;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        absl::Status s = fn(i);
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first.ok()) first = s;
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  return first;
}

Json Inventory(const std::string& node) {
  const tessera::partitioner::GpuModel* model = tessera::partitioner::FindBuiltinModel("h100-80gb");
  tessera::api::GpuInventorySpec spec{
      .node_name = node, .driver_version = "550.54.15", .cuda_driver_version = "12.4", .gpus = {}};
  for (int i = 0; i < 8; ++i) {
    tessera::api::GpuInfo g;
    g.index = i;
    g.uuid = StrCat("GPU-", node, "-", i);
    g.product = model->product_name;
    g.model = model->key;
    g.compute_capability = model->compute_capability;
    g.pci_bus_id = StrCat("0000:", 10 + i, ":00.0");
    g.minor_number = i;
    g.mig_capable = g.mig_enabled = true;
    g.mig_profiles = tessera::partitioner::InventoryProfiles(*model);
    g.health = tessera::api::HealthState::kHealthy;
    spec.gpus.push_back(std::move(g));
  }
  return {{"apiVersion", "tessera.dev/v1alpha1"},
          {"kind", "GpuInventory"},
          {"metadata", {{"name", node}}},
          {"spec", spec}};
}

// CPU seconds used so far by the control plane's processes (their command lines name the
// cluster's directory): API server, etcd, scheduler, controller-manager.
double ControlPlaneCpu(const std::string& dir) {
  double total = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmd)), {});
    if (cmdline.find(dir) == std::string::npos || cmdline.find("testenv") == std::string::npos)
      continue;
    total += tessera::bench::CpuAndPeakRss(std::stoi(pid)).first;
  }
  return total;
}

double OwnCpu() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"controller-scale-bench"};
  int nodes = 500;
  int workers = 4;
  std::string controller = TESSERA_CONTROLLER_BINARY;
  app.add_option("--nodes", nodes, "GPU nodes (8 × H100-80GB each)")->capture_default_str();
  app.add_option("--workers", workers, "controller workers = bare-client threads")
      ->capture_default_str();
  app.add_option("--controller", controller, "tessera-controller binary")->capture_default_str();
  bool bare_watch = false;
  app.add_flag("--bare-watch", bare_watch,
               "watch the slices (JSON) during the bare-client run, as the controller does");
  CLI11_PARSE(app, argc, argv);

  std::unique_ptr<tessera::e2e::Cluster> cluster = tessera::e2e::Cluster::Start({"seed"});
  if (!cluster->available()) {
    std::cerr << "no cluster: " << cluster->reason() << "\n";
    return 1;
  }
  for (const char* crd :
       {"gpuinventories.tessera.dev.yaml", "gpupartitionpolicies.tessera.dev.yaml"}) {
    cluster->Kubectl(
        {"apply", "--server-side", "-f", StrCat(TESSERA_SOURCE_DIR, "/deploy/crds/", crd)});
  }
  absl::StatusOr<kube::Config> config = kube::LoadKubeconfig(cluster->kubeconfig());
  if (!config.ok()) return 1;
  kube::Client client(*config);
  absl::Status made = cluster->Create(
      "apiVersion: tessera.dev/v1alpha1\nkind: GpuPartitionPolicy\nmetadata: {name: all}\n"
      "spec:\n  gpus:\n  - mode: mig-dynamic\n");
  if (!made.ok()) std::cerr << made << "\n";
  std::cerr << "creating " << nodes << " Nodes and GpuInventories\n";
  absl::Status s = Parallel(nodes, 8, [&](int i) -> absl::Status {
    char name[16];
    std::snprintf(name, sizeof(name), "s%04d", i);
    Json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", name}}}};
    if (auto r = client.Create(res::kNodes, "", node); !r.ok()) return r.status();
    if (auto r = client.Create(res::kGpuInventories, "", Inventory(name)); !r.ok())
      return r.status();
    Json status = {{"apiVersion", "tessera.dev/v1alpha1"},
                   {"kind", "GpuInventory"},
                   {"metadata", {{"name", name}}},
                   {"status", {{"heartbeatTime", kube::TimeNow()}}}};
    return client.Apply(res::kGpuInventories, "", status, "bench", true, "status").status();
  });
  if (!s.ok()) {
    std::cerr << "set-up: " << s << "\n";
    return 1;
  }

  // (a) the controller from cold.
  const double plane_cpu_0 = ControlPlaneCpu(cluster->dir());
  const auto began = Clock::now();
  absl::StatusOr<tessera::bench::RunningController> run = tessera::bench::StartController(
      controller, cluster->kubeconfig(), cluster->dir() + "/controller.log",
      {StrCat("--workers=", workers), "--heartbeat-timeout-seconds=3600"});
  if (!run.ok()) {
    std::cerr << "controller: " << run.status() << "\n";
    return 1;
  }
  const int port = run->metrics_port;
  std::unique_ptr<tessera::e2e::ChildProcess>& proc = run->process;
  std::map<std::string, double> metrics;
  double first_write_s = -1;
  while (true) {
    metrics = tessera::bench::ScrapeMetrics(port);
    if (first_write_s < 0 && metrics["tessera_controller_slice_writes_total:apply"] > 0)
      first_write_s = Seconds(Clock::now() - began);
    if (metrics["tessera_controller_generation_bumps_total"] >= nodes &&
        metrics["tessera_controller_queue_depth"] == 0)
      break;
    if (Seconds(Clock::now() - began) > 3600) {
      std::cerr << "timed out\n";
      return 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const double controller_wall = Seconds(Clock::now() - began);
  const auto [cpu, rss] = tessera::bench::CpuAndPeakRss(proc->pid());
  const double plane_cpu_controller = ControlPlaneCpu(cluster->dir()) - plane_cpu_0;
  proc->Stop();

  // (b) the same slices, written by a bare client at the same concurrency.
  absl::StatusOr<kube::ListResult> slices = client.List(res::kResourceSlices, "");
  if (!slices.ok()) return 1;
  std::vector<Json> objects;
  for (Json& o : slices->items) {
    // The same objects: name, labels, owner (the Node) and spec; what the server adds is not
    // sent.
    Json meta = {{"name", o["metadata"]["name"]}};
    for (const char* key : {"labels", "ownerReferences"}) {
      if (o["metadata"].contains(key)) meta[key] = o["metadata"][key];
    }
    Json clean = {{"apiVersion", "resource.k8s.io/v1"},
                  {"kind", "ResourceSlice"},
                  {"metadata", std::move(meta)},
                  {"spec", o["spec"]}};
    objects.push_back(std::move(clean));
  }
  if (auto st = Parallel(static_cast<int>(objects.size()), 8,
                         [&](int i) {
                           return client.Delete(res::kResourceSlices, "",
                                                objects[i]["metadata"]["name"].get<std::string>());
                         });
      !st.ok()) {
    std::cerr << "cleanup: " << st << "\n";
  }
  std::atomic<bool> stop_watch{false};
  std::thread watcher;
  if (bare_watch) {
    watcher = std::thread([&] {
      kube::Client w(*config);
      (void)w.Watch(
          res::kResourceSlices, "", {.resource_version = slices->resource_version},
          [](kube::WatchEvent&&) { return true; }, &stop_watch);
    });
  }
  const double plane_cpu_1 = ControlPlaneCpu(cluster->dir());
  const double own_cpu_0 = OwnCpu();
  const auto bare_began = Clock::now();
  s = Parallel(static_cast<int>(objects.size()), workers,
               [&](int i) { return client.Create(res::kResourceSlices, "", objects[i]).status(); });
  const double bare_wall = Seconds(Clock::now() - bare_began);
  const double bare_cpu = OwnCpu() - own_cpu_0;
  const double plane_cpu_bare = ControlPlaneCpu(cluster->dir()) - plane_cpu_1;
  stop_watch = true;
  if (watcher.joinable()) watcher.join();
  if (!s.ok()) std::cerr << "bare client: " << s << "\n";

  const Json out = {
      {"nodes", nodes},
      {"gpus_per_node", 8},
      {"workers", workers},
      {"slices", objects.size()},
      {"controller_wall_s", controller_wall},
      {"controller_first_write_s", first_write_s},
      {"controller_slice_applies", metrics["tessera_controller_slice_writes_total:apply"]},
      {"controller_slice_deletes", metrics["tessera_controller_slice_writes_total:delete"]},
      {"controller_reconciles", metrics["tessera_controller_reconciles_total:ok"]},
      {"controller_cpu_s", cpu},
      {"controller_peak_rss_mib", rss},
      {"bare_client_wall_s", bare_wall},
      {"bare_client_cpu_s", bare_cpu},
      {"control_plane_cpu_s_controller_run", plane_cpu_controller},
      {"control_plane_cpu_s_bare_run", plane_cpu_bare},
      {"ratio", controller_wall / bare_wall}};
  std::cout << out.dump() << std::endl;
  return 0;
}
