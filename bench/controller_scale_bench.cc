// controller-scale-bench: publish pools for N nodes × 8 H100-80GB in mig-dynamic from cold against
// a real API server (testenv), then the same objects created by a bare client at the same
// concurrency, then the controller from cold once more (every slice deleted before each of the
// last two runs; the second controller run is the one compared, so that neither side pays for the
// API server's first slices). Prints one JSON object: wall times, API requests, the controller's
// CPU seconds and peak RSS, the control plane's CPU by component, and the ratio controller / bare
// client.
//
//   TESSERA_TESTENV=build/default/testenv/testenv
//   build/default/bench/controller-scale-bench --nodes 500 --workers 4
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
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

// CPU seconds used so far by each of the control plane's processes (their command lines name
// the cluster's directory), by component: kube-apiserver, etcd, kube-scheduler,
// kube-controller-manager.
std::map<std::string, double> ControlPlaneCpu(const std::string& dir) {
  std::map<std::string, double> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string pid = entry.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream cmd(entry.path() / "cmdline");
    std::string cmdline((std::istreambuf_iterator<char>(cmd)), {});
    if (cmdline.find(dir) == std::string::npos || cmdline.find("testenv") == std::string::npos)
      continue;
    std::string component = "other";
    for (const char* c : {"kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager"}) {
      if (cmdline.find(c) != std::string::npos) {
        component = c;
        break;
      }
    }
    out[component] += tessera::bench::CpuAndPeakRss(std::stoi(pid)).first;
  }
  return out;
}

double Total(const std::map<std::string, double>& m) {
  double t = 0;
  for (const auto& [k, v] : m) t += v;
  return t;
}

// Each counter's growth from `before` to `after`; with `only_grown`, the counters that grew.
tessera::api::Json Since(const std::map<std::string, double>& before,
                         const std::map<std::string, double>& after, bool only_grown) {
  tessera::api::Json out = tessera::api::Json::object();
  for (const auto& [key, n] : after) {
    auto it = before.find(key);
    const double d = n - (it == before.end() ? 0 : it->second);
    if (d > 0 || !only_grown) out[key] = d;
  }
  return out;
}

