// tessera's own custom resources, API group tessera.dev, version v1alpha1. Both are
// cluster-scoped.
//
//  - GpuInventory: one per node, named after the node, written only by that node's kubelet
//    plugin. What the GPUs are (as discovered), how they are partitioned right now, their health,
//    and a heartbeat. The controller publishes ResourceSlices from it.
//  - GpuPartitionPolicy: written by admins. A node selector and, per GPU model or index, the mode
//    the GPUs run in (whole, mig-dynamic, mig-static with a layout, mps, timeslice).
//
// Decoding is strict: these objects are written by people or by our own code, so an unknown field
// is a mistake worth reporting. Validation here covers what can be checked without the GPU
// catalogue (formats, ranges, per-mode required fields); the controller checks models and layouts
// against the catalogue.
#ifndef TESSERA_API_CRD_H_
#define TESSERA_API_CRD_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tessera/api/gpu_config.h"
#include "tessera/api/json_decode.h"
#include "tessera/api/meta.h"
#include "tessera/api/quantity.h"

namespace tessera::api {

inline constexpr std::string_view kTesseraGroup = "tessera.dev";

// A MIG placement: `size` memory slices starting at slice `start`.
struct Placement {
  int32_t start = 0;
  int32_t size = 0;
  bool operator==(const Placement&) const = default;
};

// A GPU-instance profile as NVML reports it on the node.
struct MigProfileInfo {
  std::string name;        // e.g. "1g.10gb", "1g.20gb"
  int32_t profile_id = 0;  // NVML GPU-instance profile id
  int32_t compute_slices = 0;
  int32_t memory_slices = 0;
  Quantity memory;
  int32_t max_count = 0;
  int32_t multiprocessors = 0;
  int32_t copy_engines = 0;
  int32_t decoders = 0;
  int32_t encoders = 0;
  int32_t jpeg_engines = 0;
  int32_t ofa_engines = 0;
  std::vector<Placement> placements;
  bool operator==(const MigProfileInfo&) const = default;
};

struct ClaimReference {
  std::string namespace_;
  std::string name;
  std::string uid;
  bool operator==(const ClaimReference&) const = default;
};

// A MIG instance that exists on the GPU now.
struct MigInstanceInfo {
  std::string profile;
  Placement placement;
  int32_t gpu_instance_id = 0;
  int32_t compute_instance_id = 0;
  std::string uuid;
  std::optional<ClaimReference> owner_claim;
  bool created_by_tessera = false;  // only these may ever be destroyed by tessera
  bool operator==(const MigInstanceInfo&) const = default;
};

struct ShareInfo {
  std::string device;  // the device (GPU or MIG instance) the share runs on
  SharingStrategy strategy = SharingStrategy::kMps;
  ClaimReference claim;
  std::optional<int32_t> active_thread_percentage;
  std::optional<Quantity> pinned_device_memory_limit;
  bool operator==(const ShareInfo&) const = default;
};

enum class HealthState { kHealthy, kUnhealthy, kUnknown };
std::string_view ToString(HealthState state);

struct GpuInfo {
  int32_t index = 0;
  std::string uuid;
  std::string product;  // NVML name, e.g. "NVIDIA H100 80GB HBM3"
  std::string model;    // catalogue key if recognised, e.g. "h100-80gb"
  Quantity memory;
  std::string compute_capability;  // "9.0"
  std::string pci_bus_id;
  int32_t minor_number = -1;  // N in /dev/nvidiaN and in the MIG capability paths; -1 unknown
  bool mig_capable = false;
  bool mig_enabled = false;
  std::vector<MigProfileInfo> mig_profiles;
  std::vector<MigInstanceInfo> mig_instances;
  std::vector<ShareInfo> shares;
  std::optional<TimeSliceInterval> time_slice_interval;
  HealthState health = HealthState::kUnknown;
  std::string health_message;
  bool operator==(const GpuInfo&) const = default;
};

struct GpuInventorySpec {
  std::string node_name;
  std::string driver_version;
  std::string cuda_driver_version;
  std::vector<GpuInfo> gpus;
  bool operator==(const GpuInventorySpec&) const = default;
};

struct GpuInventoryStatus {
  std::string heartbeat_time;  // RFC 3339, renewed by the plugin
  std::string plugin_version;
  std::vector<Condition> conditions;
  bool operator==(const GpuInventoryStatus&) const = default;
};

struct GpuInventory {
  ObjectMeta metadata;
  GpuInventorySpec spec;
  GpuInventoryStatus status;
  bool operator==(const GpuInventory&) const = default;
};

enum class PartitionMode { kWhole, kMigDynamic, kMigStatic, kMps, kTimeSlice };
std::string_view ToString(PartitionMode mode);

// Which GPUs of a node an entry applies to; both empty = all GPUs.
struct GpuMatch {
  std::vector<std::string> models;  // catalogue keys, e.g. "a100-40gb"
  std::vector<int32_t> indices;
  bool operator==(const GpuMatch&) const = default;
};

struct MigStaticLayout {
  std::vector<std::string> profiles;  // one entry per instance, e.g. ["3g.40gb", "3g.40gb"]
  bool operator==(const MigStaticLayout&) const = default;
};

// Shares of one device (a GPU, or each MIG instance with mig modes).
struct ShareLimits {
  int32_t max_shares = 0;  // 0: unlimited with consumable capacity; fallback share count 4
  std::optional<Quantity> min_memory;  // smallest memory a share may ask for
  std::optional<int32_t> min_compute_percent;
  bool operator==(const ShareLimits&) const = default;
};

struct GpuPolicy {
  GpuMatch match;
  PartitionMode mode = PartitionMode::kWhole;
  std::optional<MigStaticLayout> mig_static;
  std::vector<std::string> allowed_profiles;  // mig-dynamic: empty = all profiles
  // mps / timeslice: limits of the shares; with a mig mode: shares inside each MIG instance.
  std::optional<SharingStrategy> instance_sharing;  // mig modes only
  std::optional<ShareLimits> shares;
  std::optional<TimeSliceInterval> time_slice_interval;
  bool operator==(const GpuPolicy&) const = default;
};

struct GpuPartitionPolicySpec {
  LabelSelector node_selector;
  std::vector<GpuPolicy> gpus;
  bool operator==(const GpuPartitionPolicySpec&) const = default;
};

struct GpuPartitionPolicyStatus {
  int64_t observed_generation = 0;
  std::vector<Condition> conditions;  // Accepted / Invalid
  int32_t selected_nodes = 0;
  std::vector<std::string> conflicting_policies;
  bool operator==(const GpuPartitionPolicyStatus&) const = default;
};

struct GpuPartitionPolicy {
  ObjectMeta metadata;
  GpuPartitionPolicySpec spec;
  GpuPartitionPolicyStatus status;
  bool operator==(const GpuPartitionPolicy&) const = default;
};

#define TESSERA_API_JSON(T)                                              \
  absl::Status Decode(const DecodeContext& ctx, const Json& in, T* out); \
  void to_json(Json& out, const T& in)

TESSERA_API_JSON(Placement);
TESSERA_API_JSON(MigProfileInfo);
TESSERA_API_JSON(ClaimReference);
TESSERA_API_JSON(MigInstanceInfo);
TESSERA_API_JSON(ShareInfo);
TESSERA_API_JSON(GpuInfo);
TESSERA_API_JSON(GpuInventorySpec);
TESSERA_API_JSON(GpuInventoryStatus);
TESSERA_API_JSON(GpuInventory);
TESSERA_API_JSON(GpuMatch);
TESSERA_API_JSON(MigStaticLayout);
TESSERA_API_JSON(ShareLimits);
TESSERA_API_JSON(GpuPolicy);
TESSERA_API_JSON(GpuPartitionPolicySpec);
TESSERA_API_JSON(GpuPartitionPolicyStatus);
TESSERA_API_JSON(GpuPartitionPolicy);

#undef TESSERA_API_JSON

// Strict decoding of a whole document (unknown fields rejected).
absl::StatusOr<GpuInventory> ParseGpuInventory(const Json& in);
absl::StatusOr<GpuPartitionPolicy> ParseGpuPartitionPolicy(const Json& in);

}  // namespace tessera::api

#endif  // TESSERA_API_CRD_H_
