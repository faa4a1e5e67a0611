#include "tessera/partitioner/simulator.h"

#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace tessera::partitioner {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<TraceEntry>> Trace(const std::string& text) {
  std::istringstream in(text);
  return ParseTrace(in);
}

TEST(ClusterSpecTest, SplitsGpusIntoNodes) {
  absl::StatusOr<ClusterSpec> c = ClusterSpec::Parse("a100-40gb:20,h100-80gb:8", 8);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->nodes.size(), 4u);
  EXPECT_EQ(c->nodes[2].gpus, 4);  // 20 = 8 + 8 + 4
  EXPECT_EQ(c->nodes[3].model->key, "h100-80gb");
  EXPECT_EQ(c->total_gpus(), 28);
  EXPECT_EQ(c->total_compute_slices(), 28 * 7);
}

TEST(ClusterSpecTest, UnknownModelListsTheKnownOnes) {
  absl::Status s = ClusterSpec::Parse("v100:8", 8).status();
  EXPECT_THAT(std::string(s.message()), HasSubstr("unknown GPU model \"v100\" (known: a100-40gb"));
  EXPECT_THAT(std::string(ClusterSpec::Parse("a100-40gb:0", 8).status().message()),
              HasSubstr("GPU count \"0\" is not a positive integer"));
  EXPECT_FALSE(ClusterSpec::Parse("a100-40gb", 8).ok());
}

TEST(TraceTest, ParsesRowsAndRejectsBadLinesWithTheirNumber) {
  absl::StatusOr<std::vector<TraceEntry>> t =
      Trace("arrival,duration,request\n0,10,mig:3g\n1.5,2,mps:10:25\n\n2,1,whole\n");
  ASSERT_TRUE(t.ok()) << t.status();
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[1].request.compute_percent, 25);

  EXPECT_THAT(std::string(Trace("arrival,duration,request\n0,10,mig:9g\n").status().message()),
              HasSubstr("trace line 2: request \"mig:9g\": unknown MIG profile class"));
  EXPECT_THAT(std::string(Trace("arrival,duration,request\n0,10\n").status().message()),
              HasSubstr("trace line 2: expected 3 fields, got 2"));
  EXPECT_THAT(std::string(Trace("arrival,duration,request\n5,1,ts\n4,1,ts\n").status().message()),
              HasSubstr("trace line 3: arrival 4 is before the previous line's"));
  EXPECT_THAT(std::string(Trace("arrival,duration,request\n0,-1,ts\n").status().message()),
              HasSubstr("duration \"-1\" is not a positive number"));
  EXPECT_THAT(std::string(Trace("time,len,what\n").status().message()),
              HasSubstr("trace line 1: expected the header"));
}

TEST(TraceTest, FormatParsesBack) {
  absl::StatusOr<std::vector<TraceEntry>> t =
      Trace("arrival,duration,request\n0,10,mig:1g.2x\n0.25,3,mps:2.5:10\n");
  ASSERT_TRUE(t.ok());
  absl::StatusOr<std::vector<TraceEntry>> again = Trace(FormatTrace(*t));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(FormatTrace(*again), FormatTrace(*t));
}

TEST(SimulateTest, SevenOneGsFillOneGpuAndTheEighthIsBlocked) {
  ClusterSpec c = *ClusterSpec::Parse("a100-40gb:1", 8);
  std::string text = "arrival,duration,request\n";
  for (int i = 0; i < 8; ++i) text += std::to_string(i) + ",100,mig:1g\n";
  for (Policy p : {Policy::kNameSorted, Policy::kFirstFit, Policy::kTessera}) {
    SimResult r = Simulate(c, *Trace(text), {p, NodeChoice::kSpread, 1});
    EXPECT_EQ(r.requests, 8);
    EXPECT_EQ(r.blocked, 1) << PolicyName(p);
    EXPECT_EQ(r.mig_creates, 7);
    EXPECT_EQ(r.mig_destroys, 0);  // all still running at the last arrival
    EXPECT_GT(r.lower_bound_weighted_blocking_rate, 0);
  }
}

TEST(SimulateTest, DeparturesFreeTheirPartitionBeforeTheNextArrival) {
  ClusterSpec c = *ClusterSpec::Parse("a100-40gb:1", 8);
  SimResult r = Simulate(c, *Trace("arrival,duration,request\n0,5,mig:7g\n5,5,mig:7g\n6,1,whole\n"),
                         {Policy::kTessera, NodeChoice::kSpread, 1});
  EXPECT_EQ(r.blocked, 1);  // the whole GPU at 6 finds the second 7g
  EXPECT_EQ(r.mig_destroys, 1);
}

// The bad placement that name-sorted makes and tessera avoids: two 1g requests on two nodes.
// Spread sends the second 1g to the emptier node, breaking its only 7g; tessera publishes the
// 1g only where one already is.
TEST(SimulateTest, TesseraSteersSmallProfilesAwayFromEmptyNodes) {
  ClusterSpec c = *ClusterSpec::Parse("a100-40gb:2", 1);
  const std::string text = "arrival,duration,request\n0,100,mig:1g\n1,100,mig:1g\n2,100,mig:7g\n";
  SimResult spread = Simulate(c, *Trace(text), {Policy::kNameSorted, NodeChoice::kSpread, 1});
  SimResult tessera = Simulate(c, *Trace(text), {Policy::kTessera, NodeChoice::kSpread, 1});
  EXPECT_EQ(spread.blocked, 1);
  EXPECT_EQ(tessera.blocked, 0);
}

TEST(SimulateTest, JsonHasEveryReportedField) {
  ClusterSpec c = *ClusterSpec::Parse("h100-80gb:8", 8);
  SimResult r = Simulate(c, *Trace("arrival,duration,request\n0,1,ts\n"), {});
  const std::string json = r.ToJson();
  for (const char* key : {"requests", "blocked", "blocking_rate", "weighted_blocking_rate",
                          "mean_slice_utilization", "mig_creates", "mig_destroys", "place_us_p50",
                          "place_us_p99", "lower_bound_weighted_blocking_rate"}) {
    EXPECT_THAT(json, HasSubstr(std::string("\"") + key + "\":"));
  }
}

}  // namespace
}  // namespace tessera::partitioner
