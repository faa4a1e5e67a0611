#include "tessera/partitioner/placement.h"

#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::partitioner {
namespace {

using ::testing::HasSubstr;

Request Mig(const char* c) { return Request{.kind = Request::Kind::kMig, .profile = c}; }

class PlacementTest : public ::testing::Test {
 protected:
  PlacementTest() : gpus_(3, GpuState(*FindBuiltinModel("a100-40gb"))) {}
  int P(const char* c) { return gpus_[0].model().ProfileIndex(c); }
  void Put(int gpu, const char* c, int start) {
    const GiProfile& p = gpus_[gpu].model().profiles[P(c)];
    ASSERT_TRUE(gpus_[gpu].AddInstance(P(c), {start, p.memory_slices}, "x").ok());
  }
  std::vector<GpuState> gpus_;
};

TEST(RequestTest, ParsesEveryKindAndPrintsItBack) {
  for (const char* text :
       {"whole", "ts", "mig:1g", "mig:1g.2x", "mig:7g", "mps:10:25", "mps:2.5:5"}) {
    absl::StatusOr<Request> r = Request::Parse(text);
    ASSERT_TRUE(r.ok()) << text << ": " << r.status();
    EXPECT_EQ(r->ToString(), text);
  }
  EXPECT_EQ(Request::Parse("mps:10:25")->memory_mib, 10240);
}

TEST(RequestTest, RejectsBadRequestsSayingWhatIsWrong) {
  EXPECT_THAT(std::string(Request::Parse("mig:5g").status().message()),
              HasSubstr("unknown MIG profile class \"5g\""));
  EXPECT_THAT(std::string(Request::Parse("mps:10:0").status().message()),
              HasSubstr("compute percent \"0\" is not in [1, 100]"));
  EXPECT_THAT(std::string(Request::Parse("mps:-1:10").status().message()),
              HasSubstr("memory \"-1\" is not a positive number"));
  EXPECT_THAT(std::string(Request::Parse("gpu").status().message()), HasSubstr("unknown kind"));
  EXPECT_FALSE(Request::Parse("mps:10").ok());
}

TEST(PolicyTest, NamesRoundTripAndUnknownNamesListTheChoices) {
  for (Policy p :
       {Policy::kFirstFit, Policy::kNameSorted, Policy::kBestFit, Policy::kFgd, Policy::kTessera}) {
    EXPECT_EQ(*ParsePolicy(PolicyName(p)), p);
  }
  EXPECT_THAT(std::string(ParsePolicy("greedy").status().message()),
              HasSubstr("first-fit, name-sorted"));
}

TEST_F(PlacementTest, FirstFitTakesLowestGpuAndStart) {
  Put(1, "3g", 0);
  Choice c = *Placer(Policy::kFirstFit).Place(gpus_, Mig("1g"));
  EXPECT_EQ(c.gpu, 0);
  EXPECT_EQ(c.placement, (Placement{0, 1}));
}

TEST_F(PlacementTest, BestFitFillsTheFullestGpuInTheSmallestHole) {
  Put(1, "3g", 0);
  Put(1, "2g", 4);  // GPU 1: slots 6-7 free
  Choice c = *Placer(Policy::kBestFit).Place(gpus_, Mig("1g"));
  EXPECT_EQ(c.gpu, 1);
  EXPECT_EQ(c.placement, (Placement{6, 1}));
}

TEST_F(PlacementTest, TesseraKeepsRoomForLargeProfiles) {
  // GPU 0 has a 1g at slot 0: the next 1g belongs in the left half, keeping the right half whole
  // for a 3g, and not on an empty GPU.
  Put(0, "1g", 0);
  Choice c = *Placer(Policy::kTessera).Place(gpus_, Mig("1g"));
  EXPECT_EQ(c.gpu, 0);
  EXPECT_LT(c.placement.start, 4);
  // A 3g goes to the right half of GPU 0 rather than breaking up an empty GPU.
  Choice three = *Placer(Policy::kTessera).Place(gpus_, Mig("3g"));
  EXPECT_EQ(three.gpu, 0);
  EXPECT_EQ(three.placement, (Placement{4, 4}));
}

TEST_F(PlacementTest, NameSortedOrdersGpusAsStrings) {
  std::vector<GpuState> gpus(12, GpuState(*FindBuiltinModel("a100-40gb")));
  gpus[0].AcquireWhole("w").IgnoreError();
  gpus[1].AcquireWhole("w").IgnoreError();
  // Free: 2..11; in name order "gpu-10" < "gpu-11" < "gpu-2".
  EXPECT_EQ(Placer(Policy::kNameSorted).Place(gpus, Mig("7g"))->gpu, 10);
  EXPECT_EQ(Placer(Policy::kFirstFit).Place(gpus, Mig("7g"))->gpu, 2);
}

TEST_F(PlacementTest, NothingFitsIsResourceExhaustedNamingTheRequest) {
  for (int g = 0; g < 3; ++g) Put(g, "4g", 0);
  absl::StatusOr<Choice> c = Placer(Policy::kTessera).Place(gpus_, Mig("7g"));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("mig:7g: no GPU of 3 has room"));
}

TEST_F(PlacementTest, EveryRankedChoiceCanBeApplied) {
  Put(0, "2g", 2);
  for (Policy policy :
       {Policy::kFirstFit, Policy::kNameSorted, Policy::kBestFit, Policy::kFgd, Policy::kTessera}) {
    for (const char* c : {"1g", "1g.2x", "2g", "3g", "4g", "7g"}) {
      for (const Choice& choice : Placer(policy).Rank(gpus_, Mig(c))) {
        std::vector<GpuState> copy = gpus_;
        EXPECT_TRUE(Apply(copy, choice, Mig(c), "o").ok()) << PolicyName(policy) << " " << c;
      }
    }
  }
}

TEST_F(PlacementTest, MpsSharesJoinAnOpenGpuBeforeOpeningAnEmptyOne) {
  Request share = *Request::Parse("mps:4:25");
  const Placer placer(Policy::kTessera);
  Choice first = *placer.Place(gpus_, share);
  ASSERT_TRUE(Apply(gpus_, first, share, "a").ok());
  Choice second = *placer.Place(gpus_, share);
  EXPECT_EQ(second.gpu, first.gpu);
  ASSERT_TRUE(Apply(gpus_, second, share, "b").ok());
  EXPECT_EQ(gpus_[first.gpu].FreeSharePercent(std::nullopt), 50);
  ASSERT_TRUE(Release(gpus_, second, share, "b").ok());
  EXPECT_EQ(gpus_[first.gpu].FreeSharePercent(std::nullopt), 75);
}

TEST_F(PlacementTest, WholeGpuNeedsAnEmptyGpu) {
  Put(0, "1g", 0);
  Choice c = *Placer(Policy::kTessera).Place(gpus_, Request{});
  EXPECT_EQ(c.gpu, 1);
  ASSERT_TRUE(Apply(gpus_, c, Request{}, "w").ok());
  EXPECT_EQ(*gpus_[1].whole_owner(), "w");
}

}  // namespace
}  // namespace tessera::partitioner
