#ifndef TESSERA_CONTROLLER_NODE_MODEL_H_
#define TESSERA_CONTROLLER_NODE_MODEL_H_

// One node's devices as the controller publishes them: the GPUs of its GpuInventory, each in the
// mode of its policy entry, occupied by what the cluster's ResourceClaims have been allocated
// there, ranked by the partitioner (partitioner::DeviceModeler).
//
// Occupancy comes from the allocations (what the scheduler has promised), not from the plugin's
// inventory of MIG instances (what exists now): the scheduler counts allocations, and an instance
// is only created when the claim is prepared. Instances the inventory lists that no allocation
// explains (an admin's, or one being torn down) are added as unowned occupancy, so the ranking
// steers new claims away from them.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/crd.h"
#include "tessera/api/json_decode.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/gpu_state.h"
#include "tessera/partitioner/placement.h"

namespace tessera::controller {

// One device allocation result of our driver.
struct AllocatedDevice {
  std::string pool;             // the node
  std::string device;           // "gpu-1-mig-3g40gb-p4"
  std::string claim;            // "namespace/name"
  std::string share_id;         // consumable capacity shares
  std::int64_t memory_mib = 0;  // consumedCapacity.memory
  int compute_percent = 0;      // consumedCapacity.compute
};

// The allocation results of `driver` in a ResourceClaim (empty when it is not allocated).
std::vector<AllocatedDevice> AllocatedDevicesOf(const api::Json& claim, std::string_view driver);

struct NodeModelInput {
  const api::GpuInventorySpec* inventory = nullptr;
  const api::GpuPartitionPolicySpec* policy = nullptr;  // null: every GPU whole
  std::vector<AllocatedDevice> allocated{};
};

struct NodeModel {
  partitioner::NodeDevices devices;
  // Allocations that do not fit what the model knows (a device of another GPU count, two claims
  // on one placement) and the modeler's own warnings: logged and turned into Events.
  std::vector<std::string> warnings;
  // The occupancy used for ranking, per GPU in inventory order ("3g.40gb@4 ..."), for logs.
  std::vector<std::string> occupancy;
};

// The partitioner state kept per node between syncs: GPU models built from the inventory (kept
// while the GPU's reported profiles do not change) and the device modeler with its caches.
class NodeModeler {
 public:
  NodeModeler(const partitioner::Placer& placer, partitioner::ApiFeatures features);

  absl::StatusOr<NodeModel> Build(const NodeModelInput& input);

 private:
  const partitioner::Placer& placer_;
  partitioner::ApiFeatures features_;
  struct CachedModel {
    std::string fingerprint;
    std::unique_ptr<partitioner::GpuModel> model;
  };
  std::map<std::string, CachedModel> models_;  // by GPU UUID (or index)
  // Recreated whenever a model object is replaced: it caches counter plans by model address.
  std::unique_ptr<partitioner::DeviceModeler> modeler_;
};

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_NODE_MODEL_H_
