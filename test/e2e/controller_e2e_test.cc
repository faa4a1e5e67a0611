// tessera end to end: the controller publishes pools for two nodes of simulated GPUs (8 × A100-40GB
// on n0, 8 × H100-80GB on n1) from their plugins' GpuInventories and the partition policies; the
// real kube-scheduler allocates every claim kind from them; the plugins prepare the claims through
// the kubelet's own DRA code (kubelet-sim) on fake GPUs, which must then hold exactly the partition
// the allocation names.
//
// One set of nodes, plugins and controller serves every test of this binary (started by the first
// test that needs it); each test works in its own namespace and leaves the GPUs empty.

#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>

#include "framework/cluster.h"
#include "framework/node.h"
#include "framework/objects.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tessera/api/strings.h"

namespace tessera::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
constexpr char kDriver[] = "gpu.tessera.dev";

const char kPolicies[] = R"(apiVersion: tessera.dev/v1alpha1
kind: GpuPartitionPolicy
metadata: {name: e2e-a100}
spec:
  nodeSelector: {matchLabels: {kubernetes.io/hostname: n0}}
  gpus:
  - match: {indices: [0, 1, 2]}
    mode: mig-dynamic
  - match: {indices: [3]}
    mode: mig-dynamic
    instanceSharing: MPS
  - match: {indices: [4]}
    mode: mps
  - match: {indices: [5]}
    mode: timeslice
  - mode: whole
---
apiVersion: tessera.dev/v1alpha1
kind: GpuPartitionPolicy
metadata: {name: e2e-h100}
spec:
  nodeSelector: {matchLabels: {kubernetes.io/hostname: n1}}
  gpus:
  - mode: mig-dynamic
)";

// Memory slices of each H100/A100 profile token, for overlap checks.
int SizeOfToken(const std::string& token) {
  static const std::map<std::string, int> sizes = {
      {"1g5gb", 1},  {"1g10gb", 1},   {"1g20gb", 2},   {"2g10gb", 2}, {"2g20gb", 2},
      {"3g20gb", 4}, {"3g40gb", 4},   {"4g20gb", 4},   {"4g40gb", 4}, {"7g40gb", 8},
      {"7g80gb", 8}, {"1g5gb-me", 1}, {"1g10gb-me", 1}};
  auto it = sizes.find(token);
  return it == sizes.end() ? -1 : it->second;
}

// The processes every test shares.
struct Nodes {
  std::map<std::string, std::unique_ptr<KubeletSim>> kubelets;
  std::map<std::string, std::unique_ptr<ChildProcess>> plugins;
  std::map<std::string, std::string> models;  // node -> fake GPU model
  std::unique_ptr<ChildProcess> controller;
  std::string controller_log;
  int controller_starts = 0;
};
Nodes* g_nodes = nullptr;

class ControllerE2ETest : public E2ETest {
 protected:
  void SetUp() override {
    E2ETest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (g_nodes == nullptr) {
      g_nodes = new Nodes();  // lives for the binary: the cluster outlives every test
      ASSERT_NO_FATAL_FAILURE(StartEverything());
    }
    ASSERT_NE(g_nodes->controller, nullptr) << "the shared set-up failed in an earlier test";
    for (const auto& [node, k] : g_nodes->kubelets) {
      AddLogOnFailure("kubelet-sim " + node, k->log_path());
      AddLogOnFailure("plugin " + node, k->root() + "/plugin.log");
    }
    AddLogOnFailure("tessera-controller", g_nodes->controller_log);
  }

