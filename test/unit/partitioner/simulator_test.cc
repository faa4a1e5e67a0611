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

// The decisions name the device a scheduler would allocate, in tessera's device names, so the
// packing bench can compare them with the real allocations one by one.
TEST(SimulateTest, RecordsEachDecisionAsTheDeviceNameOrBlocked) {
  ClusterSpec c = *ClusterSpec::Parse("a100-40gb:1", 8);
  const std::string text = "arrival,duration,request\n0,100,mig:7g\n1,100,mig:1g\n2,100,whole\n";
  SimResult r =
      Simulate(c, *Trace(text), {.policy = Policy::kNameSorted, .record_decisions = true});
  EXPECT_THAT(r.decisions, ::testing::ElementsAre("n0/gpu-0-mig-7g40gb-p0", "blocked", "blocked"));
  SimResult quiet = Simulate(c, *Trace(text), {.policy = Policy::kNameSorted});
  EXPECT_TRUE(quiet.decisions.empty());
  EXPECT_EQ(quiet.blocked, r.blocked);
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

namespace tessera::partitioner {
namespace {

TEST(MixTest, ParsesAndNormalisesOrNamesTheBadEntry) {
  absl::StatusOr<std::vector<std::pair<Request, double>>> mix = ParseMix("mig:1g=1, mps:10:25=3");
  ASSERT_TRUE(mix.ok()) << mix.status();
  ASSERT_EQ(mix->size(), 2u);
  EXPECT_DOUBLE_EQ((*mix)[0].second, 0.25);
  EXPECT_EQ((*mix)[1].first.ToString(), "mps:10:25");
  for (const char* bad :
       {"", "mig:1g", "mig:1g=", "mig:1g=0", "mig:1g=-1", "mig:1g=2x", "mig:9g=1", "mig:1g=nan"}) {
    EXPECT_FALSE(ParseMix(bad).ok()) << bad;
  }
  EXPECT_NE(ParseMix("mig:1g=2x").status().message().find("weight \"2x\""), std::string::npos);
}

TEST(OpenbTest, MapsSharesToTheSmallestProfileWithEnoughCompute) {
  EXPECT_EQ(OpenbRequest(1000).ToString(), "whole");
  EXPECT_EQ(OpenbRequest(100).ToString(), "mig:1g");  // 0.7 slices
  EXPECT_EQ(OpenbRequest(143).ToString(), "mig:2g");  // 1.001
  EXPECT_EQ(OpenbRequest(460).ToString(), "mig:4g");  // 3.22
  EXPECT_EQ(OpenbRequest(571).ToString(), "mig:4g");  // 3.997
  EXPECT_EQ(OpenbRequest(650).ToString(), "mig:7g");  // 4.55: no 5g or 6g
}

constexpr const char* kOpenb =
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_"
    "time,scheduled_time\n"
    "p0,1,1,1,1000,,LS,Running,0,1000,0\n"
    "p1,1,1,1,460,,LS,Running,100,700,100\n"
    "p2,1,1,0,0,,BE,Running,150,900,150\n"
    "p3,1,1,2,1000,,LS,Running,200,800,200\n"
    "p4,1,1,1,230,,LS,Running,300,,300\n"
    "p5,1,1,1,810,,LS,Running,400,1400,400\n";

TEST(OpenbTest, ConvertsOneGpuTasksAndScalesToTheLoad) {
  const ClusterSpec cluster = ClusterSpec::Parse("a100-40gb:1", 8).value();
  for (auto arrivals : {OpenbOptions::Arrivals::kTrace, OpenbOptions::Arrivals::kPoisson}) {
    std::istringstream in(kOpenb);
    absl::StatusOr<OpenbTrace> t =
        ConvertOpenb(in, cluster, {.load = 0.5, .arrivals = arrivals, .seed = 3});
    ASSERT_TRUE(t.ok()) << t.status();
    ASSERT_EQ(t->trace.size(), 3u);
    EXPECT_EQ(t->skipped_cpu, 1);
    EXPECT_EQ(t->skipped_multi, 1);
    EXPECT_EQ(t->skipped_open, 1);
    EXPECT_EQ(t->trace[1].request.ToString(), "mig:4g");
    EXPECT_DOUBLE_EQ(t->trace[1].duration, 600);
    EXPECT_DOUBLE_EQ(t->trace[0].arrival, 0);
    // The load inside the window is what was asked for.
    const double end = t->trace.back().arrival;
    double work = 0;
    for (const TraceEntry& e : t->trace) {
      work +=
          e.request.ComputeSlices(*cluster.nodes[0].model) * std::min(e.duration, end - e.arrival);
    }
    EXPECT_NEAR(work / (cluster.total_compute_slices() * end), 0.5, 1e-6);
  }
  // Poisson arrivals are reproducible by seed.
  std::istringstream a(kOpenb), b(kOpenb);
  EXPECT_EQ(FormatTrace(
                ConvertOpenb(a, cluster,
                             {.load = 0.5, .arrivals = OpenbOptions::Arrivals::kPoisson, .seed = 9})
                    ->trace),
            FormatTrace(
                ConvertOpenb(b, cluster,
                             {.load = 0.5, .arrivals = OpenbOptions::Arrivals::kPoisson, .seed = 9})
                    ->trace));
}

TEST(OpenbTest, BadInputNamesTheLineAndField) {
  const ClusterSpec cluster = ClusterSpec::Parse("a100-40gb:8", 8).value();
  auto error = [&](std::string text) {
    std::istringstream in(text);
    absl::StatusOr<OpenbTrace> t = ConvertOpenb(in, cluster, {});
    return t.ok() ? std::string("OK") : std::string(t.status().message());
  };
  const std::string header =
      "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_"
      "time,scheduled_time\n";
  EXPECT_NE(error("a,b\n").find("line 1: not an openb pod list header"), std::string::npos);
  EXPECT_NE(error(header + "p,1,1,1,1000,,LS,Running,0,10,0\np,1,1,1x,1000,,LS,R,0,10,0\n")
                .find("line 3: num_gpu \"1x\""),
            std::string::npos);
  EXPECT_NE(error(header + "p,1,1,1,1200,,LS,Running,0,10,0\n")
                .find("line 2: gpu_milli \"1200\" is not in [1, 1000]"),
            std::string::npos);
  EXPECT_NE(error(header + "p,1,1,1,500,,LS,Running,0,1e999,0\n").find("deletion_time"),
            std::string::npos);
  EXPECT_NE(error(header + "p,1,1,1,500,,LS\n").find("line 2: expected 11 fields, found 7"),
            std::string::npos);
  EXPECT_NE(error(header + "p,1,1,0,0,,LS,Running,0,10,0\n").find("no one-GPU task"),
            std::string::npos);
  // Three tasks cannot keep 56 slices 85% busy.
  EXPECT_NE(error(kOpenb).find("cannot offer load 0.85 to 56 compute slices"), std::string::npos)
      << error(kOpenb);
}

}  // namespace
}  // namespace tessera::partitioner
