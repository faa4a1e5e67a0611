// controller-packing-bench: one churn trace of claims, replayed (time-compressed: one event at a
// time, in order) through the real scheduler against one node of fake GPUs in mig-dynamic, once
// per placement policy of tessera-controller: `tessera` (its own order) and `name-sorted` (every
// placement published in name order, as NVIDIA's driver publishes). For each run it reports the
// blocked claims and the time-averaged compute slices in use, next to what tessera-sim predicts
// for the same trace and cluster. Prints one JSON object.
//
//   build/default/bench/tessera-sim gen-trace --cluster a100-40gb:8 --load 0.95 --count 150
//       --mix 'mig:1g=0.3,mig:2g=0.25,mig:3g=0.2,mig:4g=0.1,mig:7g=0.05,whole=0.1'
//       --seed 7 > /tmp/trace.csv
//   TESSERA_TESTENV=build/default/testenv/testenv
//       build/default/bench/controller-packing-bench --trace /tmp/trace.csv --model a100-40gb
//
// Each arrival creates a ResourceClaim (whole GPU: DeviceClass gpu.tessera.dev; MIG: class
// mig.gpu.tessera.dev with profileClass == the size class) and a pod using it, and waits until
// the claim is allocated or the scheduler reports the pod unschedulable (blocked: both are
// deleted, as the simulator drops a blocked request). A departure deletes the pod and the claim
// and waits until the claim is gone and its MIG instance destroyed. After every allocation and
// release the bench waits until the controller has re-published the node (its reconcile count
// moved and its queue stayed empty), so each scheduling decision sees the slices the controller
// wants it to see.
#include <chrono>
#include <fstream>
#include <iostream>
#include <queue>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_split.h"
#include "controller_bench.h"
#include "framework/cluster.h"
#include "framework/node.h"
#include "framework/objects.h"
#include "tessera/api/strings.h"
#include "tessera/kube/client.h"
#include "tessera/kube/config.h"
#include "tessera/kube/errors.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/simulator.h"

namespace {

using tessera::StrCat;
using tessera::api::Json;
namespace kube = tessera::kube;
namespace res = kube::resources;
namespace part = tessera::partitioner;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr char kDriver[] = "gpu.tessera.dev";
constexpr char kNode[] = "p0";
constexpr char kNs[] = "default";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Options {
  std::string model = "a100-40gb";
  int gpus = 8;
  std::string controller = TESSERA_CONTROLLER_BINARY;
  std::string plugin = TESSERA_PLUGIN_BINARY;
  int settle_ms = 150;  // after the controller is idle, for the scheduler's informer to catch up
};

struct RealResult {
  std::string policy;
  int requests = 0;
  int blocked = 0;
  double mean_slice_utilization = 0;
  double wall_s = 0;
  int controller_reconciles = 0;
  std::vector<int> blocked_ids{};
  std::vector<std::string> decisions{};  // per request: "n0/<device>" or "blocked"
};

// The claim spec for one trace request.
absl::StatusOr<Json> ClaimFor(const std::string& name, const part::Request& r) {
  Json exactly;
  switch (r.kind) {
    case part::Request::Kind::kWhole:
      exactly = {{"deviceClassName", "gpu.tessera.dev"}};
      break;
    case part::Request::Kind::kMig:
      exactly = {{"deviceClassName", "mig.gpu.tessera.dev"},
                 {"selectors",
                  {{{"cel",
                     {{"expression", StrCat("device.attributes[\"", kDriver,
                                            "\"].profileClass == \"", r.profile, "\"")}}}}}}};
      break;
    default:
      return absl::InvalidArgumentError(
          StrCat("request ", r.ToString(),
                 ": this bench replays whole-GPU and MIG requests only (the node is mig-dynamic)"));
  }
  return Json{{"apiVersion", "resource.k8s.io/v1"},
              {"kind", "ResourceClaim"},
              {"metadata", {{"name", name}}},
              {"spec", {{"devices", {{"requests", {{{"name", "gpu"}, {"exactly", exactly}}}}}}}}};
}

Json PodFor(const std::string& name, const std::string& claim) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"terminationGracePeriodSeconds", 0},
            {"nodeSelector", {{"kubernetes.io/hostname", kNode}}},
            {"containers",
             {{{"name", "app"},
               {"image", "registry.k8s.io/pause:3.10"},
               {"resources", {{"claims", {{{"name", "gpu"}}}}}}}}},
            {"resourceClaims", {{{"name", "gpu"}, {"resourceClaimName", claim}}}}}}};
}

class Replay {
 public:
  Replay(const Options& options, kube::Client& client, int port)
      : options_(options), client_(client), port_(port) {}