  void StartEverything() {
    for (const char* crd :
         {"gpuinventories.tessera.dev.yaml", "gpupartitionpolicies.tessera.dev.yaml"}) {
      CommandResult r = cluster().Kubectl(
          {"apply", "--server-side", "-f", StrCat(TESSERA_SOURCE_DIR, "/deploy/crds/", crd)});
      ASSERT_TRUE(r.ok()) << r.Describe();
    }
    for (const auto& [name, cel] : std::vector<std::pair<std::string, std::string>>{
             {"gpu.tessera.dev", "device.attributes[\"gpu.tessera.dev\"].type == \"gpu\""},
             {"mig.gpu.tessera.dev", "device.attributes[\"gpu.tessera.dev\"].type == \"mig\""},
             {"mps.gpu.tessera.dev", "device.attributes[\"gpu.tessera.dev\"].type == \"mps\""},
             {"timeslice.gpu.tessera.dev",
              "device.attributes[\"gpu.tessera.dev\"].type == \"timeslice\""}}) {
      E2E_ASSERT_OK(cluster().Create(DeviceClass(name, kDriver, cel).dump()));
    }
    E2E_ASSERT_OK(cluster().Create(kPolicies));
    for (const auto& [node, model] : std::vector<std::pair<std::string, std::string>>{
             {"n0", "a100-40gb"}, {"n1", "h100-80gb"}}) {
      absl::StatusOr<std::unique_ptr<KubeletSim>> k = KubeletSim::Start(cluster(), node);
      E2E_ASSERT_OK(k.status());
      g_nodes->kubelets[node] = std::move(*k);
      g_nodes->models[node] = model;
      ASSERT_NO_FATAL_FAILURE(StartPlugin(node));
    }
    ASSERT_NO_FATAL_FAILURE(StartController());
  }

  void StartPlugin(const std::string& node) {
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = StartTesseraPlugin(
        cluster(), *g_nodes->kubelets.at(node),
        {.binary = TESSERA_PLUGIN_BINARY,
         .source_dir = TESSERA_SOURCE_DIR,
         .fake_gpus_yaml = StrCat("gpus:\n- model: ", g_nodes->models.at(node), "\n  count: 8\n"),
         .metrics_address = "0"});
    E2E_ASSERT_OK(started.status());
    g_nodes->plugins[node] = std::move(*started);
  }

  void StartController() {
    g_nodes->controller_log =
        StrCat(cluster().dir(), "/controller-", g_nodes->controller_starts++, ".log");
    ProcessOptions p;
    p.argv = {TESSERA_CONTROLLER_BINARY,
              StrCat("--kubeconfig=", cluster().kubeconfig()),
              "--leader-election-namespace=default",
              "--lease-duration-seconds=4",
              "--renew-deadline-seconds=3",
              "--retry-period-seconds=1",
              "--heartbeat-timeout-seconds=15",
              "--coalesce-ms=50",
              "--metrics-address=0",
              "--health-address=0",
              "--verbosity=1"};
    p.stdout_path = g_nodes->controller_log;
    absl::StatusOr<std::unique_ptr<ChildProcess>> started = ChildProcess::Start(std::move(p));
    E2E_ASSERT_OK(started.status());
    g_nodes->controller = std::move(*started);
    E2E_ASSERT_OK(g_nodes->controller->WaitForLine("tessera-controller publishing", 60s).status());
  }

  std::string Root(const std::string& node) { return g_nodes->kubelets.at(node)->root(); }

  absl::StatusOr<Json> FakeGpus(const std::string& node) {
    return FakeGpuState(*g_nodes->kubelets.at(node));
  }
  absl::StatusOr<std::set<std::string>> InstanceKeys(const std::string& node) {
    return FakeMigInstances(*g_nodes->kubelets.at(node));
  }

  // The node's slices of our driver: OK when the pool is complete and valid in the scheduler's
  // eyes (one generation, resourceSliceCount slices, unique device names).
  absl::StatusOr<Json> CompletePool(const std::string& node) {
    absl::StatusOr<Json> list = cluster().GetJson({"resourceslices"});
    if (!list.ok()) return list.status();
    std::int64_t generation = -1;
    std::vector<Json> pool;
    for (const Json& s : (*list)["items"]) {
      if (s["spec"]["driver"] != kDriver || s["spec"]["pool"]["name"] != node) continue;
      pool.push_back(s);
      generation = std::max<std::int64_t>(generation, s["spec"]["pool"]["generation"]);
    }
    if (pool.empty()) return absl::NotFoundError(StrCat("no slices for ", node));
    std::set<std::string> names;
    std::int64_t count = 0, expected = -1;
    Json devices = Json::array();
    for (const Json& s : pool) {
      if (s["spec"]["pool"]["generation"] != generation) continue;
      ++count;
      expected = s["spec"]["pool"]["resourceSliceCount"];
      for (const Json& d : s["spec"].value("devices", Json::array())) {
        if (!names.insert(d["name"].get<std::string>()).second) {
          return absl::InternalError(StrCat("device ", d["name"].dump(), " twice in ", node));
        }
        devices.push_back(d["name"]);
      }
    }
    if (count != expected) {
      return absl::UnavailableError(
          StrCat("pool ", node, " generation ", generation, ": ", count, " of ", expected));
    }
    return Json{{"generation", generation}, {"slices", count}, {"devices", devices}};
  }

