#include "tessera/api/crd.h"

#include <array>
#include <set>

namespace tessera::api {
namespace {

constexpr std::array<std::string_view, 3> kHealthStates = {"Healthy", "Unhealthy", "Unknown"};
constexpr std::array<std::string_view, 5> kModes = {"whole", "mig-dynamic", "mig-static", "mps",
                                                    "timeslice"};
constexpr int32_t kMaxMemorySlices = 8;
constexpr int32_t kMaxMigInstances = 7;
constexpr int32_t kMaxGpuIndex = 63;
constexpr int32_t kMaxShares = 128;

auto NonEmpty(std::string* out) {
  return [out](const DecodeContext& c, const Json& v) {
    if (absl::Status s = Decode(c, v, out); !s.ok()) return s;
    return out->empty() ? c.Error("must not be empty") : absl::OkStatus();
  };
}

// Catalogue keys and profile names: lowercase letters, digits, '.', '-'; starts alphanumeric.
bool IsModelName(std::string_view name) {
  if (name.empty() || name.size() > 63 || name[0] == '.' || name[0] == '-') return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-')) return false;
  }
  return true;
}

auto Names(std::vector<std::string>* out, std::string_view what) {
  return [out, what](const DecodeContext& c, const Json& v) {
    if (absl::Status s = Decode(c, v, out); !s.ok()) return s;
    for (size_t i = 0; i < out->size(); ++i) {
      if (!IsModelName((*out)[i])) {
        return c.Index(i).Error(StrCat("\"", (*out)[i], "\" is not a valid ", what,
                                       " (lowercase letters, digits, '.', '-')"));
      }
    }
    return absl::OkStatus();
  };
}

template <typename T>
absl::StatusOr<T> ParseStrict(const Json& in) {
  return DecodeJson<T>(in, UnknownFields::kReject);
}

}  // namespace

std::string_view ToString(HealthState state) { return kHealthStates[static_cast<size_t>(state)]; }

std::string_view ToString(PartitionMode mode) { return kModes[static_cast<size_t>(mode)]; }

absl::Status Decode(const DecodeContext& ctx, const Json& in, Placement* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("start", RangeField(&out->start, 0, kMaxMemorySlices - 1));
  d.RequiredWith("size", RangeField(&out->size, 1, kMaxMemorySlices));
  if (d.ok() && out->start + out->size > kMaxMemorySlices) {
    d.Fail(ctx.Error(StrCat("placement {start: ", out->start, ", size: ", out->size,
                            "} ends past memory slice ", kMaxMemorySlices - 1)));
  }
  return d.Finish();
}

void to_json(Json& out, const Placement& in) { out = Json{{"start", in.start}, {"size", in.size}}; }

absl::Status Decode(const DecodeContext& ctx, const Json& in, MigProfileInfo* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("name", NonEmpty(&out->name));
  d.RequiredWith("profileID", RangeField(&out->profile_id, 0, 255));
  d.RequiredWith("computeSlices", RangeField(&out->compute_slices, 1, kMaxMemorySlices));
  d.RequiredWith("memorySlices", RangeField(&out->memory_slices, 1, kMaxMemorySlices));
  d.Required("memory", &out->memory);
  d.RequiredWith("maxCount", RangeField(&out->max_count, 1, kMaxMigInstances));
  d.OptionalWith("multiprocessors", RangeField(&out->multiprocessors, 0, 1024));
  d.OptionalWith("copyEngines", RangeField(&out->copy_engines, 0, 64));
  d.OptionalWith("decoders", RangeField(&out->decoders, 0, 64));
  d.OptionalWith("encoders", RangeField(&out->encoders, 0, 64));
  d.OptionalWith("jpegEngines", RangeField(&out->jpeg_engines, 0, 64));
  d.OptionalWith("ofaEngines", RangeField(&out->ofa_engines, 0, 64));
  d.Optional("placements", &out->placements);
  return d.Finish();
}

void to_json(Json& out, const MigProfileInfo& in) {
  out = ObjectEncoder()
            .Set("name", in.name)
            .Set("profileID", in.profile_id)
            .Set("computeSlices", in.compute_slices)
            .Set("memorySlices", in.memory_slices)
            .Set("memory", in.memory)
            .Set("maxCount", in.max_count)
            .SetNonEmpty("multiprocessors", in.multiprocessors)
            .SetNonEmpty("copyEngines", in.copy_engines)
            .SetNonEmpty("decoders", in.decoders)
            .SetNonEmpty("encoders", in.encoders)
            .SetNonEmpty("jpegEngines", in.jpeg_engines)
            .SetNonEmpty("ofaEngines", in.ofa_engines)
            .SetNonEmpty("placements", in.placements)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ClaimReference* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("namespace", NonEmpty(&out->namespace_));
  d.RequiredWith("name", NonEmpty(&out->name));
  d.RequiredWith("uid", NonEmpty(&out->uid));
  return d.Finish();
}

