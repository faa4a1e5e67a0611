#ifndef TESSERA_PARTITIONER_DEVICE_MODEL_H_
#define TESSERA_PARTITIONER_DEVICE_MODEL_H_

// The device model: for the GPUs of one node, each in the mode its policy chose, and their current
// occupancy, the DRA devices and shared counter sets the controller publishes, in priority order.
//
// The order *is* the policy. The scheduler walks a node's devices in published order and takes
// the first one that matches the request and still fits its counters, so within each MIG profile
// the placements come in the order the Placer ranks them (best first), followed by the placements
// that do not fit right now (they must stay published: an allocated device that disappears from the
// pool no longer counts against the GPU's counters). Smaller profiles come before larger ones, so
// a request that several profiles satisfy gets the smallest.
//
// Devices per mode (DESIGN.md, "Modes of a GPU"):
//   whole        gpu-<i>
//   mig-dynamic  gpu-<i>-mig-<profile>-p<start> for every allowed profile and placement, plus
//                gpu-<i>; all consume the GPU's counter set gpu-<i>-counters. With instance
//                sharing, gpu-<i>-mig-<profile>-p<start>-mps|-ts as well: a shareable device that
//                consumes the placement's counters once, however many claims share it.
//   mig-static   one device per existing MIG instance (shareable with instance sharing)
//   mps, timeslice  gpu-<i>-mps / gpu-<i>-ts shareable, or gpu-<i>-mps-s<k> fixed share devices
//                where the cluster has no consumable capacity.
//
// Counters (dra-protocol reference §6.2): memory-slice-<k> (1 each), compute-slices, and, where the
// model needs them, media-extensions (one "+me" instance per GPU) and instances-<profile> (a
// profile's count limit below what its placements allow). These decide validity: a set of devices
// fits the counters exactly when its instances form a valid layout (the exhaustive test checks this
// for every reachable state). With CounterDetail::kFull the set also carries multiprocessors,
// memory and engine counters whose values are the most any valid layout uses, so they never refuse
// a valid layout but let tools read the GPU's budget.
//
// Not expressible as counters: the pre-R510 rule that a 4g and a 3g cannot coexist. On such models
// the 4g profile is not published in mig-dynamic mode (a warning says so).

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/crd.h"
#include "tessera/api/resource.h"
#include "tessera/partitioner/gpu_state.h"
#include "tessera/partitioner/placement.h"

namespace tessera::partitioner {

// What the cluster's API server and scheduler serve (from discovery).
struct ApiFeatures {
  bool partitionable_devices = true;  // DRAPartitionableDevices: counters are kept and honoured
  bool consumable_capacity = true;    // DRAConsumableCapacity: allowMultipleAllocations
  bool counters_in_own_slice = true;  // 1.35+: sharedCounters and devices in different slices
  // The defaults of a Kubernetes minor version (1.34 ... ), gates as shipped.
  static ApiFeatures Defaults(int minor);
};

enum class CounterDetail { kBindingOnly, kFull };

// The counter set of one GPU model and what each profile consumes from it.
struct CounterPlan {
  struct Entry {
    std::string name;
    std::int64_t value = 0;
    bool memory = false;  // a memory quantity in MiB (printed as "<n>Mi")
  };
  std::vector<Entry> counters;  // memory-slice-0 .. N-1 first
  // Per profile index: (counter index, amount) for every counter other than memory slices.
  std::vector<std::vector<std::pair<int, std::int64_t>>> profile_use;
  int compute_counter = -1;

  static CounterPlan For(const GpuModel& model, CounterDetail detail);
};

// One GPU of the node as the device model sees it.
struct GpuInput {
  const api::GpuInfo* info = nullptr;      // identity: index, UUID, product, PCI bus, instances
  const api::GpuPolicy* policy = nullptr;  // mode; null: whole
};

struct NodeInput {
  std::span<const GpuState> states;  // occupancy, parallel to gpus (position = Placer GPU number)
  std::span<const GpuInput> gpus;
  std::string driver_version{};       // "550.54.15"
  std::string cuda_driver_version{};  // "12.4"
  // Devices allocated to claims right now (from ResourceClaim statuses). They are published
  // whatever the policy says, because an allocated device that vanishes stops counting against
  // its GPU's counters.
  const std::set<std::string>* allocated = nullptr;
};

// Devices and counter sets are shared with the modeler's cache: a device whose inputs did not
// change since the last Build is the same object, so rebuilding a node after an allocation costs
// the ranking, not the API objects.
struct NodeDevices {
  std::vector<std::shared_ptr<const api::Device>> devices;  // priority order
  std::vector<std::shared_ptr<const api::CounterSet>> counter_sets;
  std::vector<std::string> warnings;  // what was published differently from the policy, and why
};

// One per node (or per worker): it caches counter plans per GPU model and the API objects of the
// GPUs it last built. Not thread-safe.
class DeviceModeler {
 public:
  DeviceModeler(const Placer& placer, ApiFeatures features);

  const ApiFeatures& features() const { return features_; }

  absl::StatusOr<NodeDevices> Build(const NodeInput& node);

  struct GpuCache {
    std::string fingerprint;  // everything about the GPU the objects depend on
    // By device key: the MIG instance UUID the device was built with, and the device.
    std::unordered_map<std::uint32_t, std::pair<std::string, std::shared_ptr<const api::Device>>>
        devices;
    std::shared_ptr<const api::CounterSet> counters;
  };

 private:
  const CounterPlan& Plan(const GpuModel& model);

  const Placer& placer_;
  ApiFeatures features_;
  CounterDetail detail_;
  std::map<const GpuModel*, const CounterPlan*> plans_;  // shared by the process (SharedPlan)
  std::map<std::string, GpuCache> cache_;                // by GPU UUID
};

// The counter set name of GPU `index`: "gpu-<index>-counters".
std::string CounterSetName(int index);

// Semantic version text from NVIDIA's version strings: "535.104.05" -> "535.104.5",
// "8.0" -> "8.0.0", "12.4" -> "12.4.0". Empty if the input is not dotted numbers.
std::string SemverFromDotted(std::string_view dotted);

}  // namespace tessera::partitioner

#endif  // TESSERA_PARTITIONER_DEVICE_MODEL_H_