  Json Template(const std::string& name, Json request) {
    return {{"apiVersion", "resource.k8s.io/v1"},
            {"kind", "ResourceClaimTemplate"},
            {"metadata", {{"name", name}}},
            {"spec", {{"spec", {{"devices", {{"requests", Json::array({request})}}}}}}}};
  }
  static Json Exactly(const std::string& cls, const std::string& cel, Json capacity = nullptr) {
    Json exactly = {{"deviceClassName", cls}};
    if (!cel.empty()) exactly["selectors"] = {{{"cel", {{"expression", cel}}}}};
    if (!capacity.is_null()) exactly["capacity"] = {{"requests", capacity}};
    return {{"name", "gpu"}, {"exactly", exactly}};
  }
  static std::string Attr(const std::string& name) {
    return StrCat("device.attributes[\"gpu.tessera.dev\"].", name);
  }

  // Creates the template and a pod on `node` using it.
  void Run(const std::string& pod, const Json& request, const std::string& node) {
    E2E_ASSERT_OK(Create(Template(pod, request).dump()));
    E2E_ASSERT_OK(Create(PodWithClaim(pod, pod, node).dump()));
  }

  // The device the scheduler allocated to the pod's claim.
  absl::StatusOr<Json> Result(const Json& pod) {
    const std::string claim = pod["status"]["resourceClaimStatuses"][0]["resourceClaimName"];
    absl::StatusOr<Json> c = Get("resourceclaim", claim);
    if (!c.ok()) return c.status();
    return (*c)["status"]["allocation"]["devices"]["results"][0];
  }

  // The pod's scheduling failure message, once the scheduler has given one.
  absl::StatusOr<std::string> Unschedulable(const std::string& pod) {
    std::string message;
    absl::Status s = Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> p = Get("pod", pod);
          if (!p.ok()) return p.status();
          for (const Json& c : (*p)["status"].value("conditions", Json::array())) {
            if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "False") {
              message = c.value("message", "");
              return absl::OkStatus();
            }
          }
          return absl::UnavailableError(StrCat(pod, ": ", (*p)["status"].dump()));
        },
        60s);
    if (!s.ok()) return s;
    return message;
  }

  void DeletePods(const std::vector<std::string>& pods) {
    for (const std::string& p : pods) {
      cluster().Kubectl({"delete", "pod", p, "-n", ns(), "--wait=false"});
    }
  }

  // Every fake GPU of both nodes without MIG instances (everything unprepared).
  absl::Status GpusEmpty() {
    for (const std::string node : {"n0", "n1"}) {
      absl::StatusOr<std::set<std::string>> instances = InstanceKeys(node);
      if (!instances.ok()) return instances.status();
      if (!instances->empty()) {
        return absl::UnavailableError(
            StrCat(node, " still has instances: ", Json(*instances).dump()));
      }
    }
    return absl::OkStatus();
  }
};

TEST_F(ControllerE2ETest, PoliciesAreAcceptedAndPoolsPublished) {
  for (const std::string node : {"n0", "n1"}) {
    E2E_ASSERT_OK(Eventually([&] { return CompletePool(node).status(); }, 60s));
  }
  absl::StatusOr<Json> n1 = CompletePool("n1");
  E2E_ASSERT_OK(n1.status());
  // 8 mig-dynamic H100s: every placement of every profile plus the whole GPU, 26 per GPU.
  EXPECT_EQ((*n1)["devices"].size(), 8u * 26u) << n1->dump();
  for (const std::string policy : {"e2e-a100", "e2e-h100"}) {
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<Json> p = cluster().GetJson({"gpupartitionpolicies", policy});
          if (!p.ok()) return p.status();
          const Json status = (*p).value("status", Json::object());
          if (status.value("selectedNodes", 0) != 1) return absl::UnavailableError(status.dump());
          for (const Json& c : status.value("conditions", Json::array())) {
            if (c["type"] == "Accepted" && c["status"] == "True") return absl::OkStatus();
          }
          return absl::UnavailableError(status.dump());
        },
        30s));
  }
}

