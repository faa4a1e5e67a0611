#include "tessera/partitioner/gpu_state.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::partitioner {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class GpuStateTest : public ::testing::Test {
 protected:
  int P(const char* size_class) { return model_.ProfileIndex(size_class); }
  std::string Message(const absl::Status& s) { return std::string(s.message()); }

  const GpuModel& model_ = *FindBuiltinModel("a100-40gb");
  GpuState gpu_{model_};
};

TEST_F(GpuStateTest, OverlappingPlacementIsRefusedNamingTheInstancesInTheWay) {
  ASSERT_TRUE(gpu_.AddInstance(P("3g"), {4, 4}, "claim-a").ok());
  absl::Status s = gpu_.AddInstance(P("2g"), {4, 2}, "claim-b");
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Message(s), HasSubstr("2g.10gb@4: memory slices overlap instances 3g.20gb@4"));
  EXPECT_EQ(gpu_.instances().size(), 1u);  // nothing changed
  EXPECT_EQ(gpu_.used_slices(), 0xF0);
}

TEST_F(GpuStateTest, PlacementNotAllowedForTheProfileIsRefused) {
  EXPECT_THAT(Message(gpu_.AddInstance(P("4g"), {4, 4}, "c")),
              HasSubstr("placement {4,4} is not one of 4g.20gb's"));
  EXPECT_THAT(Message(gpu_.AddInstance(P("1g"), {7, 1}, "c")), HasSubstr("not one of"));
}

TEST_F(GpuStateTest, FreePlacementsShrinkAsInstancesArrive) {
  EXPECT_THAT(gpu_.FreePlacements(P("3g")), ElementsAre(Placement{0, 4}, Placement{4, 4}));
  ASSERT_TRUE(gpu_.AddInstance(P("1g"), {1, 1}, "c").ok());
  EXPECT_THAT(gpu_.FreePlacements(P("3g")), ElementsAre(Placement{4, 4}));
  EXPECT_THAT(gpu_.FreePlacements(P("2g")), ElementsAre(Placement{2, 2}, Placement{4, 2}));
  EXPECT_TRUE(gpu_.FreePlacements(P("7g")).empty());
}

TEST_F(GpuStateTest, RemovingAnInstanceFreesItsSlicesAndCompute) {
  ASSERT_TRUE(gpu_.AddInstance(P("4g"), {0, 4}, "a").ok());
  ASSERT_TRUE(gpu_.AddInstance(P("3g"), {4, 4}, "b").ok());
  EXPECT_EQ(gpu_.compute_slices_used(), 7);
  ASSERT_TRUE(gpu_.RemoveInstance({0, 4}).ok());
  EXPECT_EQ(gpu_.used_slices(), 0xF0);
  EXPECT_EQ(gpu_.compute_slices_used(), 3);
  EXPECT_EQ(gpu_.RemoveInstance({0, 4}).code(), absl::StatusCode::kNotFound);
}

TEST_F(GpuStateTest, OnlyOneMediaExtensionInstance) {
  ASSERT_TRUE(gpu_.AddInstance(P("1g+me"), {0, 1}, "a").ok());
  EXPECT_THAT(Message(gpu_.AddInstance(P("1g+me"), {1, 1}, "b")), HasSubstr("at most 1"));
  EXPECT_TRUE(gpu_.AddInstance(P("1g"), {1, 1}, "b").ok());
}

TEST_F(GpuStateTest, InstanceCountLimitBinds) {
  for (int start : {0, 2, 4}) ASSERT_TRUE(gpu_.AddInstance(P("2g"), {start, 2}, "").ok());
  // Slots 6-7 are free, but a 2g may not start at 6 and 1g.2x at 6 is fine.
  EXPECT_TRUE(gpu_.FreePlacements(P("2g")).empty());
  EXPECT_THAT(gpu_.FreePlacements(P("1g.2x")), ElementsAre(Placement{6, 2}));
}

