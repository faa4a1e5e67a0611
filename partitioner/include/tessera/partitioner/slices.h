#ifndef TESSERA_PARTITIONER_SLICES_H_
#define TESSERA_PARTITIONER_SLICES_H_

// Splitting a node's devices and counter sets into ResourceSlices, and checking a pool against
// every rule the API server and the scheduler apply (dra-protocol reference §5.2, §5.6, §6.3,
// §6.4): the API server rejects a slice that breaks a per-slice limit, and the scheduler ignores
// the whole pool when a cross-slice rule is broken, so nothing is published that fails
// ValidatePool.
//
// Layouts:
//  - 1.35+: devices and sharedCounters never share a slice. Device slices come first, in priority
//    order (the 1.36+ allocator sorts slices by name, so the caller names them in this order), each
//    holding at most 64 devices when any of them consumes counters, else 128; then ⌈sets/8⌉
//    counter-only slices. Devices are grouped by what a request can tell apart: one MIG profile
//    (or the whole GPUs), one share kind. A group is never split across slices unless it alone
//    exceeds the limit (more than 64 placements of one profile: 10+ GPUs of 7 1g placements), so
//    which slice a device is in depends only on the set of devices, not on their order. Steering
//    (re-ranking placements after allocations change) then re-orders devices inside slices, an
//    in-place update that keeps the pool's generation, instead of moving devices between slices.
//  - 1.34: a device may only consume counter sets of its own slice and a slice holds at most 32
//    counters in all, so each slice carries whole GPUs: their counter sets and all their devices.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/resource.h"
#include "tessera/partitioner/device_model.h"

namespace tessera::partitioner {

struct SliceLimits {
  int max_devices = 128;
  int max_devices_with_counters = 64;  // 128 on 1.34
  bool counters_in_own_slice = true;   // 1.35+
  int max_counter_sets_per_slice = 8;  // 1.35+
  int max_counters_per_set = 32;
  int max_counters_per_slice = 32;             // 1.34: summed over the slice's sets
  int max_consumptions_per_device = 2;         // 1.35+ (1.34: unlimited)
  int max_counters_per_consumption = 32;       // counters named in one consumesCounters entry
  int max_consumed_counters_per_slice = 1024;  // 1.34
  int max_attributes_and_capacities = 32;
  static SliceLimits ForFeatures(const ApiFeatures& features);
};

struct PoolIdentity {
  std::string driver;  // "gpu.tessera.dev"
  std::string pool;    // the node name
  std::string node_name;
  std::int64_t generation = 0;
};

absl::StatusOr<std::vector<api::ResourceSliceSpec>> SplitIntoSlices(const NodeDevices& node,
                                                                    const PoolIdentity& pool,
                                                                    const SliceLimits& limits);

// Every rule of one pool's slices; the error names the slice, the device and the rule.
absl::Status ValidatePool(std::span<const api::ResourceSliceSpec> slices,
                          const SliceLimits& limits);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_SLICES_H_