TEST_F(ControllerE2ETest, EveryClaimKindIsAllocatedPreparedAndFreed) {
  struct Case {
    std::string pod;
    Json request;
    std::string node;
    std::string device_regex;
  };
  const std::vector<Case> cases = {
      {"whole", Exactly("gpu.tessera.dev", Attr("index") + " == 6"), "n0", "gpu-6"},
      {"mig-1g", Exactly("mig.gpu.tessera.dev", Attr("profileClass") + " == \"1g\""), "n0",
       "gpu-[0-2]-mig-1g5gb-p[0-6]"},
      {"mig-2g", Exactly("mig.gpu.tessera.dev", Attr("profileClass") + " == \"2g\""), "n1",
       "gpu-[0-7]-mig-2g20gb-p[0-9]"},
      {"mig-3g", Exactly("mig.gpu.tessera.dev", Attr("profileClass") + " == \"3g\""), "n1",
       "gpu-[0-7]-mig-3g40gb-p[04]"},
      {"mig-7g", Exactly("mig.gpu.tessera.dev", Attr("profileClass") + " == \"7g\""), "n1",
       "gpu-[0-7]-mig-7g80gb-p0"},
      {"mps-a",
       Exactly("mps.gpu.tessera.dev", Attr("index") + " == 4",
               {{"memory", "10Gi"}, {"compute", "25"}}),
       "n0", "gpu-4-mps"},
      {"mps-b",
       Exactly("mps.gpu.tessera.dev", Attr("index") + " == 4",
               {{"memory", "20Gi"}, {"compute", "50"}}),
       "n0", "gpu-4-mps"},
      {"timeslice", Exactly("timeslice.gpu.tessera.dev", ""), "n0", "gpu-5-ts"},
      {"mig-mps", Exactly("mps.gpu.tessera.dev", Attr("profileClass") + " == \"2g\""), "n0",
       "gpu-3-mig-2g10gb-p[0-9]-mps"},
      {"first-available",
       {{"name", "gpu"},
        {"firstAvailable",
         {{{"name", "small"},
           {"deviceClassName", "mig.gpu.tessera.dev"},
           {"selectors", {{{"cel", {{"expression", Attr("profileClass") + " == \"2g\""}}}}}}},
          {{"name", "big"},
           {"deviceClassName", "mig.gpu.tessera.dev"},
           {"selectors", {{{"cel", {{"expression", Attr("profileClass") + " == \"3g\""}}}}}}}}}},
       "n1",
       "gpu-[0-7]-mig-2g20gb-p[0-9]"},
  };
  for (const Case& c : cases) ASSERT_NO_FATAL_FAILURE(Run(c.pod, c.request, c.node));
  std::vector<std::string> pods;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.pod);
    pods.push_back(c.pod);
    absl::StatusOr<Json> pod = RunningPod(c.pod);
    E2E_ASSERT_OK(pod.status());
    absl::StatusOr<Json> result = Result(*pod);
    E2E_ASSERT_OK(result.status());
    const std::string device = (*result)["device"];
    EXPECT_THAT(device, MatchesRegex(c.device_regex));
    EXPECT_EQ((*result)["pool"], c.node);
    if (c.pod == "first-available") {
      EXPECT_EQ((*result)["request"], "gpu/small");
    }
    if (c.pod == "mps-a") {
      EXPECT_EQ((*result)["consumedCapacity"]["memory"], "10Gi");
    }
    // A MIG partition exists on the fake GPU at exactly the allocated placement.
    if (std::optional<MigName> mig = ParseMig(device)) {
      absl::StatusOr<std::set<std::string>> instances = InstanceKeys(c.node);
      E2E_ASSERT_OK(instances.status());
      EXPECT_TRUE(instances->count(mig->Key()) == 1)
          << device << " not on the fake GPU: " << Json(*instances).dump();
    }
  }
  // Both MPS claims run on GPU 4 with their own limits, as the plugin reports them.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> inv = cluster().GetJson({"gpuinventories.tessera.dev", "n0"});
        if (!inv.ok()) return inv.status();
        std::set<std::string> limits;
        for (const Json& s : (*inv)["spec"]["gpus"][4].value("shares", Json::array())) {
          limits.insert(StrCat(s.value("pinnedDeviceMemoryLimit", ""), "/",
                               s.value("activeThreadPercentage", 0)));
        }
        return limits == std::set<std::string>{"10Gi/25", "20Gi/50"}
                   ? absl::OkStatus()
                   : absl::UnavailableError((*inv)["spec"]["gpus"][4].dump());
      },
      30s));
  DeletePods(pods);
  E2E_ASSERT_OK(Eventually([&] { return GpusEmpty(); }, 90s));
}

