// JSON for ResourceClaim, ResourceClaimTemplate and DeviceClass.
#include "tessera/api/resource.h"

namespace tessera::api {
namespace {

void DecodeSelection(ObjectDecoder& d, DeviceRequestSelection* out) {
  d.Required("deviceClassName", &out->device_class_name);
  d.Optional("selectors", &out->selectors);
  d.Optional("allocationMode", &out->allocation_mode);
  d.Optional("count", &out->count);
  d.Optional("tolerations", &out->tolerations);
  d.Optional("capacity", &out->capacity);
}

void EncodeSelection(ObjectEncoder& e, const DeviceRequestSelection& in) {
  e.Set("deviceClassName", in.device_class_name)
      .SetNonEmpty("selectors", in.selectors)
      .SetNonEmpty("allocationMode", in.allocation_mode)
      .SetOptional("count", in.count)
      .SetNonEmpty("tolerations", in.tolerations)
      .SetOptional("capacity", in.capacity);
}

}  // namespace

absl::Status Decode(const DecodeContext& ctx, const Json& in, CelDeviceSelector* out) {
  ObjectDecoder d(ctx, in);
  d.Required("expression", &out->expression);
  return d.Finish();
}

void to_json(Json& out, const CelDeviceSelector& in) {
  out = ObjectEncoder().Set("expression", in.expression).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceSelector* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("cel", &out->cel);
  return d.Finish();
}

void to_json(Json& out, const DeviceSelector& in) {
  out = ObjectEncoder().SetOptional("cel", in.cel).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceToleration* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("key", &out->key);
  d.Optional("operator", &out->operator_);
  d.Optional("value", &out->value);
  d.Optional("effect", &out->effect);
  d.Optional("tolerationSeconds", &out->toleration_seconds);
  return d.Finish();
}

void to_json(Json& out, const DeviceToleration& in) {
  out = ObjectEncoder()
            .SetNonEmpty("key", in.key)
            .SetNonEmpty("operator", in.operator_)
            .SetNonEmpty("value", in.value)
            .SetNonEmpty("effect", in.effect)
            .SetOptional("tolerationSeconds", in.toleration_seconds)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, CapacityRequirements* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("requests", &out->requests);
  return d.Finish();
}

void to_json(Json& out, const CapacityRequirements& in) {
  out = ObjectEncoder().SetNonEmpty("requests", in.requests).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ExactDeviceRequest* out) {
  ObjectDecoder d(ctx, in);
  DecodeSelection(d, out);
  d.Optional("adminAccess", &out->admin_access);
  return d.Finish();
}

void to_json(Json& out, const ExactDeviceRequest& in) {
  ObjectEncoder e;
  EncodeSelection(e, in);
  e.SetOptional("adminAccess", in.admin_access);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceSubRequest* out) {
  ObjectDecoder d(ctx, in);
  d.Required("name", &out->name);
  DecodeSelection(d, out);
  return d.Finish();
}

void to_json(Json& out, const DeviceSubRequest& in) {
  ObjectEncoder e;
  e.Set("name", in.name);
  EncodeSelection(e, in);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceRequest* out) {
  ObjectDecoder d(ctx, in);
  d.Required("name", &out->name);
  d.Optional("exactly", &out->exactly);
  d.Optional("firstAvailable", &out->first_available);
  if (d.ok() && out->exactly.has_value() == !out->first_available.empty()) {
    d.Fail(ctx.Error("exactly one of exactly and firstAvailable must be set"));
  }
  return d.Finish();
}

void to_json(Json& out, const DeviceRequest& in) {
  out = ObjectEncoder()
            .Set("name", in.name)
            .SetOptional("exactly", in.exactly)
            .SetNonEmpty("firstAvailable", in.first_available)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceConstraint* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("requests", &out->requests);
  d.Optional("matchAttribute", &out->match_attribute);
  d.Optional("distinctAttribute", &out->distinct_attribute);
  return d.Finish();
}

void to_json(Json& out, const DeviceConstraint& in) {
  out = ObjectEncoder()
            .SetNonEmpty("requests", in.requests)
            .SetOptional("matchAttribute", in.match_attribute)
            .SetOptional("distinctAttribute", in.distinct_attribute)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, OpaqueDeviceConfiguration* out) {
  ObjectDecoder d(ctx, in);
  d.Required("driver", &out->driver);
  d.Required("parameters", &out->parameters);
  return d.Finish();
}

void to_json(Json& out, const OpaqueDeviceConfiguration& in) {
  out = ObjectEncoder().Set("driver", in.driver).Set("parameters", in.parameters).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceClaimConfiguration* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("requests", &out->requests);
  d.Optional("opaque", &out->opaque);
  return d.Finish();
}

void to_json(Json& out, const DeviceClaimConfiguration& in) {
  out =
      ObjectEncoder().SetNonEmpty("requests", in.requests).SetOptional("opaque", in.opaque).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceClaim* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("requests", &out->requests);
  d.Optional("constraints", &out->constraints);
  d.Optional("config", &out->config);
  return d.Finish();
}

void to_json(Json& out, const DeviceClaim& in) {
  out = ObjectEncoder()
            .SetNonEmpty("requests", in.requests)
            .SetNonEmpty("constraints", in.constraints)
            .SetNonEmpty("config", in.config)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaimSpec* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("devices", &out->devices);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaimSpec& in) {
  out = ObjectEncoder().Set("devices", in.devices).Build();
}

std::string DeviceRequestAllocationResult::ParentRequest() const {
  return request.substr(0, request.find('/'));
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceRequestAllocationResult* out) {
  ObjectDecoder d(ctx, in);
  d.Required("request", &out->request);
  d.Required("driver", &out->driver);
  d.Required("pool", &out->pool);
  d.Required("device", &out->device);
  d.Optional("adminAccess", &out->admin_access);
  d.Optional("tolerations", &out->tolerations);
  d.Optional("bindingConditions", &out->binding_conditions);
  d.Optional("bindingFailureConditions", &out->binding_failure_conditions);
  d.Optional("shareID", &out->share_id);
  d.Optional("consumedCapacity", &out->consumed_capacity);
  return d.Finish();
}

void to_json(Json& out, const DeviceRequestAllocationResult& in) {
  out = ObjectEncoder()
            .Set("request", in.request)
            .Set("driver", in.driver)
            .Set("pool", in.pool)
            .Set("device", in.device)
            .SetOptional("adminAccess", in.admin_access)
            .SetNonEmpty("tolerations", in.tolerations)
            .SetNonEmpty("bindingConditions", in.binding_conditions)
            .SetNonEmpty("bindingFailureConditions", in.binding_failure_conditions)
            .SetOptional("shareID", in.share_id)
            .SetNonEmpty("consumedCapacity", in.consumed_capacity)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceAllocationConfiguration* out) {
  ObjectDecoder d(ctx, in);
  d.Required("source", &out->source);
  d.Optional("requests", &out->requests);
  d.Optional("opaque", &out->opaque);
  return d.Finish();
}

void to_json(Json& out, const DeviceAllocationConfiguration& in) {
  out = ObjectEncoder()
            .Set("source", in.source)
            .SetNonEmpty("requests", in.requests)
            .SetOptional("opaque", in.opaque)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceAllocationResult* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("results", &out->results);
  d.Optional("config", &out->config);
  return d.Finish();
}

void to_json(Json& out, const DeviceAllocationResult& in) {
  out = ObjectEncoder().SetNonEmpty("results", in.results).SetNonEmpty("config", in.config).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, AllocationResult* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("devices", &out->devices);
  d.Optional("nodeSelector", &out->node_selector);
  d.Optional("allocationTimestamp", &out->allocation_timestamp);
  return d.Finish();
}

void to_json(Json& out, const AllocationResult& in) {
  out = ObjectEncoder()
            .Set("devices", in.devices)
            .SetOptional("nodeSelector", in.node_selector)
            .SetOptional("allocationTimestamp", in.allocation_timestamp)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaimConsumerReference* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("apiGroup", &out->api_group);
  d.Required("resource", &out->resource);
  d.Required("name", &out->name);
  d.Required("uid", &out->uid);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaimConsumerReference& in) {
  out = ObjectEncoder()
            .SetNonEmpty("apiGroup", in.api_group)
            .Set("resource", in.resource)
            .Set("name", in.name)
            .Set("uid", in.uid)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, NetworkDeviceData* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("interfaceName", &out->interface_name);
  d.Optional("ips", &out->ips);
  d.Optional("hardwareAddress", &out->hardware_address);
  return d.Finish();
}

void to_json(Json& out, const NetworkDeviceData& in) {
  out = ObjectEncoder()
            .SetNonEmpty("interfaceName", in.interface_name)
            .SetNonEmpty("ips", in.ips)
            .SetNonEmpty("hardwareAddress", in.hardware_address)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, AllocatedDeviceStatus* out) {
  ObjectDecoder d(ctx, in);
  d.Required("driver", &out->driver);
  d.Required("pool", &out->pool);
  d.Required("device", &out->device);
  d.Optional("shareID", &out->share_id);
  d.Optional("conditions", &out->conditions);
  d.Optional("data", &out->data);
  d.Optional("networkData", &out->network_data);
  return d.Finish();
}

void to_json(Json& out, const AllocatedDeviceStatus& in) {
  out = ObjectEncoder()
            .Set("driver", in.driver)
            .Set("pool", in.pool)
            .Set("device", in.device)
            .SetOptional("shareID", in.share_id)
            .SetNonEmpty("conditions", in.conditions)
            .SetOptional("data", in.data)
            .SetOptional("networkData", in.network_data)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaimStatus* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("allocation", &out->allocation);
  d.Optional("reservedFor", &out->reserved_for);
  d.Optional("devices", &out->devices);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaimStatus& in) {
  out = ObjectEncoder()
            .SetOptional("allocation", in.allocation)
            .SetNonEmpty("reservedFor", in.reserved_for)
            .SetNonEmpty("devices", in.devices)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaim* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kResourceApiVersion, "ResourceClaim");
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  d.Optional("status", &out->status);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaim& in) {
  ObjectEncoder e;
  e.Set("apiVersion", kResourceApiVersion)
      .Set("kind", "ResourceClaim")
      .Set("metadata", in.metadata)
      .Set("spec", in.spec);
  if (in.status != ResourceClaimStatus{}) e.Set("status", in.status);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaimTemplateSpec* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaimTemplateSpec& in) {
  ObjectEncoder e;
  if (in.metadata != ObjectMeta{}) e.Set("metadata", in.metadata);
  e.Set("spec", in.spec);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceClaimTemplate* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kResourceApiVersion, "ResourceClaimTemplate");
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  return d.Finish();
}