// Requests the API server has answered so far, by "VERB resource[/subresource]" (from its
// apiserver_request_total counters).
std::map<std::string, double> ApiRequests(tessera::e2e::Cluster& cluster) {
  std::map<std::string, double> out;
  tessera::e2e::CommandResult r = cluster.Kubectl({"get", "--raw", "/metrics"});
  if (!r.ok()) return out;
  auto label = [](std::string_view line, std::string_view key) {
    const std::string needle = StrCat(key, "=\"");
    const std::size_t at = line.find(needle);
    if (at == std::string_view::npos) return std::string();
    const std::size_t begin = at + needle.size();
    return std::string(line.substr(begin, line.find('"', begin) - begin));
  };
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("apiserver_request_total{", 0) != 0) continue;
    std::string key = StrCat(label(line, "verb"), " ", label(line, "resource"));
    if (std::string sub = label(line, "subresource"); !sub.empty()) key += "/" + sub;
    out[key] += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return out;
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
  std::string bare_watch;
  app.add_option("--bare-watch", bare_watch,
                 "watch the slices during the bare-client run: json (whole objects) or metadata "
                 "(PartialObjectMetadata, as the controller does)")
      ->check(CLI::IsMember({"json", "metadata"}));
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
  std::cerr << "creating " << nodes << " Nodes and GpuInventories ("
            << Inventory("s0000").dump().size() << " bytes each)\n";
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

  // The control plane's own rate when nobody writes (controllers' loops, bookmarks), for scale.
  const std::map<std::string, double> idle_0 = ControlPlaneCpu(cluster->dir());
  const auto idle_began = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(5));
  const double idle_cpu_per_s =
      (Total(ControlPlaneCpu(cluster->dir())) - Total(idle_0)) / Seconds(Clock::now() - idle_began);

  // One controller run from cold: started with no slice of its driver in the cluster, until every
  // node's pool is published and its queue is empty.
  struct ControllerRun {
    double wall_s = 0, first_write_s = -1, cpu_s = 0, rss_mib = 0, plane_cpu_s = 0;
    std::map<std::string, double> metrics;
    Json plane_cpu_by_component, requests;
  };
  auto run_controller = [&](const std::string& log) -> absl::StatusOr<ControllerRun> {
    ControllerRun out;
    const std::map<std::string, double> requests_0 = ApiRequests(*cluster);
    const std::map<std::string, double> plane_0 = ControlPlaneCpu(cluster->dir());
    const auto began = Clock::now();
    absl::StatusOr<tessera::bench::RunningController> run = tessera::bench::StartController(
        controller, cluster->kubeconfig(), cluster->dir() + "/" + log,
        {StrCat("--workers=", workers), "--heartbeat-timeout-seconds=3600"});
    if (!run.ok()) return run.status();
    while (true) {
      out.metrics = tessera::bench::ScrapeMetrics(run->metrics_port);
      if (out.first_write_s < 0 && out.metrics["tessera_controller_slice_writes_total:apply"] > 0)
        out.first_write_s = Seconds(Clock::now() - began);
      if (out.metrics["tessera_controller_generation_bumps_total"] >= nodes &&
          out.metrics["tessera_controller_queue_depth"] == 0)
        break;
      if (Seconds(Clock::now() - began) > 3600) return absl::DeadlineExceededError("timed out");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    out.wall_s = Seconds(Clock::now() - began);
    std::tie(out.cpu_s, out.rss_mib) = tessera::bench::CpuAndPeakRss(run->process->pid());
    const std::map<std::string, double> plane_1 = ControlPlaneCpu(cluster->dir());
    out.plane_cpu_s = Total(plane_1) - Total(plane_0);
    out.plane_cpu_by_component = Since(plane_0, plane_1, /*only_grown=*/false);
    run->process->Stop();
    out.requests = Since(requests_0, ApiRequests(*cluster), /*only_grown=*/true);
    return out;
  };
  auto delete_all = [&](const std::vector<Json>& objects) {
    if (auto st = Parallel(static_cast<int>(objects.size()), 8,
                           [&](int i) {
                             return client.Delete(
                                 res::kResourceSlices, "",
                                 objects[i]["metadata"]["name"].get<std::string>());
                           });
        !st.ok()) {
      std::cerr << "cleanup: " << st << "\n";
    }
  };

  // (a) the controller from cold, on an API server that has not seen a slice yet.
  std::cerr << "controller, first run\n";
  absl::StatusOr<ControllerRun> first = run_controller("controller-1.log");
  if (!first.ok()) {
    std::cerr << "controller: " << first.status() << "\n";
    return 1;
  }

  // The same objects for the bare client: name, labels, owner (the Node) and spec; what the
  // server adds (and the controller's annotation) is not sent.
  absl::StatusOr<kube::ListResult> slices = client.List(res::kResourceSlices, "");
  if (!slices.ok()) return 1;
  std::vector<Json> objects;
  for (Json& o : slices->items) {
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
  delete_all(objects);

  // (b) the bare client, after the same deletion the controller's second run follows.
  std::cerr << "bare client\n";
  std::atomic<bool> stop_watch{false};
  std::thread watcher;
  if (!bare_watch.empty()) {
    watcher = std::thread([&] {
      kube::Client w(*config);
      (void)w.Watch(
          res::kResourceSlices, "",
          {.resource_version = slices->resource_version, .metadata_only = bare_watch == "metadata"},
          [](kube::WatchEvent&&) { return true; }, &stop_watch);
    });
  }
  const std::map<std::string, double> requests_bare_0 = ApiRequests(*cluster);
  const std::map<std::string, double> plane_cpu_1 = ControlPlaneCpu(cluster->dir());
  const double own_cpu_0 = OwnCpu();
  const auto bare_began = Clock::now();
  s = Parallel(static_cast<int>(objects.size()), workers,
               [&](int i) { return client.Create(res::kResourceSlices, "", objects[i]).status(); });
  const double bare_wall = Seconds(Clock::now() - bare_began);
  const double bare_cpu = OwnCpu() - own_cpu_0;
  const std::map<std::string, double> plane_cpu_b = ControlPlaneCpu(cluster->dir());
  const double plane_cpu_bare = Total(plane_cpu_b) - Total(plane_cpu_1);
  stop_watch = true;
  if (watcher.joinable()) watcher.join();
  const Json requests_bare = Since(requests_bare_0, ApiRequests(*cluster), /*only_grown=*/true);
  if (!s.ok()) std::cerr << "bare client: " << s << "\n";
  delete_all(objects);

  // (c) the controller from cold again: the measured run. The first paid for the API server's
  // first slices (caches, heap growth), which the bare client, running second, did not.
  std::cerr << "controller, second run\n";
  absl::StatusOr<ControllerRun> second = run_controller("controller-2.log");
  if (!second.ok()) {
    std::cerr << "controller: " << second.status() << "\n";
    return 1;
  }
  ControllerRun r = *std::move(second);

  const Json out = {
      {"nodes", nodes},
      {"gpus_per_node", 8},
      {"workers", workers},
      {"slices", objects.size()},
      {"controller_wall_s", r.wall_s},
      {"controller_first_write_s", r.first_write_s},
      {"controller_slice_applies", r.metrics["tessera_controller_slice_writes_total:apply"]},
      {"controller_slice_deletes", r.metrics["tessera_controller_slice_writes_total:delete"]},
      {"controller_reconciles", r.metrics["tessera_controller_reconciles_total:ok"]},
      {"controller_cpu_s", r.cpu_s},
      {"controller_peak_rss_mib", std::max(r.rss_mib, first->rss_mib)},
      {"controller_first_run_wall_s", first->wall_s},
      {"controller_first_run_cpu_s", first->cpu_s},
      {"controller_first_run_ratio", first->wall_s / bare_wall},
      {"control_plane_cpu_s_by_component_controller_first_run", first->plane_cpu_by_component},
      {"bare_client_wall_s", bare_wall},
      {"bare_client_cpu_s", bare_cpu},
      {"control_plane_idle_cpu_per_s", idle_cpu_per_s},
      {"control_plane_cpu_s_controller_run", r.plane_cpu_s},
      {"control_plane_cpu_s_bare_run", plane_cpu_bare},
      {"control_plane_cpu_s_by_component_controller_run", r.plane_cpu_by_component},
      {"control_plane_cpu_s_by_component_bare_run",
       Since(plane_cpu_1, plane_cpu_b, /*only_grown=*/false)},
      {"api_requests_controller_run", r.requests},
      {"api_requests_bare_run", requests_bare},
      {"ratio", r.wall_s / bare_wall}};
  std::cout << out.dump() << std::endl;
  return 0;
}