TEST_F(ControllerE2ETest, SevenOneGPodsFitOneA100AndTheEighthWaits) {
  const Json request = Exactly("mig.gpu.tessera.dev",
                               Attr("index") + " == 0 && " + Attr("profileClass") + " == \"1g\"");
  std::vector<std::string> pods;
  for (int i = 0; i < 7; ++i) {
    pods.push_back(StrCat("one-g-", i));
    ASSERT_NO_FATAL_FAILURE(Run(pods.back(), request, "n0"));
  }
  std::set<std::string> devices;
  for (const std::string& p : pods) {
    absl::StatusOr<Json> pod = RunningPod(p);
    E2E_ASSERT_OK(pod.status());
    absl::StatusOr<Json> result = Result(*pod);
    E2E_ASSERT_OK(result.status());
    devices.insert((*result)["device"].get<std::string>());
  }
  EXPECT_EQ(devices.size(), 7u);
  absl::StatusOr<Json> state = FakeGpus("n0");
  E2E_ASSERT_OK(state.status());
  EXPECT_EQ((*state)["gpus"][0]["instances"].size(), 7u);

  ASSERT_NO_FATAL_FAILURE(Run("one-g-7", request, "n0"));
  absl::StatusOr<std::string> why = Unschedulable("one-g-7");
  E2E_ASSERT_OK(why.status());
  EXPECT_THAT(*why, HasSubstr("cannot allocate all claims"));

  DeletePods({pods[3]});
  absl::StatusOr<Json> eighth = RunningPod("one-g-7", 120s);
  E2E_ASSERT_OK(eighth.status());
  pods.erase(pods.begin() + 3);
  pods.push_back("one-g-7");
  DeletePods(pods);
  E2E_ASSERT_OK(Eventually([&] { return GpusEmpty(); }, 90s));
}