void to_json(Json& out, const ClaimReference& in) {
  out = Json{{"namespace", in.namespace_}, {"name", in.name}, {"uid", in.uid}};
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, MigInstanceInfo* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("profile", NonEmpty(&out->profile));
  d.Required("placement", &out->placement);
  d.RequiredWith("gpuInstanceID", RangeField(&out->gpu_instance_id, 0, 255));
  d.OptionalWith("computeInstanceID", RangeField(&out->compute_instance_id, 0, 255));
  d.Optional("uuid", &out->uuid);
  d.Optional("ownerClaim", &out->owner_claim);
  d.Optional("createdByTessera", &out->created_by_tessera);
  return d.Finish();
}

void to_json(Json& out, const MigInstanceInfo& in) {
  out = ObjectEncoder()
            .Set("profile", in.profile)
            .Set("placement", in.placement)
            .Set("gpuInstanceID", in.gpu_instance_id)
            .SetNonEmpty("computeInstanceID", in.compute_instance_id)
            .SetNonEmpty("uuid", in.uuid)
            .SetOptional("ownerClaim", in.owner_claim)
            .SetNonEmpty("createdByTessera", in.created_by_tessera)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, ShareInfo* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("device", NonEmpty(&out->device));
  d.RequiredWith("strategy", EnumField(&out->strategy, kSharingStrategyNames));
  d.Required("claim", &out->claim);
  d.OptionalWith("activeThreadPercentage", RangeField(&out->active_thread_percentage, 1, 100));
  d.Optional("pinnedDeviceMemoryLimit", &out->pinned_device_memory_limit);
  return d.Finish();
}

void to_json(Json& out, const ShareInfo& in) {
  out = ObjectEncoder()
            .Set("device", in.device)
            .Set("strategy", ToString(in.strategy))
            .Set("claim", in.claim)
            .SetOptional("activeThreadPercentage", in.active_thread_percentage)
            .SetOptional("pinnedDeviceMemoryLimit", in.pinned_device_memory_limit)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuInfo* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("index", RangeField(&out->index, 0, kMaxGpuIndex));
  d.RequiredWith("uuid", NonEmpty(&out->uuid));
  d.RequiredWith("product", NonEmpty(&out->product));
  d.Optional("model", &out->model);
  d.Required("memory", &out->memory);
  d.Optional("computeCapability", &out->compute_capability);
  d.Optional("pciBusID", &out->pci_bus_id);
  d.OptionalWith("minorNumber", RangeField(&out->minor_number, -1, 255));
  d.Optional("migCapable", &out->mig_capable);
  d.Optional("migEnabled", &out->mig_enabled);
  d.Optional("migProfiles", &out->mig_profiles);
  d.Optional("migInstances", &out->mig_instances);
  d.Optional("shares", &out->shares);
  d.OptionalWith("timeSliceInterval",
                 EnumField(&out->time_slice_interval, kTimeSliceIntervalNames));
  d.OptionalWith("health", EnumField(&out->health, kHealthStates));
  d.Optional("healthMessage", &out->health_message);
  if (d.ok() && out->mig_enabled && !out->mig_capable) {
    d.Fail(ctx.Field("migEnabled").Error("true is not allowed when migCapable is false"));
  }
  return d.Finish();
}

void to_json(Json& out, const GpuInfo& in) {
  ObjectEncoder e;
  e.Set("index", in.index)
      .Set("uuid", in.uuid)
      .Set("product", in.product)
      .SetNonEmpty("model", in.model)
      .Set("memory", in.memory)
      .SetNonEmpty("computeCapability", in.compute_capability)
      .SetNonEmpty("pciBusID", in.pci_bus_id);
  if (in.minor_number >= 0) e.Set("minorNumber", in.minor_number);
  e.SetNonEmpty("migCapable", in.mig_capable)
      .SetNonEmpty("migEnabled", in.mig_enabled)
      .SetNonEmpty("migProfiles", in.mig_profiles)
      .SetNonEmpty("migInstances", in.mig_instances)
      .SetNonEmpty("shares", in.shares);
  if (in.time_slice_interval) e.Set("timeSliceInterval", ToString(*in.time_slice_interval));
  e.Set("health", ToString(in.health)).SetNonEmpty("healthMessage", in.health_message);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuInventorySpec* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("nodeName", NonEmpty(&out->node_name));
  d.Optional("driverVersion", &out->driver_version);
  d.Optional("cudaDriverVersion", &out->cuda_driver_version);
  d.Optional("gpus", &out->gpus);
  if (d.ok()) {
    std::set<int32_t> indices;
    for (size_t i = 0; i < out->gpus.size(); ++i) {
      if (!indices.insert(out->gpus[i].index).second) {
        d.Fail(ctx.Field("gpus").Index(i).Field("index").Error(
            StrCat(out->gpus[i].index, " is listed twice (indices must be unique)")));
        break;
      }
    }
  }
  return d.Finish();
}

