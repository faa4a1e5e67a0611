#ifndef TESSERA_PARTITIONER_GPU_STATE_H_
#define TESSERA_PARTITIONER_GPU_STATE_H_

// The occupancy of one GPU: MIG instances at their placements, MPS or time-slice shares on the
// whole GPU or inside a MIG instance, or the whole GPU given to one claim. Every transition checks
// the placement rules and capacities and, when it refuses, says why; a GpuState can therefore never
// hold a layout NVML would reject or capacities it does not have.
//
// Rules (gpu-partitioning reference §1.6): an instance occupies the memory slices of its placement
// and no two instances overlap; a profile's instance count is bounded; at most one media-extension
// ("+me") instance per GPU; on drivers before R510 a 4g and a 3g cannot coexist. The GPU is used in
// one way at a time: whole, MIG instances, or shares of the whole GPU. Shares inside one host are
// of one kind; MPS shares' memory and compute percentages add up to at most the host's.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::partitioner {

struct Instance {
  int profile = -1;  // index into GpuModel::profiles
  Placement placement;
  std::string owner{};  // the claim that uses it; empty for an instance nobody claimed yet
};

enum class ShareKind { kMps, kTimeSlice };
std::string_view ShareKindName(ShareKind kind);

struct Share {
  ShareKind kind = ShareKind::kMps;
  std::string owner{};
  std::int64_t memory_mib = 0;  // MPS: the pinned device memory limit
  int compute_percent = 0;      // MPS: the active thread percentage, 1..100
  // The MIG instance the share lives in, by its placement; none: the whole GPU.
  std::optional<Placement> host{};
};

// The part of a GPU's state that decides where MIG instances fit: cheap to copy, so planners can
// try a placement and score the result without touching the GpuState.
struct MigSummary {
  enum class Refusal {
    kNone,
    kPlacement,  // not one of the profile's placements
    kBusy,       // the whole GPU or shares of the whole GPU are in use
    kOverlap,
    kCount,      // the profile's instance limit
    kMedia,      // a second +me instance
    kFourThree,  // 4g with 3g before R510
    kCompute,
  };
  static constexpr int kMaxProfiles = 16;

  SliceMask used = 0;
  int compute = 0;
  bool busy = false;
  bool media = false;
  std::array<std::uint8_t, kMaxProfiles> count{};

  Refusal Check(const GpuModel& model, int profile, Placement placement) const;
  bool Fits(const GpuModel& model, int profile, Placement placement) const {
    return Check(model, profile, placement) == Refusal::kNone;
  }
  // True if some placement of `profile` fits.
  bool FitsAnywhere(const GpuModel& model, int profile) const;
  // REQUIRES: Fits(model, profile, placement).
  void Add(const GpuModel& model, int profile, Placement placement);
};

struct ShareLimits {
  int max_mps_clients = 48;  // the MPS server's limit per device
  int max_timeslice_shares = 16;
};

class GpuState {
 public:
  explicit GpuState(const GpuModel& model) : model_(&model) {}

  const GpuModel& model() const { return *model_; }
  const std::vector<Instance>& instances() const { return instances_; }
  const std::vector<Share>& shares() const { return shares_; }
  const std::optional<std::string>& whole_owner() const { return whole_owner_; }

  // Memory slices taken by MIG instances.
  SliceMask used_slices() const { return mig_.used; }
  int compute_slices_used() const { return mig_.compute; }
  // What decides where instances fit now.
  const MigSummary& mig() const { return mig_; }
  bool empty() const { return instances_.empty() && shares_.empty() && !whole_owner_; }

  // OK if an instance of `profile` can be created at `placement` now; otherwise why not.
  absl::Status CheckInstance(int profile, Placement placement) const;
  absl::Status AddInstance(int profile, Placement placement, std::string owner);
  // Removes the instance at exactly `placement`. Refused while shares live in it.
  absl::Status RemoveInstance(Placement placement);
  // Placements of `profile` where an instance could be created now, in the model's order.
  std::vector<Placement> FreePlacements(int profile) const;
  // The instance at exactly `placement`, or null.
  const Instance* FindInstance(Placement placement) const;

  absl::Status CheckWhole() const;
  absl::Status AcquireWhole(std::string owner);
  absl::Status ReleaseWhole();

  absl::Status CheckShare(const Share& share, const ShareLimits& limits) const;
  absl::Status AddShare(Share share, const ShareLimits& limits);
  // Removes the share of `owner` (its first, if it had several).
  absl::Status RemoveShare(std::string_view owner);

  // Memory (MiB) and compute percent still free for MPS shares in `host`.
  std::int64_t FreeShareMemory(const std::optional<Placement>& host) const;
  int FreeSharePercent(const std::optional<Placement>& host) const;

  // "3g.20gb@4" style description of the instances, for logs and test messages.
  std::string Describe() const;

 private:
  std::int64_t HostMemory(const std::optional<Placement>& host) const;
  void Resummarize();

  const GpuModel* model_;
  std::vector<Instance> instances_{};
  std::vector<Share> shares_{};
  std::optional<std::string> whole_owner_;
  MigSummary mig_;
};

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_GPU_STATE_H_