TEST_F(ControllerE2ETest, OverlappingPlacementsAreNeverAllocatedTogether) {
  const std::uint64_t seed = 20261121;
  std::mt19937_64 rng(seed);
  SCOPED_TRACE(StrCat("seed ", seed));
  const std::vector<std::string> classes = {"1g", "1g", "2g", "3g", "4g", "7g"};
  std::set<std::string> live;
  int next = 0;
  for (int round = 0; round < 3; ++round) {
    for (int k = 0; k < 8; ++k) {
      const std::string cls = classes[rng() % classes.size()];
      const std::string pod = StrCat("r", next++, "-", cls);
      // Two GPUs only, so that the sequence really contends for placements.
      ASSERT_NO_FATAL_FAILURE(Run(
          pod,
          Exactly("mig.gpu.tessera.dev",
                  StrCat(Attr("index"), " <= 1 && ", Attr("profileClass"), " == \"", cls, "\"")),
          "n1"));
      live.insert(pod);
    }
    // Every pod either runs or is refused by the scheduler.
    std::map<std::string, std::string> allocated;  // pod -> device
    for (const std::string& p : live) {
      E2E_ASSERT_OK(Eventually(
          [&]() -> absl::Status {
            absl::StatusOr<Json> pod = Get("pod", p);
            if (!pod.ok()) return pod.status();
            if ((*pod)["status"].value("phase", "") == "Running") {
              absl::StatusOr<Json> r = Result(*pod);
              if (!r.ok()) return r.status();
              allocated[p] = (*r)["device"];
              return absl::OkStatus();
            }
            for (const Json& c : (*pod)["status"].value("conditions", Json::array())) {
              if (c.value("type", "") == "PodScheduled" && c.value("status", "") == "False")
                return absl::OkStatus();
            }
            return absl::UnavailableError(StrCat(p, ": ", (*pod)["status"].dump()));
          },
          90s));
    }
    // No two allocated partitions share a memory slice of one GPU, and the fake GPUs hold
    // exactly the allocated partitions.
    std::map<int, std::uint8_t> used;
    std::set<std::string> expected;
    for (const auto& [pod, device] : allocated) {
      std::optional<MigName> m = ParseMig(device);
      ASSERT_TRUE(m.has_value()) << device;
      const int size = SizeOfToken(m->token);
      ASSERT_GT(size, 0) << device;
      const std::uint8_t mask = static_cast<std::uint8_t>(((1u << size) - 1) << m->start);
      EXPECT_EQ(used[m->gpu] & mask, 0) << pod << " got " << device << " overlapping another";
      used[m->gpu] |= mask;
      expected.insert(m->Key());
    }
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          absl::StatusOr<std::set<std::string>> actual = InstanceKeys("n1");
          if (!actual.ok()) return actual.status();
          return *actual == expected
                     ? absl::OkStatus()
                     : absl::UnavailableError(StrCat("fake GPUs: ", Json(*actual).dump(),
                                                     " allocations: ", Json(expected).dump()));
        },
        60s));
    // Free a random half.
    std::vector<std::string> victims;
    for (const std::string& p : live) {
      if (rng() % 2 == 0) victims.push_back(p);
    }
    DeletePods(victims);
    for (const std::string& v : victims) live.erase(v);
    E2E_ASSERT_OK(Eventually(
        [&]() -> absl::Status {
          for (const std::string& v : victims) {
            if (Get("pod", v).ok()) return absl::UnavailableError(v + " still there");
          }
          return absl::OkStatus();
        },
        60s));
  }
  DeletePods(std::vector<std::string>(live.begin(), live.end()));
  E2E_ASSERT_OK(Eventually([&] { return GpusEmpty(); }, 90s));
}

TEST_F(ControllerE2ETest, RestartsInTheMiddleOfAStreamLeavePoolsConsistent) {
  std::vector<std::string> pods;
  auto launch = [&](int n) {
    for (int i = 0; i < n; ++i) {
      const std::string cls = pods.size() % 2 == 0 ? "1g" : "2g";
      pods.push_back(StrCat("s", pods.size(), "-", cls));
      Run(pods.back(), Exactly("mig.gpu.tessera.dev", Attr("profileClass") + " == \"" + cls + "\""),
          "n1");
    }
  };
  launch(3);
  // The controller dies without a word (no lease release) and comes back.
  g_nodes->controller->Signal(SIGKILL);
  g_nodes->controller->Stop(5s);
  launch(2);
  ASSERT_NO_FATAL_FAILURE(StartController());
  launch(2);
  // The plugin of n1 stops and comes back.
  g_nodes->plugins["n1"]->Stop();
  launch(2);
  ASSERT_NO_FATAL_FAILURE(StartPlugin("n1"));
  launch(2);

  std::set<std::string> expected;
  for (const std::string& p : pods) {
    absl::StatusOr<Json> pod = RunningPod(p, 180s);
    E2E_ASSERT_OK(pod.status());
    absl::StatusOr<Json> r = Result(*pod);
    E2E_ASSERT_OK(r.status());
    std::optional<MigName> m = ParseMig((*r)["device"]);
    ASSERT_TRUE(m.has_value());
    expected.insert(m->Key());
  }
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 60s));
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n0").status(); }, 60s));
  absl::StatusOr<std::set<std::string>> actual = InstanceKeys("n1");
  E2E_ASSERT_OK(actual.status());
  EXPECT_EQ(*actual, expected) << "every running claim prepared, nothing else";
  DeletePods(pods);
  E2E_ASSERT_OK(Eventually([&] { return GpusEmpty(); }, 90s));
}

