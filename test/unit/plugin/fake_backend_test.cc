// The fake GPU backend behaves as NVML does: the same errors for the same mistakes, instances that
// survive a restart through the state file, and strict parsing of the node description.

#include "tessera/plugin/fake_backend.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;

constexpr const char* kNode = R"(
driverVersion: "550.54.15"
gpus:
- model: h100-80gb
  count: 2
  instances:
  - {profile: 3g.40gb, start: 4}
- model: a100-40gb
  migEnabled: false
)";

class FakeBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("fake-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    state_ = (dir_ / "state.json").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::unique_ptr<FakeGpuBackend> Open() {
    absl::StatusOr<FakeNodeSpec> spec = ParseFakeNodeSpec(kNode);
    EXPECT_TRUE(spec.ok()) << spec.status();
    absl::StatusOr<std::unique_ptr<FakeGpuBackend>> b = FakeGpuBackend::Open(*spec, state_);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }
  fs::path dir_;
  std::string state_;
};

int ProfileId(const NodeInventory& inv, int gpu, const std::string& name) {
  for (const api::MigProfileInfo& p : inv.gpus[gpu].mig_profiles) {
    if (p.name == name) return p.profile_id;
  }
  return -1;
}

TEST_F(FakeBackendTest, DiscoversTheDescribedGpus) {
  std::unique_ptr<FakeGpuBackend> b = Open();
  absl::StatusOr<NodeInventory> inv = b->Discover();
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->driver_version, "550.54.15");
  ASSERT_EQ(inv->gpus.size(), 3u);
  EXPECT_EQ(inv->gpus[0].model, "h100-80gb");
  EXPECT_EQ(inv->gpus[0].product, "NVIDIA H100 80GB HBM3");
  EXPECT_NE(inv->gpus[0].uuid, inv->gpus[1].uuid);
  EXPECT_EQ(inv->gpus[0].mig_profiles.size(), 7u);
  ASSERT_EQ(inv->gpus[0].mig_instances.size(), 1u);
  EXPECT_EQ(inv->gpus[0].mig_instances[0].profile, "3g.40gb");
  EXPECT_EQ(inv->gpus[0].mig_instances[0].placement.start, 4);
  EXPECT_FALSE(inv->gpus[0].mig_instances[0].created_by_tessera);
  EXPECT_FALSE(inv->gpus[2].mig_enabled);
  EXPECT_TRUE(inv->gpus[2].mig_profiles.empty());
  // Identities are stable across restarts.
  b.reset();
  EXPECT_EQ(Open()->Discover()->gpus[1].uuid, inv->gpus[1].uuid);
}