TEST_F(GpuStateTest, WholeGpuExcludesInstancesAndSharesAndTheReverse) {
  ASSERT_TRUE(gpu_.AcquireWhole("w").ok());
  EXPECT_THAT(Message(gpu_.AddInstance(P("1g"), {0, 1}, "a")),
              HasSubstr("whole GPU is in use by w"));
  EXPECT_THAT(Message(gpu_.AddShare({.owner = "s", .memory_mib = 1024, .compute_percent = 10}, {})),
              HasSubstr("whole GPU in use by w"));
  ASSERT_TRUE(gpu_.ReleaseWhole().ok());
  ASSERT_TRUE(gpu_.AddInstance(P("1g"), {0, 1}, "a").ok());
  EXPECT_THAT(Message(gpu_.AcquireWhole("w")), HasSubstr("MIG instances exist: 1g.5gb@0"));
}

TEST_F(GpuStateTest, MpsSharesAddUpToTheGpuMemoryAndOneHundredPercent) {
  const ShareLimits limits;
  ASSERT_TRUE(
      gpu_.AddShare({.owner = "a", .memory_mib = 20000, .compute_percent = 60}, limits).ok());
  EXPECT_EQ(gpu_.FreeShareMemory(std::nullopt), 40960 - 20000);
  EXPECT_THAT(
      Message(gpu_.AddShare({.owner = "b", .memory_mib = 30000, .compute_percent = 10}, limits)),
      HasSubstr("needs 30000 MiB, 20960 MiB free"));
  EXPECT_THAT(
      Message(gpu_.AddShare({.owner = "b", .memory_mib = 1000, .compute_percent = 50}, limits)),
      HasSubstr("needs 50% compute, 40% free"));
  ASSERT_TRUE(
      gpu_.AddShare({.owner = "b", .memory_mib = 1000, .compute_percent = 40}, limits).ok());
  // Shares of the whole GPU keep MIG instances out.
  EXPECT_THAT(Message(gpu_.AddInstance(P("1g"), {0, 1}, "c")), HasSubstr("carries mps shares"));
  ASSERT_TRUE(gpu_.RemoveShare("a").ok());
  EXPECT_EQ(gpu_.FreeSharePercent(std::nullopt), 60);
}

TEST_F(GpuStateTest, MpsInsideAMigInstanceIsBoundedByTheInstanceAndPinsIt) {
  ASSERT_TRUE(gpu_.AddInstance(P("3g"), {4, 4}, "").ok());
  const Placement host{4, 4};
  Share share{.owner = "a", .memory_mib = 19968, .compute_percent = 50, .host = host};
  ASSERT_TRUE(gpu_.AddShare(share, {}).ok());
  Share more{.owner = "b", .memory_mib = 1, .compute_percent = 10, .host = host};
  EXPECT_THAT(Message(gpu_.AddShare(more, {})), HasSubstr("needs 1 MiB, 0 MiB free"));
  EXPECT_THAT(Message(gpu_.RemoveInstance(host)), HasSubstr("still hosts the share of a"));
  Share nowhere{.owner = "c", .memory_mib = 1, .compute_percent = 1, .host = Placement{0, 4}};
  EXPECT_THAT(Message(gpu_.AddShare(nowhere, {})), HasSubstr("no such instance"));
}

TEST_F(GpuStateTest, SharesInOneHostAreOfOneKindAndTimeSlicesAreCounted) {
  ShareLimits limits;
  limits.max_timeslice_shares = 2;
  ASSERT_TRUE(gpu_.AddShare({.kind = ShareKind::kTimeSlice, .owner = "a"}, limits).ok());
  ASSERT_TRUE(gpu_.AddShare({.kind = ShareKind::kTimeSlice, .owner = "b"}, limits).ok());
  EXPECT_THAT(Message(gpu_.AddShare({.kind = ShareKind::kTimeSlice, .owner = "c"}, limits)),
              HasSubstr("already 2 time-slice shares (limit 2)"));
  EXPECT_THAT(Message(gpu_.AddShare({.owner = "d", .memory_mib = 1, .compute_percent = 1}, limits)),
              HasSubstr("already carries timeslice shares"));
}

TEST_F(GpuStateTest, InvalidMpsRequestsAreRejectedAsInvalidArgument) {
  EXPECT_EQ(gpu_.AddShare({.owner = "a", .memory_mib = 1, .compute_percent = 0}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(gpu_.AddShare({.owner = "a", .memory_mib = 0, .compute_percent = 10}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(gpu_.shares().empty());
}

}  // namespace
}  // namespace tessera::partitioner