TEST_F(ControllerE2ETest, SlicesAreWithdrawnWhenThePluginStopsAndReturnWithIt) {
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 60s));
  g_nodes->plugins["n1"]->Stop();
  // Heartbeat timeout 15 s; the kubelet would also wipe after 30 s.
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> pool = CompletePool("n1");
        if (absl::IsNotFound(pool.status())) return absl::OkStatus();
        return absl::UnavailableError("n1 still has slices");
      },
      60s));
  // n0 is untouched.
  E2E_ASSERT_OK(CompletePool("n0").status());
  ASSERT_NO_FATAL_FAILURE(StartPlugin("n1"));
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 60s));
}

// The controller watches slices by their metadata only; a spec changed by anyone else bumps
// metadata.generation past the one its annotation vouches for, and the slice is read and put back.
TEST_F(ControllerE2ETest, ASliceChangedBySomeoneElseIsPutBack) {
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 60s));
  absl::StatusOr<Json> list = cluster().GetJson({"resourceslices"});
  E2E_ASSERT_OK(list.status());
  std::string name;
  for (const Json& s : (*list)["items"]) {
    if (s["spec"]["pool"]["name"] == "n1" && !s["spec"].value("devices", Json::array()).empty()) {
      name = s["metadata"]["name"];
      EXPECT_TRUE(s["metadata"]["annotations"].contains("tessera.dev/published")) << s.dump();
      break;
    }
  }
  ASSERT_FALSE(name.empty());
  CommandResult patched = cluster().Kubectl(
      {"patch", "resourceslice", name, "--type=json", "-p",
       R"([{"op":"add","path":"/spec/devices/0/attributes/tampered","value":{"string":"yes"}}])"});
  ASSERT_TRUE(patched.ok()) << patched.err;
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> l = cluster().GetJson({"resourceslices"});
        if (!l.ok()) return l.status();
        for (const Json& s : (*l)["items"]) {
          if (s["spec"]["pool"]["name"] != "n1") continue;
          for (const Json& d : s["spec"].value("devices", Json::array())) {
            if (d["attributes"].contains("tampered"))
              return absl::UnavailableError(StrCat(s["metadata"]["name"].get<std::string>(),
                                                   " still has the foreign attribute"));
          }
        }
        return absl::OkStatus();
      },
      30s));
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 30s));
}

TEST_F(ControllerE2ETest, AnInvalidPolicyIsReportedAndThePoolStays) {
  E2E_ASSERT_OK(Eventually([&] { return CompletePool("n1").status(); }, 60s));
  absl::StatusOr<Json> before = CompletePool("n1");
  E2E_ASSERT_OK(before.status());
  CommandResult r = cluster().Kubectl(
      {"patch", "gpupartitionpolicies", "e2e-h100", "--type=json", "-p",
       R"([{"op":"replace","path":"/spec/gpus/0","value":{"match":{"models":["h100-81gb"]},"mode":"whole"}}])"});
  ASSERT_TRUE(r.ok()) << r.Describe();
  E2E_ASSERT_OK(Eventually(
      [&]() -> absl::Status {
        absl::StatusOr<Json> p = cluster().GetJson({"gpupartitionpolicies", "e2e-h100"});
        if (!p.ok()) return p.status();
        const Json status = p->value("status", Json::object());
        for (const Json& c : status.value("conditions", Json::array())) {
          if (c["type"] == "Accepted" && c["status"] == "False" &&
              c.value("message", "")
                      .find("spec.gpus[0].match.models[0]: unknown GPU model "
                            "\"h100-81gb\"") != std::string::npos) {
            return absl::OkStatus();
          }
        }
        return absl::UnavailableError(status.dump());
      },
      30s));
  absl::StatusOr<Json> after = CompletePool("n1");
  E2E_ASSERT_OK(after.status());
  EXPECT_EQ(*after, *before) << "the last valid policy stays in force";
  r = cluster().Kubectl(
      {"patch", "gpupartitionpolicies", "e2e-h100", "--type=json", "-p",
       R"([{"op":"replace","path":"/spec/gpus/0","value":{"mode":"mig-dynamic"}}])"});
  ASSERT_TRUE(r.ok()) << r.Describe();
}

}  // namespace
}  // namespace tessera::e2e