TEST_F(FakeBackendTest, CreateAndDestroyFailAsNvmlDoes) {
  std::unique_ptr<FakeGpuBackend> b = Open();
  const NodeInventory inv = *b->Discover();
  const int p1g = ProfileId(inv, 0, "1g.10gb"), p3g = ProfileId(inv, 0, "3g.40gb"),
            p4g = ProfileId(inv, 0, "4g.40gb");

  absl::StatusOr<api::MigInstanceInfo> made = b->CreateMigInstance(0, p1g, {2, 1});
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_EQ(made->gpu_instance_id, 2);  // 1 is the pre-existing 3g
  EXPECT_TRUE(made->created_by_tessera);
  EXPECT_EQ(made->uuid.rfind("MIG-", 0), 0u);

  auto code = [](const absl::Status& s) { return NvmlErrorOf(s).value_or(NvmlError::kUnknown); };
  EXPECT_EQ(code(b->CreateMigInstance(0, p1g, {2, 1}).status()),
            NvmlError::kInsufficientResources);  // occupied
  EXPECT_EQ(code(b->CreateMigInstance(0, p4g, {0, 4}).status()),
            NvmlError::kInsufficientResources);  // overlaps
  EXPECT_EQ(code(b->CreateMigInstance(0, p3g, {2, 4}).status()),
            NvmlError::kInvalidArgument);  // not a placement
  EXPECT_EQ(code(b->CreateMigInstance(0, 77, {0, 1}).status()),
            NvmlError::kInvalidArgument);  // no profile
  EXPECT_EQ(code(b->CreateMigInstance(2, 19, {0, 1}).status()),
            NvmlError::kNotSupported);  // MIG off
  const absl::Status occupied = b->CreateMigInstance(0, p1g, {2, 1}).status();
  EXPECT_EQ(occupied.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(occupied.message().find("NVML_ERROR_INSUFFICIENT_RESOURCES (23)"), std::string::npos)
      << occupied;

  ASSERT_TRUE(b->SetInUse(0, 2, true).ok());
  const absl::Status busy = b->DestroyMigInstance(0, 2);
  EXPECT_EQ(code(busy), NvmlError::kInUse) << busy;
  EXPECT_EQ(busy.code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(b->SetInUse(0, 2, false).ok());
  EXPECT_TRUE(b->DestroyMigInstance(0, 2).ok());
  EXPECT_EQ(code(b->DestroyMigInstance(0, 2)), NvmlError::kNotFound);
  EXPECT_EQ(b->creates(), 1);
  EXPECT_EQ(b->destroys(), 1);
  // The freed GI ID is reused, as NVML does.
  EXPECT_EQ(b->CreateMigInstance(0, p1g, {0, 1})->gpu_instance_id, 2);
}

TEST_F(FakeBackendTest, InstancesSurviveARestartThroughTheStateFile) {
  std::string uuid;
  {
    std::unique_ptr<FakeGpuBackend> b = Open();
    const NodeInventory inv = *b->Discover();
    uuid = b->CreateMigInstance(1, ProfileId(inv, 1, "2g.20gb"), {2, 2})->uuid;
  }
  std::unique_ptr<FakeGpuBackend> again = Open();
  const NodeInventory inv = *again->Discover();
  ASSERT_EQ(inv.gpus[1].mig_instances.size(),
            2u);  // the described 3g on every GPU of the entry, and ours
  EXPECT_EQ(inv.gpus[1].mig_instances[1].uuid, uuid);
  EXPECT_EQ(inv.gpus[1].mig_instances[1].placement.start, 2);
  EXPECT_EQ(inv.gpus[1].mig_instances[1].profile, "2g.20gb");
  // A corrupt state file is refused, not silently replaced.
  std::ofstream(state_) << "{not json";
  absl::StatusOr<std::unique_ptr<FakeGpuBackend>> broken =
      FakeGpuBackend::Open(*ParseFakeNodeSpec(kNode), state_);
  EXPECT_EQ(broken.status().code(), absl::StatusCode::kDataLoss);
}

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

TEST_F(FakeBackendTest, ChangesAreAppendedAndReplayedAfterARestart) {
  {
    std::unique_ptr<FakeGpuBackend> b = Open();
    const NodeInventory inv = *b->Discover();
    const int p1g = ProfileId(inv, 0, "1g.10gb");
    ASSERT_TRUE(b->CreateMigInstance(0, p1g, {0, 1}).ok());  // GI 2 (GI 1: the described 3g)
    ASSERT_TRUE(b->CreateMigInstance(0, p1g, {1, 1}).ok());  // GI 3
    ASSERT_TRUE(b->DestroyMigInstance(0, 2).ok());
    ASSERT_TRUE(b->SetInUse(0, 3, true).ok());
    ASSERT_TRUE(b->SetTimeSlice(2, api::TimeSliceInterval::kLong).ok());
    // One snapshot line, then one line per change with the GPU's state: nothing was rewritten.
    const std::vector<std::string> lines = Lines(state_);
    ASSERT_EQ(lines.size(), 6u);
    EXPECT_NE(lines[1].find(R"("gpu":0)"), std::string::npos) << lines[1];
    EXPECT_NE(lines[1].find(R"("giId":2)"), std::string::npos) << lines[1];
    EXPECT_EQ(lines[3].find(R"("giId":2)"), std::string::npos) << lines[3];  // destroyed
    EXPECT_NE(lines[3].find(R"("giId":3)"), std::string::npos) << lines[3];
  }
  std::unique_ptr<FakeGpuBackend> again = Open();
  const NodeInventory inv = *again->Discover();
  ASSERT_EQ(inv.gpus[0].mig_instances.size(), 2u);
  EXPECT_EQ(inv.gpus[0].mig_instances[1].gpu_instance_id, 3);
  EXPECT_EQ(inv.gpus[0].mig_instances[1].placement.start, 1);
  EXPECT_EQ(inv.gpus[2].time_slice_interval, api::TimeSliceInterval::kLong);
  // Still in use after the restart: destroy fails as before.
  EXPECT_EQ(NvmlErrorOf(again->DestroyMigInstance(0, 3)), NvmlError::kInUse);
  // Opening rewrote the file as one snapshot line.
  EXPECT_EQ(Lines(state_).size(), 1u);
}

TEST_F(FakeBackendTest, TheStateFileIsRewrittenAfterManyChanges) {
  std::unique_ptr<FakeGpuBackend> b = Open();
  const int p1g = ProfileId(*b->Discover(), 0, "1g.10gb");
  for (int i = 0; i < 600; ++i) {
    ASSERT_TRUE(b->CreateMigInstance(0, p1g, {0, 1}).ok());
    ASSERT_TRUE(b->DestroyMigInstance(0, 2).ok());
  }
  // 1,200 changes, a snapshot every 512: 1,200 - 2 * 512 = 176 lines after the last one.
  EXPECT_EQ(Lines(state_).size(), 1u + 176u);
  ASSERT_TRUE(b->CreateMigInstance(0, p1g, {1, 1}).ok());
  std::unique_ptr<FakeGpuBackend> again = Open();
  EXPECT_EQ(again->Discover()->gpus[0].mig_instances.size(), 2u);
}

TEST_F(FakeBackendTest, TwoProcessesOnOneStateFileLeaveItReadable) {
  // A rolling update: two plugin processes, each with its own simulation, append to one file.
  std::unique_ptr<FakeGpuBackend> a = Open();
  std::unique_ptr<FakeGpuBackend> b = Open();
  const int p1g = ProfileId(*a->Discover(), 0, "1g.10gb");
  ASSERT_TRUE(a->CreateMigInstance(0, p1g, {0, 1}).ok());
  ASSERT_TRUE(b->CreateMigInstance(1, p1g, {1, 1}).ok());
  ASSERT_TRUE(a->DestroyMigInstance(0, 2).ok());
  ASSERT_TRUE(b->CreateMigInstance(0, p1g, {2, 1}).ok());  // b never saw a's instance on GPU 0
  // The last writer of each GPU wins.
  std::unique_ptr<FakeGpuBackend> again = Open();
  ASSERT_NE(again, nullptr);
  const NodeInventory inv = *again->Discover();
  ASSERT_EQ(inv.gpus[0].mig_instances.size(), 2u);
  EXPECT_EQ(inv.gpus[0].mig_instances[1].placement.start, 2);
  ASSERT_EQ(inv.gpus[1].mig_instances.size(), 2u);
  EXPECT_EQ(inv.gpus[1].mig_instances[1].placement.start, 1);
}

TEST(ReadFakeGpuStateTest, ReadsBothFormatsIgnoresATornLineAndNamesBadLines) {
  const std::string gpu0 =
      R"({"uuid":"GPU-a","model":"h100-80gb","migEnabled":true,"instances":[)"
      R"({"giId":1,"profile":"3g.40gb","start":4,"uuid":"MIG-1","inUse":false})";
  const std::string snapshot = R"({"version":2,"nextUuid":3,"gpus":[)" + gpu0 + "]}]}";
  const std::string change =
      R"({"gpu":0,"nextUuid":4,"state":)" + gpu0 +
      R"(,{"giId":2,"profile":"1g.10gb","start":0,"uuid":"MIG-2","inUse":false}]}})";
  absl::StatusOr<api::Json> state =
      ReadFakeGpuState(snapshot + "\n" + change + "\n" + R"({"gpu":0,"nextUuid":5,"sta)");
  ASSERT_TRUE(state.ok()) << state.status();
  const api::Json& instances = (*state)["gpus"][0]["instances"];
  ASSERT_EQ(instances.size(), 2u);  // the torn change was never acknowledged
  EXPECT_EQ(instances[1]["uuid"], "MIG-2");
  EXPECT_EQ((*state)["nextUuid"], 4);

  // Format 1: one indented document.
  api::Json v1 = api::Json::parse(snapshot);
  v1["version"] = 1;
  state = ReadFakeGpuState(v1.dump(1));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ((*state)["gpus"][0]["instances"].size(), 1u);

  for (const auto& [text, error] : std::vector<std::pair<std::string, std::string>>{
           {"", "no snapshot line"},
           {change + "\n", "line 1: not a version 2 fake GPU state snapshot"},
           {snapshot + "\n{oops\n", "line 2: not a JSON object"},
           {snapshot + "\n" + R"({"gpu":0,"nextUuid":4})" + "\n",
            "line 2: a change without the GPU's state"},
           {snapshot + "\n" + R"({"gpu":3,"state":{}})" + "\n", "line 2: no GPU 3"},
       }) {
    absl::StatusOr<api::Json> bad = ReadFakeGpuState(text);
    ASSERT_FALSE(bad.ok()) << text;
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_NE(bad.status().message().find(error), std::string::npos) << bad.status();
  }
}

TEST_F(FakeBackendTest, InjectedFaultsHitTheNextCalls) {
  std::unique_ptr<FakeGpuBackend> b = Open();
  const NodeInventory inv = *b->Discover();
  b->InjectFault("create", NvmlError::kGpuIsLost, 2);
  const int p = ProfileId(inv, 0, "1g.10gb");
  EXPECT_EQ(NvmlErrorOf(b->CreateMigInstance(0, p, {0, 1}).status()), NvmlError::kGpuIsLost);
  EXPECT_EQ(b->CreateMigInstance(0, p, {0, 1}).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(b->CreateMigInstance(0, p, {0, 1}).ok());
  b->InjectFault("discover", NvmlError::kDriverNotLoaded);
  EXPECT_FALSE(b->Discover().ok());
  EXPECT_TRUE(b->Discover().ok());
}

TEST(FakeNodeSpecTest, BadDescriptionsNameTheField) {
  struct Case {
    const char* yaml;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"gpus: []", "gpus: expected a non-empty list"},
           {"gpus: [{model: v100}]", "gpus[0].model: unknown GPU model \"v100\""},
           {"gpus: [{model: h100-80gb, cnt: 2}]", "cnt"},
           {"gpus: [{model: h100-80gb, count: 0}]", "gpus[0].count"},
           {"gpus: [{model: h100-80gb, instances: [{profile: 1g.10gb, start: 9}]}]",
            "gpus[0].instances[0].start"},
           {"createLatencyMs: -1\ngpus: [{model: h100-80gb}]", "createLatencyMs"},
       }) {
    absl::StatusOr<FakeNodeSpec> spec = ParseFakeNodeSpec(c.yaml);
    ASSERT_FALSE(spec.ok()) << c.yaml;
    EXPECT_NE(spec.status().message().find(c.error), std::string::npos) << spec.status();
  }
  // Instances that do not fit are refused when the node is opened.
  absl::StatusOr<FakeNodeSpec> overlap = ParseFakeNodeSpec(
      "gpus: [{model: a100-40gb, instances: [{profile: 4g, start: 0}, {profile: 1g, start: 2}]}]");
  ASSERT_TRUE(overlap.ok());
  absl::Status s = FakeGpuBackend::Open(*overlap, "").status();
  EXPECT_NE(s.message().find("gpus[0].instances[1]"), std::string::npos) << s;
}

TEST(FilesTest, AtomicWriteReplacesTheWholeFile) {
  const std::string path = ::testing::TempDir() + "/atomic-" + std::to_string(::getpid());
  ASSERT_TRUE(WriteFileAtomically(path, "first version, long").ok());
  ASSERT_TRUE(WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(*ReadWholeFile(path), "second");
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  fs::remove(path);
  EXPECT_EQ(ReadWholeFile(path).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(WriteFileAtomically("/nonexistent-dir/x", "y").ok());
}

}  // namespace
}  // namespace tessera::plugin
