#ifndef TESSERA_PARTITIONER_BATCH_H_
#define TESSERA_PARTITIONER_BATCH_H_

// Planning several requests at once, and static MIG layouts.
//
// PlanBatch assigns pending requests to the GPUs of a node or cluster so that as many as possible
// are placed (then as many compute slices as possible). Small inputs are solved exactly by a
// depth-first search over every distinct choice with two prunings: GPUs in identical states are
// interchangeable (only the first is tried), and a branch stops when even placing every remaining
// request could not beat the best found. Larger inputs use first-fit-decreasing with the Placer's
// ranking (largest requests first, each at the Placer's best choice). Tests compare the two.
//
// BestStaticLayout picks, for a demand mix, the maximal MIG layout of one GPU that covers the
// most demand; ArrangeLayout finds placements for an admin's list of profiles.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/partitioner/gpu_state.h"
#include "tessera/partitioner/placement.h"

namespace tessera::partitioner {

struct BatchPlan {
  std::vector<std::optional<Choice>> choices;  // per request; empty: not placed
  int placed = 0;
  double compute_slices = 0;  // of the placed requests
  bool exact = false;         // proven optimal
  std::int64_t nodes = 0;     // search nodes visited (exact search)
};

struct BatchOptions {
  int exact_max_requests = 10;  // above: heuristic
  std::int64_t exact_node_budget =
      2'000'000;  // the exact search gives up (and falls back) beyond this
};

// Plans `requests` onto `gpus` (not modified). Every choice, applied in request order, is valid.
BatchPlan PlanBatch(std::span<const GpuState> gpus, std::span<const Request> requests,
                    const Placer& placer, const BatchOptions& options = {});
BatchPlan PlanBatchExact(std::span<const GpuState> gpus, std::span<const Request> requests,
                         const Placer& placer, std::int64_t node_budget);
BatchPlan PlanBatchHeuristic(std::span<const GpuState> gpus, std::span<const Request> requests,
                             const Placer& placer);

struct LayoutEntry {
  int profile = -1;
  Placement placement;
  bool operator==(const LayoutEntry&) const = default;
};

// The maximal layout whose instances cover the most of `demand`'s MIG classes, each class
// weighted by its probability times its compute slices (requests of other kinds are ignored):
// coverage = sum over classes of min(slices the layout offers the class, GPU slices x weight).
// Ties go to the layout with more compute slices, then fewer instances.
std::vector<LayoutEntry> BestStaticLayout(const GpuModel& model, const Demand& demand);
double LayoutCoverage(const GpuModel& model, const Demand& demand,
                      std::span<const LayoutEntry> layout);

// Placements for a list of profile names or classes (e.g. an admin's mig-static layout), or an
// error naming the profile that does not fit.
absl::StatusOr<std::vector<LayoutEntry>> ArrangeLayout(const GpuModel& model,
                                                       std::span<const std::string> profiles);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_BATCH_H_
