// C++ types for the resource.k8s.io/v1 objects tessera reads and writes: ResourceSlice,
// ResourceClaim (with status), ResourceClaimTemplate and DeviceClass. Field names follow the JSON
// names in snake_case; see ../shared/reference/dra-protocol.md §5-§8 for the rules behind them.
//
// Decoding is lenient about unknown fields by default (newer API servers add fields), but every
// field that is present must have the right type. Encoding leaves out what Kubernetes omits when
// empty, so decode(encode(x)) == x and encode(decode(server JSON)) equals the server JSON for every
// field modelled here.
#ifndef TESSERA_API_RESOURCE_H_
#define TESSERA_API_RESOURCE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tessera/api/json_decode.h"
#include "tessera/api/meta.h"
#include "tessera/api/quantity.h"

namespace tessera::api {

inline constexpr std::string_view kResourceApiVersion = "resource.k8s.io/v1";

// ---------------------------------------------------------------------------------------------
// ResourceSlice

// Exactly one of the four values is set.
struct DeviceAttribute {
  std::optional<int64_t> int_value;
  std::optional<bool> bool_value;
  std::optional<std::string> string_value;
  std::optional<std::string> version_value;  // semver 2.0
  bool operator==(const DeviceAttribute&) const = default;

  static DeviceAttribute Int(int64_t v) {
    DeviceAttribute a;
    a.int_value = v;
    return a;
  }
  static DeviceAttribute Bool(bool v) {
    DeviceAttribute a;
    a.bool_value = v;
    return a;
  }
  static DeviceAttribute String(std::string v) {
    DeviceAttribute a;
    a.string_value = std::move(v);
    return a;
  }
  static DeviceAttribute Version(std::string v) {
    DeviceAttribute a;
    a.version_value = std::move(v);
    return a;
  }
};

struct CapacityRequestPolicyRange {
  Quantity min;
  std::optional<Quantity> max{};
  std::optional<Quantity> step{};
  bool operator==(const CapacityRequestPolicyRange&) const = default;
};

// At most one of valid_values / valid_range.
struct CapacityRequestPolicy {
  std::optional<Quantity> default_value{};
  std::vector<Quantity> valid_values{};
  std::optional<CapacityRequestPolicyRange> valid_range{};
  bool operator==(const CapacityRequestPolicy&) const = default;
};

struct DeviceCapacity {
  Quantity value;
  std::optional<CapacityRequestPolicy> request_policy;
  bool operator==(const DeviceCapacity&) const = default;
};

struct Counter {
  Quantity value;
  bool operator==(const Counter&) const = default;
};

struct CounterSet {
  std::string name;
  std::map<std::string, Counter> counters{};
  bool operator==(const CounterSet&) const = default;
};

struct DeviceCounterConsumption {
  std::string counter_set;
  std::map<std::string, Counter> counters;
  bool operator==(const DeviceCounterConsumption&) const = default;
};

struct DeviceTaint {
  std::string key;
  std::string value;
  std::string effect;  // None, NoSchedule, NoExecute
  std::optional<std::string> time_added;
  bool operator==(const DeviceTaint&) const = default;
};

struct Device {
  std::string name;
  std::map<std::string, DeviceAttribute> attributes;
  std::map<std::string, DeviceCapacity> capacity;
  std::vector<DeviceCounterConsumption> consumes_counters;
  std::optional<std::string> node_name;
  std::optional<NodeSelector> node_selector;
  std::optional<bool> all_nodes;
  std::vector<DeviceTaint> taints;
  std::optional<bool> binds_to_node;
  std::vector<std::string> binding_conditions;
  std::vector<std::string> binding_failure_conditions;
  std::optional<bool> allow_multiple_allocations;
  bool operator==(const Device&) const = default;
};

struct ResourcePool {
  std::string name;
  int64_t generation = 0;
  int64_t resource_slice_count = 0;
  bool operator==(const ResourcePool&) const = default;
};

struct ResourceSliceSpec {
  std::string driver;
  ResourcePool pool;
  std::optional<std::string> node_name;
  std::optional<NodeSelector> node_selector;
  std::optional<bool> all_nodes;
  std::vector<Device> devices;
  std::optional<bool> per_device_node_selection;
  std::vector<CounterSet> shared_counters;
  bool operator==(const ResourceSliceSpec&) const = default;
};

struct ResourceSlice {
  ObjectMeta metadata;
  ResourceSliceSpec spec;
  bool operator==(const ResourceSlice&) const = default;
};

// ---------------------------------------------------------------------------------------------
// ResourceClaim

struct CelDeviceSelector {
  std::string expression;
  bool operator==(const CelDeviceSelector&) const = default;
};

struct DeviceSelector {
  std::optional<CelDeviceSelector> cel;
  bool operator==(const DeviceSelector&) const = default;
};

struct DeviceToleration {
  std::string key;
  std::string operator_;  // Exists, Equal
  std::string value;
  std::string effect;
  std::optional<int64_t> toleration_seconds;
  bool operator==(const DeviceToleration&) const = default;
};

struct CapacityRequirements {
  std::map<std::string, Quantity> requests;
  bool operator==(const CapacityRequirements&) const = default;
};

// The fields shared by `exactly` and a `firstAvailable` sub-request.
struct DeviceRequestSelection {
  std::string device_class_name;
  std::vector<DeviceSelector> selectors;
  std::string allocation_mode;  // ExactCount (default) or All
  std::optional<int64_t> count;
  std::vector<DeviceToleration> tolerations;
  std::optional<CapacityRequirements> capacity;
  bool operator==(const DeviceRequestSelection&) const = default;
};

struct ExactDeviceRequest : DeviceRequestSelection {
  std::optional<bool> admin_access;
  bool operator==(const ExactDeviceRequest&) const = default;
};

struct DeviceSubRequest : DeviceRequestSelection {
  std::string name;
  bool operator==(const DeviceSubRequest&) const = default;
};

// Exactly one of `exactly` and `first_available`.
struct DeviceRequest {
  std::string name;
  std::optional<ExactDeviceRequest> exactly;
  std::vector<DeviceSubRequest> first_available;
  bool operator==(const DeviceRequest&) const = default;
};

struct DeviceConstraint {
  std::vector<std::string> requests;
  std::optional<std::string> match_attribute;
  std::optional<std::string> distinct_attribute;
  bool operator==(const DeviceConstraint&) const = default;
};

// Driver-specific parameters; `parameters` is any JSON object (see gpu_config.h for ours).
struct OpaqueDeviceConfiguration {
  std::string driver;
  Json parameters = Json::object();
  bool operator==(const OpaqueDeviceConfiguration&) const = default;
};

struct DeviceClaimConfiguration {
  std::vector<std::string> requests;
  std::optional<OpaqueDeviceConfiguration> opaque;
  bool operator==(const DeviceClaimConfiguration&) const = default;
};

struct DeviceClaim {
  std::vector<DeviceRequest> requests;
  std::vector<DeviceConstraint> constraints;
  std::vector<DeviceClaimConfiguration> config;
  bool operator==(const DeviceClaim&) const = default;
};

struct ResourceClaimSpec {
  DeviceClaim devices;
  bool operator==(const ResourceClaimSpec&) const = default;
};

struct DeviceRequestAllocationResult {
  std::string request;  // "<request>" or "<request>/<subrequest>"
  std::string driver;
  std::string pool;
  std::string device;
  std::optional<bool> admin_access;
  std::vector<DeviceToleration> tolerations;
  std::vector<std::string> binding_conditions;
  std::vector<std::string> binding_failure_conditions;
  std::optional<std::string> share_id;
  std::map<std::string, Quantity> consumed_capacity;
  bool operator==(const DeviceRequestAllocationResult&) const = default;

