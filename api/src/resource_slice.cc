// JSON for ResourceSlice and its parts.
#include "tessera/api/resource.h"

namespace tessera::api {

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceAttribute* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("int", &out->int_value);
  d.Optional("bool", &out->bool_value);
  d.Optional("string", &out->string_value);
  d.Optional("version", &out->version_value);
  if (d.ok()) {
    int set = out->int_value.has_value() + out->bool_value.has_value() +
              out->string_value.has_value() + out->version_value.has_value();
    if (set != 1) {
      d.Fail(ctx.Error(StrCat("exactly one of int, bool, string, version must be set, got ",
                              set == 0 ? "none" : Describe(in))));
    }
  }
  return d.Finish();
}

void to_json(Json& out, const DeviceAttribute& in) {
  out = ObjectEncoder()
            .SetOptional("int", in.int_value)
            .SetOptional("bool", in.bool_value)
            .SetOptional("string", in.string_value)
            .SetOptional("version", in.version_value)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, CapacityRequestPolicyRange* out) {
  ObjectDecoder d(ctx, in);
  d.Required("min", &out->min);
  d.Optional("max", &out->max);
  d.Optional("step", &out->step);
  return d.Finish();
}

void to_json(Json& out, const CapacityRequestPolicyRange& in) {
  out = ObjectEncoder()
            .Set("min", in.min)
            .SetOptional("max", in.max)
            .SetOptional("step", in.step)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, CapacityRequestPolicy* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("default", &out->default_value);
  d.Optional("validValues", &out->valid_values);
  d.Optional("validRange", &out->valid_range);
  if (d.ok() && !out->valid_values.empty() && out->valid_range) {
    d.Fail(ctx.Error("at most one of validValues and validRange may be set"));
  }
  return d.Finish();
}

void to_json(Json& out, const CapacityRequestPolicy& in) {
  out = ObjectEncoder()
            .SetOptional("default", in.default_value)
            .SetNonEmpty("validValues", in.valid_values)
            .SetOptional("validRange", in.valid_range)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceCapacity* out) {
  ObjectDecoder d(ctx, in);
  d.Required("value", &out->value);
  d.Optional("requestPolicy", &out->request_policy);
  return d.Finish();
}

void to_json(Json& out, const DeviceCapacity& in) {
  out = ObjectEncoder()
            .Set("value", in.value)
            .SetOptional("requestPolicy", in.request_policy)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Counter* out) {
  ObjectDecoder d(ctx, in);
  d.Required("value", &out->value);
  return d.Finish();
}

void to_json(Json& out, const Counter& in) { out = ObjectEncoder().Set("value", in.value).Build(); }

absl::Status Decode(const DecodeContext& ctx, const Json& in, CounterSet* out) {
  ObjectDecoder d(ctx, in);
  d.Required("name", &out->name);
  d.Required("counters", &out->counters);
  return d.Finish();
}

void to_json(Json& out, const CounterSet& in) {
  out = ObjectEncoder().Set("name", in.name).Set("counters", in.counters).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceCounterConsumption* out) {
  ObjectDecoder d(ctx, in);
  d.Required("counterSet", &out->counter_set);
  d.Required("counters", &out->counters);
  return d.Finish();
}

void to_json(Json& out, const DeviceCounterConsumption& in) {
  out = ObjectEncoder().Set("counterSet", in.counter_set).Set("counters", in.counters).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, DeviceTaint* out) {
  ObjectDecoder d(ctx, in);
  d.Required("key", &out->key);
  d.Optional("value", &out->value);
  d.Required("effect", &out->effect);
  d.Optional("timeAdded", &out->time_added);
  return d.Finish();
}

void to_json(Json& out, const DeviceTaint& in) {
  out = ObjectEncoder()
            .Set("key", in.key)
            .SetNonEmpty("value", in.value)
            .Set("effect", in.effect)
            .SetOptional("timeAdded", in.time_added)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, Device* out) {
  ObjectDecoder d(ctx, in);
  d.Required("name", &out->name);
  d.Optional("attributes", &out->attributes);
  d.Optional("capacity", &out->capacity);
  d.Optional("consumesCounters", &out->consumes_counters);
  d.Optional("nodeName", &out->node_name);
  d.Optional("nodeSelector", &out->node_selector);
  d.Optional("allNodes", &out->all_nodes);
  d.Optional("taints", &out->taints);
  d.Optional("bindsToNode", &out->binds_to_node);
  d.Optional("bindingConditions", &out->binding_conditions);
  d.Optional("bindingFailureConditions", &out->binding_failure_conditions);
  d.Optional("allowMultipleAllocations", &out->allow_multiple_allocations);
  return d.Finish();
}

void to_json(Json& out, const Device& in) {
  out = ObjectEncoder()
            .Set("name", in.name)
            .SetNonEmpty("attributes", in.attributes)
            .SetNonEmpty("capacity", in.capacity)
            .SetNonEmpty("consumesCounters", in.consumes_counters)
            .SetOptional("nodeName", in.node_name)
            .SetOptional("nodeSelector", in.node_selector)
            .SetOptional("allNodes", in.all_nodes)
            .SetNonEmpty("taints", in.taints)
            .SetOptional("bindsToNode", in.binds_to_node)
            .SetNonEmpty("bindingConditions", in.binding_conditions)
            .SetNonEmpty("bindingFailureConditions", in.binding_failure_conditions)
            .SetOptional("allowMultipleAllocations", in.allow_multiple_allocations)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourcePool* out) {
  ObjectDecoder d(ctx, in);
  d.Required("name", &out->name);
  d.Optional("generation", &out->generation);
  d.Required("resourceSliceCount", &out->resource_slice_count);
  return d.Finish();
}

void to_json(Json& out, const ResourcePool& in) {
  // generation is always sent, even when 0 (reference §5.2).
  out = ObjectEncoder()
            .Set("name", in.name)
            .Set("generation", in.generation)
            .Set("resourceSliceCount", in.resource_slice_count)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceSliceSpec* out) {
  ObjectDecoder d(ctx, in);
  d.Required("driver", &out->driver);
  d.Required("pool", &out->pool);
  d.Optional("nodeName", &out->node_name);
  d.Optional("nodeSelector", &out->node_selector);
  d.Optional("allNodes", &out->all_nodes);
  d.Optional("devices", &out->devices);
  d.Optional("perDeviceNodeSelection", &out->per_device_node_selection);
  d.Optional("sharedCounters", &out->shared_counters);
  return d.Finish();
}

void to_json(Json& out, const ResourceSliceSpec& in) {
  out = ObjectEncoder()
            .Set("driver", in.driver)
            .Set("pool", in.pool)
            .SetOptional("nodeName", in.node_name)
            .SetOptional("nodeSelector", in.node_selector)
            .SetOptional("allNodes", in.all_nodes)
            .SetNonEmpty("devices", in.devices)
            .SetOptional("perDeviceNodeSelection", in.per_device_node_selection)
            .SetNonEmpty("sharedCounters", in.shared_counters)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ResourceSlice* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kResourceApiVersion, "ResourceSlice");
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  return d.Finish();
}

void to_json(Json& out, const ResourceSlice& in) {
  out = ObjectEncoder()
            .Set("apiVersion", kResourceApiVersion)
            .Set("kind", "ResourceSlice")
            .Set("metadata", in.metadata)
            .Set("spec", in.spec)
            .Build();
}

}  // namespace tessera::api
