// plugin-bench: the kubelet plugin's targets (issue #6), measured through the real binary over real
// unix sockets and gRPC, with the fake GPU backend and a loopback stand-in for the API server.
//
//   prepare-latency   N claims prepared concurrently (one thread each, on one connection) for
//                     each N of --concurrency (default 1,8,64), zero actuation latency; p50/p99
//                     over
//                     --rounds rounds after one warm-up round, and every latency measured.
//                                                                 target p99 <= 5 ms at 64
//   transport-floor   the same calls against a gRPC server in this process whose handlers return
//                     at once: the transport's own latency and CPU on this machine.
//   parallel-mig      500 ms simulated MIG-create latency: 8 claims on 8 GPUs at once versus one
//                     claim alone (target <= 1.5x), and k = 1..8 claims on k GPUs with the
//                     plugin's per-GPU locks and with --lock-scope=node (one node-wide lock, as
//                     NVIDIA's driver serialises prepares).
//   footprint         RSS with 8 GPUs and 56 prepared claims; start to registered
//                     (exec to a GetInfo answer).                     targets <= 30 MB, <= 200 ms
//
// Prints one JSON object per scenario.
// Usage: plugin-bench [--rounds N] [--concurrency 1,8,64] [--plugin BINARY] [--only NAME]

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <latch>
#include <numeric>
#include <sstream>
#include <thread>

#include "nlohmann/json.hpp"
#include "test/integration/plugin/fake_kubelet.h"
#include "test/integration/plugin/plugin_env.h"
#include "test/integration/plugin/plugin_process.h"

namespace {

using namespace tessera::testing;  // NOLINT: a benchmark program
using Clock = std::chrono::steady_clock;

// The plugin binary (--plugin): the build's, or for example a script that runs it under perf.
std::string g_plugin = TESSERA_PLUGIN_BINARY;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const std::size_t i = std::min(v.size() - 1, static_cast<std::size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

void Setup(const TempDir& dir, FakeApiServer& api, const std::string& gpus_yaml) {
  WritePluginFiles(dir, gpus_yaml, api.Kubeconfig(), "bench");
}

// Claim i: 1g MIG instance (i % 7) on H100 GPU (i / 7) for i < 56, then time-slice shares.
KubeletClaim MakeClaim(FakeApiServer& api, int i) {
  const std::string name = "c" + std::to_string(i);
  const std::string uid = "uid-" + std::to_string(i);
  std::string device =
      i < 56 ? "gpu-" + std::to_string(i / 7) + "-mig-1g10gb-p" + std::to_string(i % 7)
             : "gpu-8-ts";
  api.Put(AllocatedClaim(name, uid, {{.device = device}}));
  return {.namespace_ = "default", .name = name, .uid = uid};
}

std::string CallOne(const PluginProcess& p, const KubeletClaim& c, bool prepare) {
  FakeKubelet k;
  k.Connect(p.dra_socket(), "v1.DRAPlugin");
  std::map<std::string, ClaimReply> out;
  grpc::Status s = prepare ? k.Prepare({c}, &out) : k.Unprepare({c}, &out);
  if (!s.ok()) return "grpc: " + s.error_message();
  return out[c.uid].error;
}

// All claims at once, one thread each, over one connection as the kubelet has one per plugin (its
// calls are multiplexed on it); the latency of every call.
std::vector<double> Concurrently(const std::string& dra_socket,
                                 const std::vector<KubeletClaim>& claims, bool prepare,
                                 int* failures) {
  std::vector<double> latency(claims.size());
  std::vector<std::string> errors(claims.size());
  // Connected first so that the measurement is the call, as with the kubelet's long-lived channel.
  FakeKubelet kubelet;
  kubelet.Connect(dra_socket, "v1.DRAPlugin");
  kubelet.channel()->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5));
  // The threads are started before the calls, which then begin together.
  std::latch go(1);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < claims.size(); ++i) {
    threads.emplace_back([&, i] {
      go.wait();
      std::map<std::string, ClaimReply> out;
      const auto start = Clock::now();
      grpc::Status s =
          prepare ? kubelet.Prepare({claims[i]}, &out) : kubelet.Unprepare({claims[i]}, &out);
      latency[i] = Ms(Clock::now() - start);
      errors[i] = s.ok() ? out[claims[i].uid].error : "grpc: " + s.error_message();
    });
  }
  go.count_down();
  for (auto& t : threads) t.join();
  for (const std::string& e : errors) {
    if (!e.empty()) {
      ++*failures;
      std::cerr << "error: " << e << "\n";
    }
  }
  return latency;
}