  // The top-level request name: "gpu" for "gpu/mig-small".
  std::string ParentRequest() const;
};

struct DeviceAllocationConfiguration {
  std::string source;  // FromClass, FromClaim
  std::vector<std::string> requests;
  std::optional<OpaqueDeviceConfiguration> opaque;
  bool operator==(const DeviceAllocationConfiguration&) const = default;
};

struct DeviceAllocationResult {
  std::vector<DeviceRequestAllocationResult> results;
  std::vector<DeviceAllocationConfiguration> config;
  bool operator==(const DeviceAllocationResult&) const = default;
};

struct AllocationResult {
  DeviceAllocationResult devices;
  std::optional<NodeSelector> node_selector;
  std::optional<std::string> allocation_timestamp;
  bool operator==(const AllocationResult&) const = default;
};

struct ResourceClaimConsumerReference {
  std::string api_group;
  std::string resource;
  std::string name;
  std::string uid;
  bool operator==(const ResourceClaimConsumerReference&) const = default;
};

struct NetworkDeviceData {
  std::string interface_name;
  std::vector<std::string> ips;
  std::string hardware_address;
  bool operator==(const NetworkDeviceData&) const = default;
};

struct AllocatedDeviceStatus {
  std::string driver;
  std::string pool;
  std::string device;
  std::optional<std::string> share_id;
  std::vector<Condition> conditions;
  std::optional<Json> data;
  std::optional<NetworkDeviceData> network_data;
  bool operator==(const AllocatedDeviceStatus&) const = default;
};

struct ResourceClaimStatus {
  std::optional<AllocationResult> allocation;
  std::vector<ResourceClaimConsumerReference> reserved_for;
  std::vector<AllocatedDeviceStatus> devices;
  bool operator==(const ResourceClaimStatus&) const = default;
};

struct ResourceClaim {
  ObjectMeta metadata;
  ResourceClaimSpec spec;
  ResourceClaimStatus status;
  bool operator==(const ResourceClaim&) const = default;
};

struct ResourceClaimTemplateSpec {
  ObjectMeta metadata;  // only labels and annotations are used
  ResourceClaimSpec spec;
  bool operator==(const ResourceClaimTemplateSpec&) const = default;
};

struct ResourceClaimTemplate {
  ObjectMeta metadata;
  ResourceClaimTemplateSpec spec;
  bool operator==(const ResourceClaimTemplate&) const = default;
};

struct DeviceClassConfiguration {
  std::optional<OpaqueDeviceConfiguration> opaque;
  bool operator==(const DeviceClassConfiguration&) const = default;
};

struct DeviceClassSpec {
  std::vector<DeviceSelector> selectors;
  std::vector<DeviceClassConfiguration> config;
  std::optional<std::string> extended_resource_name;
  bool operator==(const DeviceClassSpec&) const = default;
};

struct DeviceClass {
  ObjectMeta metadata;
  DeviceClassSpec spec;
  bool operator==(const DeviceClass&) const = default;
};

#define TESSERA_API_JSON(T)                                              \
  absl::Status Decode(const DecodeContext& ctx, const Json& in, T* out); \
  void to_json(Json& out, const T& in)

TESSERA_API_JSON(DeviceAttribute);
TESSERA_API_JSON(CapacityRequestPolicyRange);
TESSERA_API_JSON(CapacityRequestPolicy);
TESSERA_API_JSON(DeviceCapacity);
TESSERA_API_JSON(Counter);
TESSERA_API_JSON(CounterSet);
TESSERA_API_JSON(DeviceCounterConsumption);
TESSERA_API_JSON(DeviceTaint);
TESSERA_API_JSON(Device);
TESSERA_API_JSON(ResourcePool);
TESSERA_API_JSON(ResourceSliceSpec);
TESSERA_API_JSON(ResourceSlice);
TESSERA_API_JSON(CelDeviceSelector);
TESSERA_API_JSON(DeviceSelector);
TESSERA_API_JSON(DeviceToleration);
TESSERA_API_JSON(CapacityRequirements);
TESSERA_API_JSON(ExactDeviceRequest);
TESSERA_API_JSON(DeviceSubRequest);
TESSERA_API_JSON(DeviceRequest);
TESSERA_API_JSON(DeviceConstraint);
TESSERA_API_JSON(OpaqueDeviceConfiguration);
TESSERA_API_JSON(DeviceClaimConfiguration);
TESSERA_API_JSON(DeviceClaim);
TESSERA_API_JSON(ResourceClaimSpec);
TESSERA_API_JSON(DeviceRequestAllocationResult);
TESSERA_API_JSON(DeviceAllocationConfiguration);
TESSERA_API_JSON(DeviceAllocationResult);
TESSERA_API_JSON(AllocationResult);
TESSERA_API_JSON(ResourceClaimConsumerReference);
TESSERA_API_JSON(NetworkDeviceData);
TESSERA_API_JSON(AllocatedDeviceStatus);
TESSERA_API_JSON(ResourceClaimStatus);
TESSERA_API_JSON(ResourceClaim);
TESSERA_API_JSON(ResourceClaimTemplateSpec);
TESSERA_API_JSON(ResourceClaimTemplate);
TESSERA_API_JSON(DeviceClassConfiguration);
TESSERA_API_JSON(DeviceClassSpec);
TESSERA_API_JSON(DeviceClass);

#undef TESSERA_API_JSON

}  // namespace tessera::api

#endif  // TESSERA_API_RESOURCE_H_
