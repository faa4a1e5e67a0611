// Crash tests: the real tessera-kubelet-plugin binary, killed (SIGKILL) at every fault point of
// prepare and unprepare, then restarted. After the restart and the kubelet's retries, the fake GPUs
// must hold exactly the MIG instances that completed claims own — none leaked, none created twice
// — and no MPS daemon or CDI spec may outlive its claims.
//
// Claims come from a loopback HTTP server that answers the API server's claim GET (and accepts
// the GpuInventory writes).
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tessera/plugin/checkpoint.h"
#include "tessera/plugin/fake_backend.h"
#include "tessera/plugin/fault.h"
#include "tessera/plugin/files.h"
#include "tessera/plugin/mps.h"
#include "test/integration/plugin/fake_kubelet.h"
#include "test/integration/plugin/plugin_env.h"
#include "test/integration/plugin/plugin_process.h"

namespace tessera::testing {
namespace {

using ::testing::HasSubstr;

// The fake GPUs' instances as the state file holds them: (gpu, profile, start).
std::vector<std::tuple<int, std::string, int>> Instances(const TempDir& dir) {
  std::vector<std::tuple<int, std::string, int>> out;
  absl::StatusOr<std::string> text = plugin::ReadWholeFile(dir / "data/fake-gpus-state.json");
  if (!text.ok()) return out;
  absl::StatusOr<nlohmann::json> read = plugin::ReadFakeGpuState(*text);
  EXPECT_TRUE(read.ok()) << read.status();
  if (!read.ok()) return out;
  nlohmann::json& state = *read;
  for (std::size_t g = 0; g < state["gpus"].size(); ++g) {
    for (const auto& i : state["gpus"][g]["instances"]) {
      out.emplace_back(static_cast<int>(g), i["profile"].get<std::string>(), i["start"].get<int>());
    }
  }
  return out;
}

std::size_t Count(const std::string& dir) {
  if (!std::filesystem::exists(dir)) return 0;
  std::size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp.") == std::string::npos) ++n;
  }
  return n;
}

// The claims the checkpoint holds for `boot_id`; only while no plugin runs (opening the store
// rewrites its journal).
std::size_t StoredClaims(const TempDir& dir, const std::string& boot_id) {
  plugin::CheckpointLoadReport report;
  absl::StatusOr<std::unique_ptr<plugin::CheckpointStore>> store =
      plugin::CheckpointStore::Open(dir / "data/checkpoint", boot_id, &report);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? (*store)->All().size() : 0;
}

class CrashTest : public ::testing::TestWithParam<std::string_view> {
 protected:
  void SetUp() override {
    WritePluginFiles(dir_, "gpus:\n- model: h100-80gb\n  count: 2\n", api_.Kubeconfig(), "boot-1");
    // An MPS share inside a dynamically created MIG instance reaches every fault point.
    api_.Put(AllocatedClaim("c1", "uid-c1",
                            {{.device = "gpu-1-mig-3g40gb-p4-mps",
                              .share_id = "s1",
                              .consumed = {{"memory", "4Gi"}}}}));
  }
  void TearDown() override {
    plugin::MpsManager mps(
        {.control_binary = TESSERA_FAKE_MPS_CONTROL, .root_dir = dir_ / "data/mps"});
    for (const plugin::MpsDaemon& d : mps.List()) (void)mps.Stop(d.device_uuid);
  }

  // Prepares (or unprepares) through a fresh kubelet connection; the reply, or the gRPC error.
  std::string Call(PluginProcess& p, bool prepare) {
    FakeKubelet k;
    k.Connect(p.dra_socket(), "v1.DRAPlugin");
    std::map<std::string, ClaimReply> out;
    const KubeletClaim c{.namespace_ = "default", .name = "c1", .uid = "uid-c1"};
    grpc::Status s = prepare ? k.Prepare({c}, &out) : k.Unprepare({c}, &out);
    if (!s.ok()) return "grpc: " + s.error_message();
    return out["uid-c1"].error;
  }

  std::size_t MpsDaemons() {
    plugin::MpsManager mps(
        {.control_binary = TESSERA_FAKE_MPS_CONTROL, .root_dir = dir_ / "data/mps"});
    std::size_t running = 0;
    for (const plugin::MpsDaemon& d : mps.List()) running += d.pid > 0 ? 1 : 0;
    return running;
  }