void to_json(Json& out, const GpuInventorySpec& in) {
  out = ObjectEncoder()
            .Set("nodeName", in.node_name)
            .SetNonEmpty("driverVersion", in.driver_version)
            .SetNonEmpty("cudaDriverVersion", in.cuda_driver_version)
            .SetNonEmpty("gpus", in.gpus)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuInventoryStatus* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("heartbeatTime", &out->heartbeat_time);
  d.Optional("pluginVersion", &out->plugin_version);
  d.Optional("conditions", &out->conditions);
  return d.Finish();
}

void to_json(Json& out, const GpuInventoryStatus& in) {
  out = ObjectEncoder()
            .SetNonEmpty("heartbeatTime", in.heartbeat_time)
            .SetNonEmpty("pluginVersion", in.plugin_version)
            .SetNonEmpty("conditions", in.conditions)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuInventory* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kTesseraApiVersion, "GpuInventory");
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  d.Optional("status", &out->status);
  if (d.ok() && !out->metadata.name.empty() && out->metadata.name != out->spec.node_name) {
    d.Fail(ctx.Field("spec")
               .Field("nodeName")
               .Error(StrCat("\"", out->spec.node_name, "\" must equal metadata.name \"",
                             out->metadata.name, "\" (one inventory per node, named after it)")));
  }
  return d.Finish();
}

void to_json(Json& out, const GpuInventory& in) {
  ObjectEncoder e;
  e.Set("apiVersion", kTesseraApiVersion)
      .Set("kind", "GpuInventory")
      .Set("metadata", in.metadata)
      .Set("spec", in.spec);
  if (in.status != GpuInventoryStatus{}) e.Set("status", in.status);
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuMatch* out) {
  ObjectDecoder d(ctx, in);
  d.OptionalWith("models", Names(&out->models, "GPU model"));
  d.OptionalWith("indices", [&](const DecodeContext& c, const Json& v) {
    if (!v.is_array()) return c.Error(StrCat("expected a list, got ", Describe(v)));
    std::set<int32_t> seen;
    for (size_t i = 0; i < v.size(); ++i) {
      int32_t index = 0;
      if (absl::Status s = DecodeInRange(c.Index(i), v[i], 0, kMaxGpuIndex, &index); !s.ok()) {
        return s;
      }
      if (!seen.insert(index).second) {
        return c.Index(i).Error(StrCat(index, " is listed twice"));
      }
      out->indices.push_back(index);
    }
    return absl::OkStatus();
  });
  return d.Finish();
}

void to_json(Json& out, const GpuMatch& in) {
  out = ObjectEncoder().SetNonEmpty("models", in.models).SetNonEmpty("indices", in.indices).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, MigStaticLayout* out) {
  ObjectDecoder d(ctx, in);
  d.RequiredWith("profiles", [&](const DecodeContext& c, const Json& v) {
    if (absl::Status s = Names(&out->profiles, "MIG profile name")(c, v); !s.ok()) return s;
    if (out->profiles.empty() || out->profiles.size() > kMaxMigInstances) {
      return c.Error(StrCat(out->profiles.size(), " instances is not allowed (allowed: 1..",
                            kMaxMigInstances, ")"));
    }
    return absl::OkStatus();
  });
  return d.Finish();
}

void to_json(Json& out, const MigStaticLayout& in) { out = Json{{"profiles", in.profiles}}; }

absl::Status Decode(const DecodeContext& ctx, const Json& in, ShareLimits* out) {
  ObjectDecoder d(ctx, in);
  d.OptionalWith("maxShares", RangeField(&out->max_shares, 0, kMaxShares));
  d.OptionalWith("minMemory", PositiveBytesField(&out->min_memory));
  d.OptionalWith("minComputePercent", RangeField(&out->min_compute_percent, 1, 100));
  return d.Finish();
}

