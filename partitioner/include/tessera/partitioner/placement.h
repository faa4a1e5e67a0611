#ifndef TESSERA_PARTITIONER_PLACEMENT_H_
#define TESSERA_PARTITIONER_PLACEMENT_H_

// Where on a node's GPUs a request should go. A Placer ranks every way to satisfy a request (a MIG
// profile, an MPS share, a time-slice share, a whole GPU) by its policy; the first candidate is the
// choice, and the whole ranking is the order the controller publishes devices in, so that the
// scheduler's first fit follows the policy.
//
// Policies:
//   first-fit    lowest GPU index, lowest placement start;
//   name-sorted  device names in string order ("gpu-10" before "gpu-2"), as a driver that leaves
//                placement to the scheduler gets it;
//   best-fit     the fullest GPU, then the smallest free aligned block that holds the placement;
//   fgd          the smallest growth of expected fragmentation under the demand mix (FGD, Weng et
//                al. ATC '23, adapted to MIG slices), then best-fit;
//   tessera      fgd with best-fit tie-breaks; in a cluster, the controller also publishes each
//                request class only on the node where it fits best (see simulator.h).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/partitioner/gpu_state.h"

namespace tessera::partitioner {

struct Request {
  enum class Kind { kWhole, kMig, kMps, kTimeSlice };
  Kind kind = Kind::kWhole;
  std::string profile{};        // kMig: size class, e.g. "3g", "1g.2x"
  std::int64_t memory_mib = 0;  // kMps
  int compute_percent = 0;      // kMps

  // "whole", "mig:1g", "mig:1g.2x", "mig:2g", "mig:3g", "mig:4g", "mig:7g",
  // "mps:<memory GiB>:<compute percent>", "ts".
  static absl::StatusOr<Request> Parse(std::string_view text);
  std::string ToString() const;
  // Compute slices the request occupies on `model` (MPS: its percentage of the GPU's slices;
  // time-slice: the GPU's slices divided by the share limit), for weighted metrics.
  double ComputeSlices(const GpuModel& model, const ShareLimits& limits = {}) const;
};

enum class Policy { kFirstFit, kNameSorted, kBestFit, kFgd, kTessera };
absl::StatusOr<Policy> ParsePolicy(std::string_view name);
std::string_view PolicyName(Policy policy);
std::string PolicyNames();

// The expected demand, by request class ("mig:3g", "whole", ...), for fragmentation scores.
struct Demand {
  std::vector<std::pair<Request, double>> mix{};  // probabilities, summing to 1
  static Demand Uniform();                        // every MIG class and whole, equally likely
};

struct Choice {
  int gpu = -1;
  int profile = -1;     // kMig: index into the GPU's model
  Placement placement;  // kMig
};

class Placer {
 public:
  explicit Placer(Policy policy, Demand demand = Demand::Uniform(), ShareLimits limits = {})
      : policy_(policy), demand_(std::move(demand)), limits_(limits) {}

  Policy policy() const { return policy_; }
  const ShareLimits& limits() const { return limits_; }

  // The best choice, or why nothing fits (naming the request).
  absl::StatusOr<Choice> Place(std::span<const GpuState> gpus, const Request& request) const;
  // Every feasible choice, best first.
  std::vector<Choice> Rank(std::span<const GpuState> gpus, const Request& request) const;

  // How good a choice is; lower is better, comparable across nodes of one cluster.
  using Score = std::tuple<double, double, double, double, double>;
  struct Scored {
    Choice choice;
    Score score;
  };
  // Every feasible choice with its score, best first.
  std::vector<Scored> RankScored(std::span<const GpuState> gpus, const Request& request) const;

 private:
  Policy policy_;
  Demand demand_;
  ShareLimits limits_;
};

// Carries a choice out on `gpus` for `owner`; Release undoes it.
absl::Status Apply(std::span<GpuState> gpus, const Choice& choice, const Request& request,
                   const std::string& owner, const ShareLimits& limits = {});
absl::Status Release(std::span<GpuState> gpus, const Choice& choice, const Request& request,
                     const std::string& owner);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_PLACEMENT_H_