  TempDir dir_;
  FakeApiServer api_;
};

TEST_P(CrashTest, RestartLeavesExactlyTheInstancesOfCompletedClaims) {
  const std::string point(GetParam());
  const bool in_prepare = point.starts_with("prepare.");
  const std::vector<std::tuple<int, std::string, int>> one = {{1, "3g.40gb", 4}};
  {
    PluginProcess p(dir_, point);
    ASSERT_TRUE(p.WaitReady());
    if (in_prepare) {
      EXPECT_THAT(Call(p, true), HasSubstr("grpc:"));  // the plugin died mid-call
    } else {
      ASSERT_EQ(Call(p, true), "");
      EXPECT_THAT(Call(p, false), HasSubstr("grpc:"));
    }
    ASSERT_TRUE(p.WaitKilled()) << "fault point " << point << " was not reached";
  }
  {
    PluginProcess p(dir_, "");
    ASSERT_TRUE(p.WaitReady());
    if (in_prepare) {
      // Reconciled: a half-done prepare is rolled back, a finished one is kept.
      EXPECT_EQ(Instances(dir_).size(), point == "prepare.done" ? 1u : 0u);
      // The kubelet retries: exactly one instance, one daemon, one spec.
      ASSERT_EQ(Call(p, true), "");
      EXPECT_EQ(Instances(dir_), one);
      EXPECT_EQ(MpsDaemons(), 1u);
      EXPECT_EQ(Count(dir_ / "cdi"), 1u);
      ASSERT_EQ(Call(p, false), "");
    } else {
      // The half-done unprepare was finished at start-up; the kubelet's retry is a no-op.
      EXPECT_TRUE(Instances(dir_).empty());
      EXPECT_EQ(Call(p, false), "");
    }
    EXPECT_TRUE(Instances(dir_).empty());
    EXPECT_EQ(MpsDaemons(), 0u);
    EXPECT_EQ(Count(dir_ / "cdi"), 0u);
  }
  EXPECT_EQ(StoredClaims(dir_, "boot-1"), 0u);
}

INSTANTIATE_TEST_SUITE_P(EveryFaultPoint, CrashTest, ::testing::ValuesIn(plugin::fault::kPoints),
                         [](const ::testing::TestParamInfo<std::string_view>& param) {
                           std::string name(param.param);
                           for (char& c : name) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return name;
                         });

TEST(RebootTest, PreparedStateOfAnotherBootIsForgotten) {
  TempDir dir;
  FakeApiServer api;
  WritePluginFiles(dir, "gpus:\n- model: h100-80gb\n  count: 1\n", api.Kubeconfig(), "boot-1");
  api.Put(AllocatedClaim("c1", "uid-c1", {{.device = "gpu-0"}}));
  {
    PluginProcess p(dir, "");
    ASSERT_TRUE(p.WaitReady());
    FakeKubelet k;
    k.Connect(p.dra_socket(), "v1.DRAPlugin");
    std::map<std::string, ClaimReply> out;
    ASSERT_TRUE(k.Prepare({{.namespace_ = "default", .name = "c1", .uid = "uid-c1"}}, &out).ok());
    ASSERT_EQ(out["uid-c1"].error, "");
  }
  EXPECT_EQ(StoredClaims(dir, "boot-1"), 1u);
  WriteFile(dir / "boot_id", "boot-2\n");
  {
    PluginProcess p(dir, "");
    ASSERT_TRUE(p.WaitReady());
    EXPECT_EQ(Count(dir / "cdi"), 0u);
  }
  EXPECT_EQ(StoredClaims(dir, "boot-1"), 0u);  // the second boot dropped it
}

TEST(FlagTest, UnknownLockScopeStopsThePluginNamingTheFlagAndTheValues) {
  TempDir dir;
  FakeApiServer api;
  WritePluginFiles(dir, "gpus:\n- model: h100-80gb\n  count: 1\n", api.Kubeconfig(), "boot-1");
  setenv("TESSERA_LOCK_SCOPE", "socket", 1);  // the flag's environment variable
  PluginProcess p(dir, "");
  unsetenv("TESSERA_LOCK_SCOPE");
  bool exited = false;
  for (int i = 0; i < 400 && !exited; ++i) {
    exited = p.Exited();
    if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  ASSERT_TRUE(exited);
  absl::StatusOr<std::string> log = plugin::ReadWholeFile(dir / "plugin.log");
  ASSERT_TRUE(log.ok());
  EXPECT_THAT(*log,
              HasSubstr(R"(--lock-scope (TESSERA_LOCK_SCOPE): "socket" is not one of gpu, node)"));
  EXPECT_FALSE(std::filesystem::exists(dir / "kubelet/plugins/gpu.tessera.dev/dra.sock"));
}

}  // namespace
}  // namespace tessera::testing