void to_json(Json& out, const ShareLimits& in) {
  out = ObjectEncoder()
            .SetNonEmpty("maxShares", in.max_shares)
            .SetOptional("minMemory", in.min_memory)
            .SetOptional("minComputePercent", in.min_compute_percent)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuPolicy* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("match", &out->match);
  d.RequiredWith("mode", EnumField(&out->mode, kModes));
  d.Optional("migStatic", &out->mig_static);
  d.OptionalWith("allowedProfiles", Names(&out->allowed_profiles, "MIG profile name"));
  d.OptionalWith("instanceSharing", EnumField(&out->instance_sharing, kSharingStrategyNames));
  d.Optional("shares", &out->shares);
  d.OptionalWith("timeSliceInterval",
                 EnumField(&out->time_slice_interval, kTimeSliceIntervalNames));
  if (!d.ok()) return d.Finish();

  // Fields that only make sense in some modes: name the field, the mode and where it belongs.
  const PartitionMode mode = out->mode;
  const bool mig = mode == PartitionMode::kMigDynamic || mode == PartitionMode::kMigStatic;
  auto only = [&](bool present, bool allowed, std::string_view field, std::string_view modes) {
    if (present && !allowed) {
      d.Fail(ctx.Field(field).Error(
          StrCat("not allowed with mode ", ToString(mode), " (only with ", modes, ")")));
    }
  };
  if (mode == PartitionMode::kMigStatic && !out->mig_static) {
    d.Fail(ctx.Field("migStatic").Error("required with mode mig-static"));
  }
  only(out->mig_static.has_value(), mode == PartitionMode::kMigStatic, "migStatic", "mig-static");
  only(!out->allowed_profiles.empty(), mode == PartitionMode::kMigDynamic, "allowedProfiles",
       "mig-dynamic");
  only(out->instance_sharing.has_value(), mig, "instanceSharing", "mig-dynamic, mig-static");
  only(out->shares.has_value(),
       mode == PartitionMode::kMps || mode == PartitionMode::kTimeSlice ||
           out->instance_sharing.has_value(),
       "shares", "mps, timeslice, or a mig mode with instanceSharing");
  only(out->time_slice_interval.has_value(), mode == PartitionMode::kTimeSlice, "timeSliceInterval",
       "timeslice");
  return d.Finish();
}

void to_json(Json& out, const GpuPolicy& in) {
  ObjectEncoder e;
  if (in.match != GpuMatch{}) e.Set("match", in.match);
  e.Set("mode", ToString(in.mode))
      .SetOptional("migStatic", in.mig_static)
      .SetNonEmpty("allowedProfiles", in.allowed_profiles);
  if (in.instance_sharing) e.Set("instanceSharing", ToString(*in.instance_sharing));
  e.SetOptional("shares", in.shares);
  if (in.time_slice_interval) e.Set("timeSliceInterval", ToString(*in.time_slice_interval));
  out = std::move(e).Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuPartitionPolicySpec* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("nodeSelector", &out->node_selector);
  d.RequiredWith("gpus", [&](const DecodeContext& c, const Json& v) {
    if (absl::Status s = Decode(c, v, &out->gpus); !s.ok()) return s;
    return out->gpus.empty() ? c.Error("must list at least one entry") : absl::OkStatus();
  });
  return d.Finish();
}

void to_json(Json& out, const GpuPartitionPolicySpec& in) {
  out = Json{{"nodeSelector", in.node_selector}, {"gpus", in.gpus}};
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuPartitionPolicyStatus* out) {
  ObjectDecoder d(ctx, in);
  d.Optional("observedGeneration", &out->observed_generation);
  d.Optional("conditions", &out->conditions);
  d.Optional("selectedNodes", &out->selected_nodes);
  d.Optional("conflictingPolicies", &out->conflicting_policies);
  return d.Finish();
}

void to_json(Json& out, const GpuPartitionPolicyStatus& in) {
  out = ObjectEncoder()
            .SetNonEmpty("observedGeneration", in.observed_generation)
            .SetNonEmpty("conditions", in.conditions)
            .SetNonEmpty("selectedNodes", in.selected_nodes)
            .SetNonEmpty("conflictingPolicies", in.conflicting_policies)
            .Build();
}

absl::Status Decode(const DecodeContext& ctx, const Json& in, GpuPartitionPolicy* out) {
  ObjectDecoder d(ctx, in);
  ExpectTypeMeta(d, in, kTesseraApiVersion, "GpuPartitionPolicy");
  d.Optional("metadata", &out->metadata);
  d.Required("spec", &out->spec);
  d.Optional("status", &out->status);
  return d.Finish();
}

void to_json(Json& out, const GpuPartitionPolicy& in) {
  ObjectEncoder e;
  e.Set("apiVersion", kTesseraApiVersion)
      .Set("kind", "GpuPartitionPolicy")
      .Set("metadata", in.metadata)
      .Set("spec", in.spec);
  if (in.status != GpuPartitionPolicyStatus{}) e.Set("status", in.status);
  out = std::move(e).Build();
}

absl::StatusOr<GpuInventory> ParseGpuInventory(const Json& in) {
  return ParseStrict<GpuInventory>(in);
}

absl::StatusOr<GpuPartitionPolicy> ParseGpuPartitionPolicy(const Json& in) {
  return ParseStrict<GpuPartitionPolicy>(in);
}

}  // namespace tessera::api
