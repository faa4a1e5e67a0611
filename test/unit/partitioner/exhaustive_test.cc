// Exhaustive checks of the MIG occupancy model: enumerate every state reachable from an empty GPU
// by creating instances, check each against an independent reference (pairwise-disjoint memory
// slices, compute within the GPU, per-profile limits), and compare the counts of layouts with the
// ones the gpu-partitioning reference derives (§1.6): 297 feasible placement sets and 19 maximal
// layouts with the classic profiles on an A100, 722 and 78 with the double-memory 1g.

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "reference_model.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/gpu_state.h"

namespace tessera::partitioner {
namespace {

struct Enumeration {
  std::set<Layout> feasible;  // every non-empty reachable layout
  std::set<Layout> maximal;   // those to which no instance can be added
};

Layout LayoutOf(const GpuState& s) {
  Layout out;
  for (const Instance& i : s.instances()) out.emplace_back(i.profile, i.placement.start);
  std::sort(out.begin(), out.end());
  return out;
}

void Explore(const GpuModel& m, const std::vector<int>& profiles, GpuState& state,
             std::set<Layout>& seen, Enumeration& out) {
  bool extended = false;
  for (int profile : profiles) {
    for (const Placement& p : m.profiles[profile].placements) {
      if (!state.CheckInstance(profile, p).ok()) continue;
      extended = true;
      ASSERT_TRUE(state.AddInstance(profile, p, "").ok());
      const Layout layout = LayoutOf(state);
      ASSERT_EQ(ReferenceViolation(m, layout), "") << state.Describe();
      if (seen.insert(layout).second) {
        out.feasible.insert(layout);
        Explore(m, profiles, state, seen, out);
      }
      ASSERT_TRUE(state.RemoveInstance(p).ok());
    }
  }
  if (!extended && !state.instances().empty()) out.maximal.insert(LayoutOf(state));
}

Enumeration Enumerate(const GpuModel& m, const std::vector<std::string>& classes) {
  std::vector<int> profiles;
  for (const auto& c : classes) profiles.push_back(m.ProfileIndex(c));
  GpuState state(m);
  std::set<Layout> seen;
  Enumeration out;
  Explore(m, profiles, state, seen, out);
  return out;
}

std::multiset<std::string> Multiset(const GpuModel& m, const Layout& layout) {
  std::multiset<std::string> out;
  for (const auto& [profile, start] : layout) out.insert(m.profiles[profile].size_class);
  return out;
}

// The number of distinct multisets among `layouts`.
std::size_t DistinctMultisets(const GpuModel& m, const std::set<Layout>& layouts) {
  std::set<std::multiset<std::string>> multisets;
  for (const Layout& l : layouts) multisets.insert(Multiset(m, l));
  return multisets.size();
}

// Every refusal is correct too: a layout the reference accepts is never refused.
void ExpectNoFalseRefusals(const GpuModel& m, const std::vector<std::string>& classes,
                           const Enumeration& e) {
  for (const Layout& layout : e.feasible) {
    GpuState state(m);
    for (const auto& [profile, start] : layout) {
      ASSERT_TRUE(state.AddInstance(profile, {start, m.profiles[profile].memory_slices}, "").ok());
    }
    for (const std::string& c : classes) {
      const int profile = m.ProfileIndex(c);
      for (const Placement& p : m.profiles[profile].placements) {
        Layout extended = layout;
        extended.emplace_back(profile, p.start);
        std::sort(extended.begin(), extended.end());
        const bool reference_ok = ReferenceViolation(m, extended).empty();
        EXPECT_EQ(state.CheckInstance(profile, p).ok(), reference_ok)
            << state.Describe() << " + " << m.profiles[profile].name << "@" << p.start;
      }
    }
  }
}

const std::vector<std::string> kClassic = {"1g", "2g", "3g", "4g", "7g"};
const std::vector<std::string> kWithDouble = {"1g", "1g.2x", "2g", "3g", "4g", "7g"};

class ExhaustiveTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ExhaustiveTest, ClassicProfilesGive297LayoutsAnd19Maximal) {
  const GpuModel& m = *FindBuiltinModel(GetParam());
  Enumeration e = Enumerate(m, kClassic);
  EXPECT_EQ(e.feasible.size(), 297u);
  EXPECT_EQ(e.maximal.size(), 19u);
  EXPECT_EQ(DistinctMultisets(m, e.maximal), 14u);
  EXPECT_EQ(DistinctMultisets(m, e.feasible), 37u);
  ExpectNoFalseRefusals(m, kClassic, e);
}

TEST_P(ExhaustiveTest, WithDoubleMemoryOneGThereAre722LayoutsAnd78Maximal) {
  const GpuModel& m = *FindBuiltinModel(GetParam());
  Enumeration e = Enumerate(m, kWithDouble);
  EXPECT_EQ(e.feasible.size(), 722u);
  EXPECT_EQ(e.maximal.size(), 78u);
  EXPECT_EQ(DistinctMultisets(m, e.maximal), 38u);
  EXPECT_EQ(DistinctMultisets(m, e.feasible), 77u);
  ExpectNoFalseRefusals(m, kWithDouble, e);
}

TEST_P(ExhaustiveTest, MediaExtensionIsASingletonSwappableForAnyOneG) {
  const GpuModel& m = *FindBuiltinModel(GetParam());
  Enumeration with_me = Enumerate(m, {"1g", "1g+me", "2g", "3g", "4g", "7g"});
  for (const Layout& l : with_me.feasible) {
    EXPECT_LE(Multiset(m, l).count("1g+me"), 1u);
  }
  // Each classic layout with k 1g instances has k variants with one of them as +me.
  std::size_t expected = 0;
  for (const Layout& l : Enumerate(m, kClassic).feasible)
    expected += 1 + Multiset(m, l).count("1g");
  EXPECT_EQ(with_me.feasible.size(), expected);
}

// A multiset of classic profiles fits on an empty GPU iff its compute slices are at most 7 and its
// memory slices at most 8; among those with at most 7 compute slices only {3g, 3g, 1g} does not
// fit (reference §1.6).
TEST_P(ExhaustiveTest, MultisetFitsIffSlicesAddUpExceptThreeThreeOne) {
  const GpuModel& m = *FindBuiltinModel(GetParam());
  std::set<std::multiset<std::string>> fits;
  for (const Layout& l : Enumerate(m, kClassic).feasible) fits.insert(Multiset(m, l));
  std::vector<std::multiset<std::string>> exceptions;
  // All multisets with at most 7 compute slices: counts per class bounded by 7 / compute.
  for (int a = 0; a <= 7; ++a)            // 1g
    for (int b = 0; b <= 3; ++b)          // 2g
      for (int c = 0; c <= 2; ++c)        // 3g
        for (int d = 0; d <= 1; ++d)      // 4g
          for (int e = 0; e <= 1; ++e) {  // 7g
            const int compute = a + 2 * b + 3 * c + 4 * d + 7 * e;
            const int memory = a + 2 * b + 4 * c + 4 * d + 8 * e;
            if (compute == 0 || compute > 7) continue;
            std::multiset<std::string> ms;
            for (int i = 0; i < a; ++i) ms.insert("1g");
            for (int i = 0; i < b; ++i) ms.insert("2g");
            for (int i = 0; i < c; ++i) ms.insert("3g");
            for (int i = 0; i < d; ++i) ms.insert("4g");
            for (int i = 0; i < e; ++i) ms.insert("7g");
            EXPECT_EQ(fits.contains(ms), memory <= 8) << a << b << c << d << e;
            if (!fits.contains(ms)) exceptions.push_back(ms);
          }
  ASSERT_EQ(exceptions.size(), 1u);
  EXPECT_EQ(exceptions[0], (std::multiset<std::string>{"1g", "3g", "3g"}));
}

INSTANTIATE_TEST_SUITE_P(SevenSliceModels, ExhaustiveTest,
                         ::testing::Values("a100-40gb", "a100-80gb", "h100-80gb", "h100-94gb",
                                           "h200-141gb", "b200"));

TEST(ExhaustiveA100Test, BeforeR510FourGAndThreeGCannotCoexistLeaving18MaximalLayouts) {
  GpuModel m = *FindBuiltinModel("a100-40gb");
  m.four_and_three_coexist = false;
  Enumeration e = Enumerate(m, kClassic);
  EXPECT_EQ(e.maximal.size(), 18u);
  const Layout four_three = {{m.ProfileIndex("3g"), 4}, {m.ProfileIndex("4g"), 0}};
  EXPECT_FALSE(e.feasible.contains(four_three));
}

TEST(ExhaustiveA30Test, FiveMaximalLayoutsOnFourSlots) {
  const GpuModel& m = *FindBuiltinModel("a30-24gb");
  Enumeration e = Enumerate(m, {"1g", "2g", "4g"});
  EXPECT_EQ(e.maximal.size(), 5u);
  EXPECT_EQ(DistinctMultisets(m, e.maximal), 4u);
}

}  // namespace
}  // namespace tessera::partitioner