void to_json(Json& out, const ResourceClaimTemplate& in) {
  out = ObjectEncoder()
            .Set("apiVersion", kResourceApiVersion)
            .Set("kind", "ResourceClaimTemplate")
            .Set("metadata", in.metadata)
            .Set("spec", in.spec)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceClassConfiguration* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("opaque", &out->opaque);
  return d.Finish();
}

void to_json(Json& out, const DeviceClassConfiguration& in) {
  out = ObjectEncoder().SetOptional("opaque", in.opaque).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceClassSpec* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("selectors", &out->selectors);
  d.Optional("config", &out->config);
  d.Optional("extendedResourceName", &out->extended_resource_name);
  return d.Finish();
}

void to_json(Json& out, const DeviceClassSpec& in) {
  out = ObjectEncoder()
            .SetNonEmpty("selectors", in.selectors)
            .SetNonEmpty("config", in.config)
            .SetOptional("extendedResourceName", in.extended_resource_name)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceClass* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kResourceApiVersion, "DeviceClass");
  d.Optional("metadata", &out->metadata);
  d.Optional("spec", &out->spec);
  return d.Finish();
}

void to_json(Json& out, const DeviceClass& in) {
  out = ObjectEncoder()
            .Set("apiVersion", kResourceApiVersion)
            .Set("kind", "DeviceClass")
            .Set("metadata", in.metadata)
            .Set("spec", in.spec)
            .Build();
}

}  // namespace tessera::api