  double Reconciles() {
    std::map<std::string, double> m = tessera::bench::ScrapeMetrics(port_);
    return m["tessera_controller_reconciles_total"];
  }

  // Until the controller has synced since `before` (when `expect_sync`) and its queue has stayed
  // empty for a moment.
  absl::Status Settle(double before, bool expect_sync) {
    const auto deadline = Clock::now() + 60s;
    double last = -1;
    int quiet = 0;
    while (Clock::now() < deadline) {
      std::map<std::string, double> m = tessera::bench::ScrapeMetrics(port_);
      const double r = m["tessera_controller_reconciles_total"];
      const bool idle = m["tessera_controller_queue_depth"] == 0 && (!expect_sync || r > before);
      quiet = idle && r == last ? quiet + 1 : 0;
      last = r;
      if (quiet >= 6) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options_.settle_ms));
        return absl::OkStatus();
      }
      std::this_thread::sleep_for(25ms);
    }
    return absl::DeadlineExceededError("the controller did not settle within 60 s");
  }

  // The allocated device ("n0/<device>"), or "blocked" (and cleaned up).
  absl::StatusOr<std::string> Arrive(int id, const part::Request& r) {
    const std::string claim = StrCat("c", id), pod = StrCat("p", id);
    absl::StatusOr<Json> spec = ClaimFor(claim, r);
    if (!spec.ok()) return spec.status();
    const double before = Reconciles();
    if (auto c = client_.Create(res::kResourceClaims, kNs, *spec); !c.ok()) return c.status();
    if (auto p = client_.Create(res::kPods, kNs, PodFor(pod, claim)); !p.ok()) return p.status();
    const auto deadline = Clock::now() + 60s;
    while (Clock::now() < deadline) {
      absl::StatusOr<Json> c = client_.Get(res::kResourceClaims, kNs, claim);
      if (!c.ok()) return c.status();
      if ((*c)["status"].contains("allocation")) {
        if (absl::Status s = Settle(before, true); !s.ok()) return s;
        return StrCat("n0/", (*c)["status"]["allocation"]["devices"]["results"][0].value(
                                 "device", std::string("?")));
      }
      absl::StatusOr<Json> p = client_.Get(res::kPods, kNs, pod);
      if (!p.ok()) return p.status();
      for (const Json& cond : (*p)["status"].value("conditions", Json::array())) {
        if (cond.value("type", "") == "PodScheduled" && cond.value("status", "") == "False") {
          (void)client_.Delete(res::kPods, kNs, pod);
          (void)client_.Delete(res::kResourceClaims, kNs, claim);
          return std::string("blocked");
        }
      }
      std::this_thread::sleep_for(20ms);
    }
    return absl::DeadlineExceededError(StrCat(claim, ": neither allocated nor unschedulable"));
  }

  absl::Status Depart(int id) {
    const std::string claim = StrCat("c", id), pod = StrCat("p", id);
    const double before = Reconciles();
    if (absl::Status s = client_.Delete(res::kPods, kNs, pod); !s.ok() && !kube::IsNotFoundError(s))
      return s;
    if (absl::Status s = client_.Delete(res::kResourceClaims, kNs, claim);
        !s.ok() && !kube::IsNotFoundError(s))
      return s;
    // The claim goes once its pod is gone and the claim controller has released it.
    absl::Status gone = tessera::e2e::Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> c = client_.Get(res::kResourceClaims, kNs, claim);
          if (kube::IsNotFoundError(c.status())) return absl::OkStatus();
          return absl::UnavailableError(StrCat(claim, " still exists"));
        },
        60s);
    if (!gone.ok()) return gone;
    // A released MIG instance exists until the kubelet has unprepared the claim and the plugin
    // destroyed it (it appears in the node's GpuInventory till then, and the controller rightly
    // keeps its placement occupied). On a real cluster that takes a second against claim lifetimes
    // of minutes; in this time-compressed replay the bench waits for it, as the simulator
    // assumes instant release.
    absl::Status destroyed = tessera::e2e::Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> inv = client_.Get(res::kGpuInventories, "", kNode);
          if (!inv.ok()) return inv.status();
          for (const Json& gpu : (*inv)["spec"].value("gpus", Json::array())) {
            for (const Json& mi : gpu.value("migInstances", Json::array())) {
              if (mi.contains("ownerClaim") && mi["ownerClaim"].value("name", "") == claim)
                return absl::UnavailableError(StrCat("the MIG instance of ", claim, " exists"));
            }
          }
          return absl::OkStatus();
        },
        60s);
    if (!destroyed.ok()) return destroyed;
    return Settle(before, true);
  }

 private:
  const Options& options_;
  kube::Client& client_;
  const int port_;
};