std::vector<double> Concurrently(const PluginProcess& p, const std::vector<KubeletClaim>& claims,
                                 bool prepare, int* failures) {
  return Concurrently(p.dra_socket(), claims, prepare, failures);
}

// CPU seconds (user + system) a process has used: the plugin's from /proc, ours from getrusage.
double ProcessCpuS(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string f;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {
    if (i == 14 || i == 15) ticks += std::atof(f.c_str());  // utime, stime
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double SelfCpuS() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// `rounds` rounds of all claims prepared at once, then unprepared at once: every call's latency,
// and the wall time of the rounds themselves (for the CPU utilisation).
struct Rounds {
  std::vector<double> prepare{};
  std::vector<double> unprepare{};
  Clock::duration busy{};
};
Rounds MeasureRounds(const std::string& dra_socket, const std::vector<KubeletClaim>& claims,
                     int rounds, int* failures) {
  Rounds out;
  for (int r = 0; r < rounds; ++r) {
    for (bool prepare : {true, false}) {
      const auto start = Clock::now();
      std::vector<double> l = Concurrently(dra_socket, claims, prepare, failures);
      out.busy += Clock::now() - start;
      std::vector<double>& into = prepare ? out.prepare : out.unprepare;
      into.insert(into.end(), l.begin(), l.end());
    }
  }
  return out;
}

// How much of the machine `cpu_ms` used in `busy`: 1.0 is every core busy all the time.
double Utilisation(double cpu_ms, Clock::duration busy) {
  return cpu_ms / Ms(busy) / static_cast<double>(std::thread::hardware_concurrency());
}

nlohmann::json PrepareLatencyAt(int concurrent, int rounds) {
  TempDir dir;
  FakeApiServer api;
  Setup(dir, api,
        "gpus:\n- model: h100-80gb\n  count: 8\n- model: a100-40gb\n  count: 1\n  migEnabled: "
        "false\n");
  PluginProcess p(dir, "", g_plugin);
  if (!p.WaitReady()) return {{"scenario", "prepare-latency"}, {"error", "plugin did not start"}};
  std::vector<KubeletClaim> claims;
  for (int i = 0; i < concurrent; ++i) claims.push_back(MakeClaim(api, i));
  int failures = 0;
  // One unmeasured round: the plugin's API-server connections are then open, as on a live node.
  Concurrently(p, claims, true, &failures);
  Concurrently(p, claims, false, &failures);
  const double plugin_cpu0 = ProcessCpuS(p.pid());
  const double self_cpu0 = SelfCpuS();
  Rounds measured = MeasureRounds(p.dra_socket(), claims, rounds, &failures);
  std::vector<double>& prepare = measured.prepare;
  std::vector<double>& unprepare = measured.unprepare;
  // Per call (prepare or unprepare): the plugin's CPU, and this process's (the kubelet's gRPC
  // clients and the API server stand-in), both on the same cores.
  const double calls = 2.0 * rounds * concurrent;
  const double plugin_cpu_ms = (ProcessCpuS(p.pid()) - plugin_cpu0) * 1000 / calls;
  const double harness_cpu_ms = (SelfCpuS() - self_cpu0) * 1000 / calls;
  const double utilisation = Utilisation((plugin_cpu_ms + harness_cpu_ms) * calls, measured.busy);
  std::sort(prepare.begin(), prepare.end());
  std::sort(unprepare.begin(), unprepare.end());
  return {{"scenario", "prepare-latency"},
          {"concurrent_claims", concurrent},
          {"rounds", rounds},
          {"failures", failures},
          {"prepare_p50_ms", Percentile(prepare, 0.5)},
          {"prepare_p90_ms", Percentile(prepare, 0.9)},
          {"prepare_p99_ms", Percentile(prepare, 0.99)},
          {"prepare_max_ms", Percentile(prepare, 1.0)},
          {"unprepare_p50_ms", Percentile(unprepare, 0.5)},
          {"unprepare_p99_ms", Percentile(unprepare, 0.99)},
          {"plugin_cpu_ms_per_call", plugin_cpu_ms},
          {"harness_cpu_ms_per_call", harness_cpu_ms},
          {"cores", std::thread::hardware_concurrency()},
          {"cpu_utilisation", utilisation},
          {"prepare_ms", prepare},
          {"unprepare_ms", unprepare},
          {"target_prepare_p99_ms", 5}};
}

// A DRA service that does nothing: every claim is prepared with no devices at once.
class NoOpDraService final : public drav1::DRAPlugin::Service {
 public:
  grpc::Status NodePrepareResources(grpc::ServerContext*,
                                    const drav1::NodePrepareResourcesRequest* request,
                                    drav1::NodePrepareResourcesResponse* response) override {
    for (const auto& c : request->claims()) (*response->mutable_claims())[c.uid()];
    return grpc::Status::OK;
  }
  grpc::Status NodeUnprepareResources(grpc::ServerContext*,
                                      const drav1::NodeUnprepareResourcesRequest* request,
                                      drav1::NodeUnprepareResourcesResponse* response) override {
    for (const auto& c : request->claims()) (*response->mutable_claims())[c.uid()];
    return grpc::Status::OK;
  }
};

// The same calls as prepare-latency against a gRPC server (in this process, with the plugin's
// thread settings) whose handlers return at once: what the transport alone costs on this machine,
// the floor under any plugin's latency here.
nlohmann::json TransportFloorAt(int concurrent, int rounds) {
  TempDir dir;
  const std::string socket = dir / "noop.sock";
  NoOpDraService service;
  grpc::ServerBuilder builder;
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 16);
  builder.AddListeningPort("unix://" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) return {{"scenario", "transport-floor"}, {"error", "cannot listen"}};
  std::vector<KubeletClaim> claims;
  for (int i = 0; i < concurrent; ++i) {
    claims.push_back({.namespace_ = "default",
                      .name = "c" + std::to_string(i),
                      .uid = "uid-" + std::to_string(i)});
  }
  int failures = 0;
  Concurrently(socket, claims, true, &failures);
  const double cpu0 = SelfCpuS();
  const Rounds measured = MeasureRounds(socket, claims, rounds, &failures);
  std::vector<double> calls = measured.prepare;
  calls.insert(calls.end(), measured.unprepare.begin(), measured.unprepare.end());
  const double cpu_ms = (SelfCpuS() - cpu0) * 1000 / static_cast<double>(calls.size());
  server->Shutdown();
  return {
      {"scenario", "transport-floor"},
      {"concurrent_claims", concurrent},
      {"rounds", rounds},
      {"failures", failures},
      {"call_p50_ms", Percentile(calls, 0.5)},
      {"call_p99_ms", Percentile(calls, 0.99)},
      {"call_max_ms", Percentile(calls, 1.0)},
      {"cpu_ms_per_call", cpu_ms},
      {"cpu_utilisation", Utilisation(cpu_ms * static_cast<double>(calls.size()), measured.busy)}};
}

// k claims on GPUs 0..k-1 at once, for k = 1..8, with the plugin's lock scope `scope`; the wall
// time of each batch.
nlohmann::json MigBatches(const std::string& scope) {
  TempDir dir;
  FakeApiServer api;
  Setup(dir, api, "createLatencyMs: 500\ngpus:\n- model: h100-80gb\n  count: 8\n");
  setenv("TESSERA_LOCK_SCOPE", scope.c_str(), 1);  // the plugin reads its flags from the env too
  PluginProcess p(dir, "", g_plugin);
  unsetenv("TESSERA_LOCK_SCOPE");
  if (!p.WaitReady()) {
    return {{"lock_scope", scope}, {"error", "plugin did not start (see its log)"}};
  }
  nlohmann::json wall = nlohmann::json::array();
  int failures = 0;
  for (int k = 1; k <= 8; ++k) {
    std::vector<KubeletClaim> batch;
    for (int g = 0; g < k; ++g) batch.push_back(MakeClaim(api, g * 7 + (k % 7)));
    const auto start = Clock::now();
    Concurrently(p, batch, true, &failures);
    wall.push_back(Ms(Clock::now() - start));
    Concurrently(p, batch, false, &failures);
  }
  return {{"lock_scope", scope},
          {"failures", failures},
          {"claims", {1, 2, 3, 4, 5, 6, 7, 8}},
          {"wall_ms", wall}};
}

nlohmann::json ParallelMig() {
  TempDir dir;
  FakeApiServer api;
  Setup(dir, api, "createLatencyMs: 500\ngpus:\n- model: h100-80gb\n  count: 8\n");
  PluginProcess p(dir, "", g_plugin);
  if (!p.WaitReady()) return {{"scenario", "parallel-mig"}, {"error", "plugin did not start"}};
  int failures = 0;
  // One claim alone (GPU 0), then 8 claims on GPUs 0..7 at once.
  const KubeletClaim one = MakeClaim(api, 0);
  const auto start_one = Clock::now();
  failures += CallOne(p, one, true).empty() ? 0 : 1;
  const double t1 = Ms(Clock::now() - start_one);
  failures += CallOne(p, one, false).empty() ? 0 : 1;
  std::vector<KubeletClaim> eight;
  for (int g = 0; g < 8; ++g) eight.push_back(MakeClaim(api, g * 7 + 1));
  const auto start_eight = Clock::now();
  Concurrently(p, eight, true, &failures);
  const double t8 = Ms(Clock::now() - start_eight);
  Concurrently(p, eight, false, &failures);
  return {
      {"scenario", "parallel-mig"},   {"create_latency_ms", 500},
      {"failures", failures},         {"one_claim_ms", t1},
      {"eight_claims_8_gpus_ms", t8}, {"ratio", t8 / t1},
      {"target_ratio", 1.5},          {"by_lock_scope", {MigBatches("gpu"), MigBatches("node")}}};
}

long RssKiB(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

nlohmann::json Footprint() {
  TempDir dir;
  FakeApiServer api;
  Setup(dir, api, "gpus:\n- model: h100-80gb\n  count: 8\n");
  std::vector<double> starts;
  for (int run = 0; run < 5; ++run) {
    const auto start = Clock::now();
    PluginProcess p(dir, "", g_plugin);
    // Poll GetInfo every millisecond.
    bool ready = false;
    for (int i = 0; i < 5000 && !ready; ++i) {
      if (std::filesystem::exists(p.registration_socket())) {
        FakeKubelet k;
        pluginregistration::PluginInfo info;
        ready = k.Register(p.registration_socket(), &info).ok();
      }
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (!ready) return {{"scenario", "footprint"}, {"error", "plugin did not start"}};
    starts.push_back(Ms(Clock::now() - start));
  }
  PluginProcess p(dir, "", g_plugin);
  if (!p.WaitReady()) return {{"scenario", "footprint"}, {"error", "plugin did not start"}};
  const long idle = RssKiB(p.pid());
  std::vector<KubeletClaim> claims;
  for (int i = 0; i < 56; ++i) claims.push_back(MakeClaim(api, i));
  int failures = 0;
  Concurrently(p, claims, true, &failures);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // heartbeat and metrics settle
  const long loaded = RssKiB(p.pid());
  Concurrently(p, claims, false, &failures);
  return {{"scenario", "footprint"},
          {"gpus", 8},
          {"prepared_claims", claims.size()},
          {"failures", failures},
          {"rss_idle_mib", idle / 1024.0},
          {"rss_56_claims_mib", loaded / 1024.0},
          {"target_rss_mib", 30},
          {"start_to_registered_ms_median", Percentile(starts, 0.5)},
          {"start_to_registered_ms_max", Percentile(starts, 1.0)},
          {"target_start_ms", 200}};
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 10;
  std::vector<int> concurrency = {1, 8, 64};
  std::string only;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (a == "--concurrency" && i + 1 < argc) {
      concurrency.clear();
      std::stringstream list(argv[++i]);
      for (std::string n; std::getline(list, n, ',');) concurrency.push_back(std::atoi(n.c_str()));
    } else if (a == "--plugin" && i + 1 < argc) {
      g_plugin = argv[++i];
    } else if (a == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else {
      std::cerr << "usage: plugin-bench [--rounds N] [--concurrency 1,8,64] [--plugin BINARY] "
                   "[--only prepare-latency|transport-floor|parallel-mig|footprint]\n";
      return 2;
    }
  }
  for (int c : concurrency) {
    if (c < 1 || c > 64) {
      std::cerr << "plugin-bench: --concurrency " << c << " is not in 1..64\n";
      return 2;
    }
  }
  if (only.empty() || only == "prepare-latency") {
    for (int c : concurrency) std::cout << PrepareLatencyAt(c, rounds).dump() << std::endl;
  }
  if (only.empty() || only == "transport-floor") {
    for (int c : concurrency) std::cout << TransportFloorAt(c, rounds).dump() << std::endl;
  }
  if (only.empty() || only == "parallel-mig") std::cout << ParallelMig().dump() << std::endl;
  if (only.empty() || only == "footprint") std::cout << Footprint().dump() << std::endl;
  return 0;
}
