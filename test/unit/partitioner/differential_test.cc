// A randomized differential test: long random sequences of instance creations (valid or not) and
// removals on GpuState, checked step by step against the brute-force reference. 10^6 operations in
// all, over every 8-slot model, with and without the pre-R510 rule.

#include <algorithm>
#include <random>

#include "gtest/gtest.h"
#include "reference_model.h"
#include "tessera/partitioner/gpu_state.h"

namespace tessera::partitioner {
namespace {

TEST(DifferentialTest, MillionRandomOperationsAgreeWithTheReference) {
  std::mt19937_64 rng(20261121);
  std::int64_t operations = 0, accepted = 0, refused = 0, removed = 0;
  const int kPerRun = 10000;
  for (int run = 0; operations < 1000000; ++run) {
    GpuModel model = BuiltinModels()[run % BuiltinModels().size()];
    model.four_and_three_coexist = run % 3 != 0;
    GpuState gpu(model);
    Layout layout;
    for (int i = 0; i < kPerRun; ++i, ++operations) {
      if (!layout.empty() && rng() % 3 == 0) {
        // Remove a random live instance.
        const std::size_t k = rng() % layout.size();
        const auto [profile, start] = layout[k];
        ASSERT_TRUE(gpu.RemoveInstance({start, model.profiles[profile].memory_slices}).ok());
        layout.erase(layout.begin() + static_cast<std::ptrdiff_t>(k));
        ++removed;
        continue;
      }
      // Try any profile at any start on the axis, allowed or not.
      const int profile = static_cast<int>(rng() % model.profiles.size());
      const int size = model.profiles[profile].memory_slices;
      const int start = static_cast<int>(rng() % (model.memory_slices - size + 1));
      Layout next = layout;
      next.emplace_back(profile, start);
      const bool reference_ok = ReferenceViolation(model, next).empty();
      const absl::Status s = gpu.AddInstance(profile, {start, size}, "");
      ASSERT_EQ(s.ok(), reference_ok)
          << model.key << ": " << gpu.Describe() << " + " << model.profiles[profile].name << "@"
          << start << ": " << s << " / reference: " << ReferenceViolation(model, next);
      if (s.ok()) {
        layout = std::move(next);
        ++accepted;
      } else {
        ++refused;
      }
      ASSERT_EQ(gpu.instances().size(), layout.size());
    }
  }
  EXPECT_GE(operations, 1000000);
  // The walk exercised both outcomes and removal in earnest.
  EXPECT_GT(accepted, 100000);
  EXPECT_GT(refused, 100000);
  EXPECT_GT(removed, 100000);
}

}  // namespace
}  // namespace tessera::partitioner