absl::StatusOr<RealResult> RunReal(const Options& options, const std::string& policy,
                                   const std::vector<part::TraceEntry>& trace) {
  std::unique_ptr<tessera::e2e::Cluster> cluster = tessera::e2e::Cluster::Start({kNode});
  if (!cluster->available()) return absl::UnavailableError(cluster->reason());
  for (const char* crd :
       {"gpuinventories.tessera.dev.yaml", "gpupartitionpolicies.tessera.dev.yaml"}) {
    tessera::e2e::CommandResult r = cluster->Kubectl(
        {"apply", "--server-side", "-f", StrCat(TESSERA_SOURCE_DIR, "/deploy/crds/", crd)});
    if (!r.ok()) return absl::InternalError(r.Describe());
  }
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"gpu.tessera.dev", "gpu"}, {"mig.gpu.tessera.dev", "mig"}}) {
    const std::string cel = StrCat("device.attributes[\"", kDriver, "\"].type == \"", type, "\"");
    if (absl::Status s = cluster->Create(tessera::e2e::DeviceClass(name, kDriver, cel).dump());
        !s.ok())
      return s;
  }
  if (absl::Status s = cluster->Create(
          "apiVersion: tessera.dev/v1alpha1\nkind: GpuPartitionPolicy\nmetadata: {name: all}\n"
          "spec:\n  gpus:\n  - mode: mig-dynamic\n");
      !s.ok())
    return s;
  absl::StatusOr<std::unique_ptr<tessera::e2e::KubeletSim>> kubelet =
      tessera::e2e::KubeletSim::Start(*cluster, kNode);
  if (!kubelet.ok()) return kubelet.status();
  absl::StatusOr<std::unique_ptr<tessera::e2e::ChildProcess>> plugin =
      tessera::e2e::StartTesseraPlugin(*cluster, **kubelet,
                                       {.binary = options.plugin,
                                        .source_dir = TESSERA_SOURCE_DIR,
                                        .fake_gpus_yaml = StrCat("gpus:\n- model: ", options.model,
                                                                 "\n  count: ", options.gpus, "\n"),
                                        .metrics_address = "0"});
  if (!plugin.ok()) return plugin.status();
  absl::StatusOr<tessera::bench::RunningController> controller = tessera::bench::StartController(
      options.controller, cluster->kubeconfig(), StrCat(cluster->dir(), "/controller.log"),
      {StrCat("--placement-policy=", policy), "--coalesce-ms=20"});
  if (!controller.ok()) return controller.status();
  absl::StatusOr<kube::Config> config = kube::LoadKubeconfig(cluster->kubeconfig());
  if (!config.ok()) return config.status();
  kube::Client client(*config);
  Replay replay(options, client, controller->metrics_port);
  // The pool is published (one generation) and the controller idle.
  absl::Status published = tessera::e2e::Eventually(
      [&]() -> absl::Status {
        std::map<std::string, double> m = tessera::bench::ScrapeMetrics(controller->metrics_port);
        if (m["tessera_controller_generation_bumps_total"] >= 1 &&
            m["tessera_controller_queue_depth"] == 0)
          return absl::OkStatus();
        return absl::UnavailableError("the pool is not published yet");
      },
      120s);
  if (!published.ok()) return published;
  if (absl::Status s = replay.Settle(0, false); !s.ok()) return s;

  const part::GpuModel* model = part::FindBuiltinModel(options.model);
  const double total = static_cast<double>(model->compute_slices * options.gpus);
  RealResult out{.policy = policy};
  std::priority_queue<std::pair<double, int>, std::vector<std::pair<double, int>>, std::greater<>>
      departures;
  std::map<int, double> active;  // id -> compute slices
  double used = 0, integral = 0, last = trace.empty() ? 0 : trace.front().arrival;
  auto advance = [&](double t) {
    if (t > last) {
      integral += used * (t - last);
      last = t;
    }
  };
  const auto began = Clock::now();
  for (std::size_t i = 0; i < trace.size(); ++i) {
    const part::TraceEntry& e = trace[i];
    while (!departures.empty() && departures.top().first <= e.arrival) {
      const auto [t, id] = departures.top();
      departures.pop();
      advance(t);
      if (absl::Status s = replay.Depart(id); !s.ok()) return s;
      used -= active[id];
      active.erase(id);
    }
    advance(e.arrival);
    const int id = static_cast<int>(i);
    absl::StatusOr<std::string> decision = replay.Arrive(id, e.request);
    if (!decision.ok()) return decision.status();
    ++out.requests;
    out.decisions.push_back(*decision);
    if (*decision == "blocked") {
      ++out.blocked;
      out.blocked_ids.push_back(id);
      continue;
    }
    active[id] = e.request.ComputeSlices(*model);
    used += active[id];
    departures.push({e.arrival + e.duration, id});
    if ((i + 1) % 25 == 0) {
      std::cerr << policy << ": " << i + 1 << "/" << trace.size() << " arrivals, " << out.blocked
                << " blocked, " << Seconds(Clock::now() - began) << " s\n";
    }
  }
  const double window = trace.empty() ? 0 : last - trace.front().arrival;
  out.mean_slice_utilization = window > 0 ? integral / (total * window) : 0;
  out.wall_s = Seconds(Clock::now() - began);
  out.controller_reconciles = static_cast<int>(replay.Reconciles());
  controller->process->Stop();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"controller-packing-bench"};
  Options options;
  std::string trace_path;
  std::string policies = "tessera,name-sorted";
  app.add_option("--trace", trace_path, "trace CSV (tessera-sim gen-trace)")->required();
  app.add_option("--model", options.model, "GPU model of the node")->capture_default_str();
  app.add_option("--gpus", options.gpus, "GPUs on the node")->capture_default_str();
  app.add_option("--policies", policies, "controller placement policies to run, comma-separated")
      ->capture_default_str();
  app.add_option("--settle-ms", options.settle_ms,
                 "pause after the controller is idle, before the next event")
      ->capture_default_str();
  app.add_option("--controller", options.controller)->capture_default_str();
  app.add_option("--plugin", options.plugin)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(trace_path);
  absl::StatusOr<std::vector<part::TraceEntry>> trace = part::ParseTrace(in);
  if (!trace.ok()) {
    std::cerr << trace_path << ": " << trace.status() << "\n";
    return 1;
  }
  absl::StatusOr<part::ClusterSpec> cluster =
      part::ClusterSpec::Parse(StrCat(options.model, ":", options.gpus), options.gpus);
  if (!cluster.ok()) {
    std::cerr << cluster.status() << "\n";
    return 1;
  }
  Json out = {{"trace", trace_path},
              {"model", options.model},
              {"gpus", options.gpus},
              {"requests", trace->size()},
              {"runs", Json::array()}};
  for (const std::string& policy : std::vector<std::string>(absl::StrSplit(policies, ','))) {
    absl::StatusOr<part::Policy> p = part::ParsePolicy(policy);
    if (!p.ok()) {
      std::cerr << p.status() << "\n";
      return 1;
    }
    // The controller publishes with the uniform demand mix; the simulator does the same here.
    const part::SimResult sim = part::Simulate(
        *cluster, *trace, {.policy = *p, .learn_demand = false, .record_decisions = true});
    absl::StatusOr<RealResult> real = RunReal(options, policy, *trace);
    if (!real.ok()) {
      std::cerr << policy << ": " << real.status() << "\n";
      return 1;
    }
    // Where reality and the simulator first part ways (after that the states differ).
    Json first_difference = nullptr;
    int differences = 0;
    for (std::size_t i = 0; i < real->decisions.size() && i < sim.decisions.size(); ++i) {
      if (real->decisions[i] == sim.decisions[i]) continue;
      if (differences++ == 0) {
        first_difference = {{"request", i},
                            {"what", (*trace)[i].request.ToString()},
                            {"real", real->decisions[i]},
                            {"simulator", sim.decisions[i]}};
      }
    }
    out["runs"].push_back({{"policy", policy},
                           {"first_difference", first_difference},
                           {"decisions_that_differ", differences},
                           {"real_decisions", real->decisions},
                           {"sim_decisions", sim.decisions},
                           {"real_blocked", real->blocked},
                           {"real_blocked_ids", real->blocked_ids},
                           {"real_mean_slice_utilization", real->mean_slice_utilization},
                           {"real_wall_s", real->wall_s},
                           {"controller_reconciles", real->controller_reconciles},
                           {"sim_blocked", sim.blocked},
                           {"sim_mean_slice_utilization", sim.mean_slice_utilization}});
    std::cerr << policy << ": real " << real->blocked << " blocked, simulator " << sim.blocked
              << "\n";
  }
  const Json& runs = out["runs"];
  if (runs.size() == 2) {
    const double predicted =
        runs[1]["sim_blocked"].get<double>() - runs[0]["sim_blocked"].get<double>();
    const double realised =
        runs[1]["real_blocked"].get<double>() - runs[0]["real_blocked"].get<double>();
    out["predicted_improvement"] = predicted;
    out["realised_improvement"] = realised;
    out["realised_fraction"] = predicted != 0 ? Json(realised / predicted) : Json(nullptr);
  }
  std::cout << out.dump() << std::endl;
  return 0;
}
