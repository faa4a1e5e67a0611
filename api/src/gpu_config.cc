#include "tessera/api/gpu_config.h"

#include "tessera/api/meta.h"

namespace tessera::api {
namespace {

void DecodeLimits(ObjectDecoder& d, MpsLimits* out) {
  d.OptionalWith("activeThreadPercentage", RangeField(&out->active_thread_percentage, 1, 100));
  d.OptionalWith("pinnedDeviceMemoryLimit", PositiveBytesField(&out->pinned_device_memory_limit));
}

absl::Status DecodeMps(const DecodeContext& ctx, const Json& in, MpsSettings* out) {
  ObjectDecoder d(ctx, in);
  DecodeLimits(d, out);
  d.OptionalWith("perDevice", [&](const DecodeContext& c, const Json& v) {
    if (!v.is_object()) return c.Error(StrCat("expected an object, got ", Describe(v)));
    for (const auto& [device, limits_json] : v.items()) {
      if (device.empty()) return c.Error("device key must not be empty");
      ObjectDecoder e(c.Field(device), limits_json);
      MpsLimits limits;
      DecodeLimits(e, &limits);
      if (absl::Status s = e.Finish(); !s.ok()) return s;
      out->per_device.emplace(device, limits);
    }
    return absl::OkStatus();
  });
  return d.Finish();
}

absl::Status DecodeSharing(const DecodeContext& ctx, const Json& in, Sharing* out) {
  ObjectDecoder d(ctx, in);
  bool has_strategy = false;
  d.OptionalWith("strategy", [&](const DecodeContext& c, const Json& v) {
    has_strategy = true;
    return EnumField(&out->strategy, kSharingStrategyNames)(c, v);
  });
  if (d.ok() && !has_strategy) {
    d.Fail(ctx.Field("strategy").Error("required field is missing (allowed: TimeSlicing, MPS)"));
  }
  d.OptionalWith("timeSlicing", [&](const DecodeContext& c, const Json& v) {
    if (out->strategy != SharingStrategy::kTimeSlicing) {
      return c.Error(StrCat("only allowed with strategy TimeSlicing (strategy is ",
                            ToString(out->strategy), ")"));
    }
    ObjectDecoder t(c, v);
    TimeSlicingSettings settings;
    t.OptionalWith("interval", EnumField(&settings.interval, kTimeSliceIntervalNames));
    out->time_slicing = settings;
    return t.Finish();
  });
  d.OptionalWith("mps", [&](const DecodeContext& c, const Json& v) {
    if (out->strategy != SharingStrategy::kMps) {
      return c.Error(
          StrCat("only allowed with strategy MPS (strategy is ", ToString(out->strategy), ")"));
    }
    MpsSettings mps;
    if (absl::Status s = DecodeMps(c, v, &mps); !s.ok()) return s;
    out->mps = std::move(mps);
    return absl::OkStatus();
  });
  return d.Finish();
}

Json LimitsJson(const MpsLimits& in) {
  Json out = Json::object();
  if (in.active_thread_percentage) out["activeThreadPercentage"] = *in.active_thread_percentage;
  if (in.pinned_device_memory_limit)
    out["pinnedDeviceMemoryLimit"] = *in.pinned_device_memory_limit;
  return out;
}

}  // namespace

std::string_view ToString(ConfigKind kind) { return kConfigKindNames[static_cast<size_t>(kind)]; }

std::string_view ToString(SharingStrategy strategy) {
  return kSharingStrategyNames[static_cast<size_t>(strategy)];
}

std::string_view ToString(TimeSliceInterval interval) {
  return kTimeSliceIntervalNames[static_cast<size_t>(interval)];
}

MpsLimits MpsSettings::For(std::string_view device_name, std::string_view gpu_uuid) const {
  MpsLimits limits = *this;
  for (std::string_view key : {gpu_uuid, device_name}) {  // The device name wins over the UUID.
    auto it = per_device.find(std::string(key));
    if (it == per_device.end()) continue;
    if (it->second.active_thread_percentage) {
      limits.active_thread_percentage = it->second.active_thread_percentage;
    }
    if (it->second.pinned_device_memory_limit) {
      limits.pinned_device_memory_limit = it->second.pinned_device_memory_limit;
    }
  }
  return limits;
}

absl::Status Decode(const DecodeContext& parent, const Json& in, GpuConfig* out) {
  DecodeContext ctx = parent.WithUnknownFields(UnknownFields::kReject);
  ObjectDecoder d(ctx, in);
  d.RequiredWith("apiVersion", [](const DecodeContext& c, const Json& v) {
    absl::StatusOr<size_t> index = DecodeChoice(c, v, {kTesseraApiVersion});
    return index.status();
  });
  d.RequiredWith("kind", EnumField(&out->kind, kConfigKindNames));
  d.OptionalWith("sharing", [&](const DecodeContext& c, const Json& v) {
    Sharing sharing;
    if (absl::Status s = DecodeSharing(c, v, &sharing); !s.ok()) return s;
    // The time-slice interval is a property of the physical GPU; a MIG instance cannot have its
    // own.
    if (out->kind == ConfigKind::kMigConfig && sharing.time_slicing &&
        sharing.time_slicing->interval.value_or(TimeSliceInterval::kDefault) !=
            TimeSliceInterval::kDefault) {
      return c.Field("timeSlicing")
          .Field("interval")
          .Error(StrCat("\"", ToString(*sharing.time_slicing->interval),
                        "\" is not allowed for a MigConfig (allowed: Default; the interval applies "
                        "to a whole GPU)"));
    }
    out->sharing = std::move(sharing);
    return absl::OkStatus();
  });
  return d.Finish();
}

void to_json(Json& out, const GpuConfig& in) {
  out = Json{{"apiVersion", kTesseraApiVersion}, {"kind", ToString(in.kind)}};
  if (!in.sharing) return;
  Json sharing = {{"strategy", ToString(in.sharing->strategy)}};
  if (in.sharing->time_slicing) {
    sharing["timeSlicing"] = Json::object();
    if (in.sharing->time_slicing->interval) {
      sharing["timeSlicing"]["interval"] = ToString(*in.sharing->time_slicing->interval);
    }
  }
  if (in.sharing->mps) {
    Json mps = LimitsJson(*in.sharing->mps);
    for (const auto& [device, limits] : in.sharing->mps->per_device) {
      mps["perDevice"][device] = LimitsJson(limits);
    }
    sharing["mps"] = mps;
  }
  out["sharing"] = sharing;
}

absl::StatusOr<GpuConfig> ParseGpuConfig(const Json& parameters, std::string_view where) {
  GpuConfig config;
  DecodeContext ctx(UnknownFields::kReject, std::string(where));
  if (absl::Status s = Decode(ctx, parameters, &config); !s.ok()) return s;
  ApplyDefaults(&config);
  return config;
}

void ApplyDefaults(GpuConfig* config) {
  if (!config->sharing) return;
  Sharing& sharing = *config->sharing;
  switch (sharing.strategy) {
    case SharingStrategy::kTimeSlicing:
      if (!sharing.time_slicing) sharing.time_slicing.emplace();
      if (!sharing.time_slicing->interval)
        sharing.time_slicing->interval = TimeSliceInterval::kDefault;
      break;
    case SharingStrategy::kMps:
      if (!sharing.mps) sharing.mps.emplace();
      if (!sharing.mps->active_thread_percentage) sharing.mps->active_thread_percentage = 100;
      break;
  }
}

}  // namespace tessera::api
