// Batch planning against a brute force on small cases, the heuristic against the exact answer,
// and static layouts for demand mixes.

#include "tessera/partitioner/batch.h"

#include <random>
#include <set>

#include "gtest/gtest.h"
#include "reference_model.h"
#include "tessera/api/strings.h"

namespace tessera::partitioner {
namespace {

const GpuModel& Model(std::string_view key) { return *FindBuiltinModel(key); }

std::vector<Request> Requests(std::initializer_list<const char*> texts) {
  std::vector<Request> out;
  for (const char* t : texts) out.push_back(*Request::Parse(t));
  return out;
}

// Applies a plan to copies of the GPUs: every placed request must go through.
void ExpectValid(std::span<const GpuState> gpus, std::span<const Request> requests,
                 const BatchPlan& plan, const Placer& placer) {
  std::vector<GpuState> states(gpus.begin(), gpus.end());
  int placed = 0;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    if (!plan.choices[r]) continue;
    ++placed;
    ASSERT_TRUE(Apply(states, *plan.choices[r], requests[r], StrCat("r", r), placer.limits()).ok())
        << requests[r].ToString();
  }
  EXPECT_EQ(placed, plan.placed);
  for (const GpuState& g : states) {
    Layout layout;
    for (const Instance& i : g.instances()) layout.emplace_back(i.profile, i.placement.start);
    std::sort(layout.begin(), layout.end());
    EXPECT_EQ(ReferenceViolation(g.model(), layout), "");
  }
}

// Every assignment, no pruning: the best (placed, compute slices).
void BruteForce(std::vector<GpuState>& states, std::span<const Request> requests, std::size_t k,
                int placed, double slices, const Placer& placer, std::pair<int, double>* best) {
  if (k == requests.size()) {
    if (std::make_pair(placed, slices) > *best) *best = {placed, slices};
    return;
  }
  const Request& r = requests[k];
  for (const Choice& c : placer.Rank(states, r)) {
    ASSERT_TRUE(Apply(states, c, r, StrCat("b", k), placer.limits()).ok());
    BruteForce(states, requests, k + 1, placed + 1,
               slices + r.ComputeSlices(states[0].model(), placer.limits()), placer, best);
    ASSERT_TRUE(Release(states, c, r, StrCat("b", k)).ok());
  }
  BruteForce(states, requests, k + 1, placed, slices, placer, best);
}

const char* kKinds[] = {"mig:1g", "mig:1g.2x", "mig:2g",    "mig:3g", "mig:4g",
                        "mig:7g", "whole",     "mps:10:30", "ts"};

TEST(BatchTest, ExactSearchMatchesBruteForceOnSmallCases) {
  std::mt19937 rng(11);
  const Placer placer(Policy::kTessera);
  for (int round = 0; round < 120; ++round) {
    std::vector<GpuState> gpus(2, GpuState(Model(round % 2 ? "a100-40gb" : "h100-80gb")));
    const GpuModel& m = gpus[0].model();
    for (int k = 0; k < 3; ++k) {
      const int p = int(rng() % m.profiles.size());
      (void)gpus[rng() % 2].AddInstance(
          p, m.profiles[p].placements[rng() % m.profiles[p].placements.size()], "x");
    }
    std::vector<Request> requests;
    const int n = 2 + int(rng() % 4);
    for (int k = 0; k < n; ++k)
      requests.push_back(*Request::Parse(kKinds[rng() % std::size(kKinds)]));
    const BatchPlan exact = PlanBatchExact(gpus, requests, placer, 10'000'000);
    ASSERT_TRUE(exact.exact);
    ExpectValid(gpus, requests, exact, placer);
    std::pair<int, double> best{-1, 0};
    BruteForce(gpus, requests, 0, 0, 0, placer, &best);
    EXPECT_EQ(exact.placed, best.first) << "round " << round;
    EXPECT_NEAR(exact.compute_slices, best.second, 1e-9) << "round " << round;
  }
}

// The heuristic is never better than the exact answer (that would prove the search wrong), is
// always valid, and on random small cases places almost as many. The rate is printed for the note.
TEST(BatchTest, HeuristicAgainstExactOnSmallCases) {
  std::mt19937 rng(5);
  const Placer placer(Policy::kTessera);
  int cases = 0, equal = 0, placed_exact = 0, placed_heuristic = 0;
  for (int round = 0; round < 300; ++round) {
    std::vector<GpuState> gpus(3, GpuState(Model("a100-40gb")));
    const GpuModel& m = gpus[0].model();
    for (int k = 0; k < 4; ++k) {
      const int p = int(rng() % m.profiles.size());
      (void)gpus[rng() % 3].AddInstance(
          p, m.profiles[p].placements[rng() % m.profiles[p].placements.size()], "x");
    }
    std::vector<Request> requests;
    const int n = 3 + int(rng() % 6);
    for (int k = 0; k < n; ++k) requests.push_back(*Request::Parse(kKinds[rng() % 6]));
    const BatchPlan exact = PlanBatchExact(gpus, requests, placer, 10'000'000);
    const BatchPlan heuristic = PlanBatchHeuristic(gpus, requests, placer);
    ASSERT_TRUE(exact.exact);
    ExpectValid(gpus, requests, heuristic, placer);
    EXPECT_LE(heuristic.placed, exact.placed);
    ++cases;
    equal += heuristic.placed == exact.placed;
    placed_exact += exact.placed;
    placed_heuristic += heuristic.placed;
  }
  std::printf("heuristic = exact in %d of %d cases; placed %d vs %d\n", equal, cases,
              placed_heuristic, placed_exact);
  EXPECT_GE(equal * 100, cases * 95);  // measured 291 of 300
  EXPECT_GE(placed_heuristic * 100, placed_exact * 98);
}

TEST(BatchTest, ExactBeatsGreedyWhereOrderMatters) {
  // One empty A100: 4g + 3g + 3g cannot all fit; placing 3g, 3g leaves no room for the 4g, and 4g
  // + 3g is the best (7 of 7 compute slices).
  std::vector<GpuState> gpus(1, GpuState(Model("a100-40gb")));
  const std::vector<Request> requests = Requests({"mig:3g", "mig:3g", "mig:4g"});
  const Placer placer(Policy::kFirstFit);
  const BatchPlan plan = PlanBatch(gpus, requests, placer);
  EXPECT_TRUE(plan.exact);
  EXPECT_EQ(plan.placed, 2);
  EXPECT_DOUBLE_EQ(plan.compute_slices, 7);
  EXPECT_TRUE(plan.choices[2].has_value());
}

TEST(BatchTest, LargeBatchesUseTheHeuristic) {
  std::vector<GpuState> gpus(8, GpuState(Model("h100-80gb")));
  std::vector<Request> requests;
  for (int i = 0; i < 60; ++i) requests.push_back(*Request::Parse(kKinds[i % 6]));
  const Placer placer(Policy::kTessera);
  const BatchPlan plan = PlanBatch(gpus, requests, placer);
  EXPECT_FALSE(plan.exact);
  ExpectValid(gpus, requests, plan, placer);
  // At least as many as the scheduler's one-by-one placement in arrival order.
  std::vector<GpuState> states = gpus;
  int one_by_one = 0;
  for (std::size_t r = 0; r < requests.size(); ++r) {
    absl::StatusOr<Choice> c = placer.Place(states, requests[r]);
    if (c.ok() && Apply(states, *c, requests[r], StrCat("o", r), placer.limits()).ok())
      ++one_by_one;
  }
  EXPECT_GE(plan.placed, one_by_one);
  EXPECT_GT(plan.placed, 30);
}

TEST(BatchTest, SymmetricGpusAreSearchedOnce) {
  std::vector<GpuState> gpus(8, GpuState(Model("a100-40gb")));
  const std::vector<Request> requests =
      Requests({"mig:1g", "mig:1g", "mig:2g", "mig:3g", "mig:4g", "mig:7g"});
  const Placer placer(Policy::kTessera);
  const BatchPlan plan = PlanBatchExact(gpus, requests, placer, 10'000'000);
  EXPECT_TRUE(plan.exact);
  EXPECT_EQ(plan.placed, 6);
  EXPECT_LT(plan.nodes, 100);  // the first solution places everything: the bound stops the rest
}

// ---------------------------------------------------------------------------------------------

Demand Mix(std::initializer_list<std::pair<const char*, double>> entries) {
  Demand d;
  for (const auto& [text, p] : entries) d.mix.emplace_back(*Request::Parse(text), p);
  return d;
}

std::multiset<std::string> Classes(const GpuModel& m, const std::vector<LayoutEntry>& layout) {
  std::multiset<std::string> out;
  for (const LayoutEntry& e : layout) out.insert(m.profiles[e.profile].size_class);
  return out;
}

TEST(StaticLayoutTest, BestLayoutFollowsTheDemand) {
  const GpuModel& m = Model("a100-40gb");
  EXPECT_EQ(Classes(m, BestStaticLayout(m, Mix({{"mig:1g", 1}}))),
            (std::multiset<std::string>{"1g", "1g", "1g", "1g", "1g", "1g", "1g"}));
  EXPECT_EQ(Classes(m, BestStaticLayout(m, Mix({{"mig:3g", 1}}))),
            (std::multiset<std::string>{"3g", "3g"}));
  EXPECT_EQ(Classes(m, BestStaticLayout(m, Mix({{"mig:7g", 1}}))),
            (std::multiset<std::string>{"7g"}));
  // By request count half 3g, half 1g: 3g carries 3/4 of the compute; two 3g cover 5.25 slices of
  // demand, one 3g and four 1g only 4.75.
  EXPECT_EQ(Classes(m, BestStaticLayout(m, Mix({{"mig:3g", 0.5}, {"mig:1g", 0.5}}))),
            (std::multiset<std::string>{"3g", "3g"}));
  // Equal compute demand for 2g and 1g (3.5 slices each): 2g+2g+1g+1g+1g covers 3.5 + 3 = 6.5,
  // 2g + five 1g only 2 + 3.5.
  const auto layout = BestStaticLayout(m, Mix({{"mig:2g", 1.0 / 3}, {"mig:1g", 2.0 / 3}}));
  EXPECT_EQ(Classes(m, layout), (std::multiset<std::string>{"2g", "2g", "1g", "1g", "1g"}));
  EXPECT_NEAR(LayoutCoverage(m, Mix({{"mig:2g", 1.0 / 3}, {"mig:1g", 2.0 / 3}}), layout), 6.5,
              1e-9);
  // Every answer is a valid layout.
  for (const auto& demand :
       {Mix({{"mig:1g", 0.3}, {"mig:4g", 0.7}}), Mix({{"mig:1g.2x", 1}}), Demand::Uniform()}) {
    Layout l;
    for (const LayoutEntry& e : BestStaticLayout(m, demand))
      l.emplace_back(e.profile, e.placement.start);
    std::sort(l.begin(), l.end());
    EXPECT_EQ(ReferenceViolation(m, l), "");
    EXPECT_FALSE(l.empty());
  }
}

TEST(StaticLayoutTest, ArrangeFindsPlacementsOrSaysWhatDoesNotFit) {
  const GpuModel& m = Model("h100-80gb");
  const std::vector<std::string> ok = {"1g.10gb", "3g.40gb", "2g", "1g"};
  absl::StatusOr<std::vector<LayoutEntry>> layout = ArrangeLayout(m, ok);
  ASSERT_TRUE(layout.ok()) << layout.status();
  Layout l;
  for (const LayoutEntry& e : *layout) l.emplace_back(e.profile, e.placement.start);
  std::sort(l.begin(), l.end());
  EXPECT_EQ(ReferenceViolation(m, l), "");
  EXPECT_EQ(layout->size(), 4u);

  const std::vector<std::string> too_much = {"4g.40gb", "3g.40gb", "1g.10gb"};
  absl::Status s = ArrangeLayout(m, too_much).status();
  EXPECT_NE(s.message().find("does not fit"), std::string::npos) << s;
  const std::vector<std::string> unknown = {"5g.50gb"};
  s = ArrangeLayout(m, unknown).status();
  EXPECT_NE(s.message().find("no profile \"5g.50gb\""), std::string::npos) << s;
}

}  // namespace
}  // namespace tessera::partitioner
