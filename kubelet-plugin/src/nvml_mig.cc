#include "nvml_mig.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

// Bounds for enumerations that end on INVALID_ARGUMENT: far above any header's COUNT (0x12 GI
// profiles, 0x9 CI profiles) so that new enums are found, finite so that a confused driver
// cannot loop us forever.
constexpr unsigned int kMaxProfileEnums = 64;
constexpr unsigned int kMaxMigDevices = 64;

// A handle that was just listed and is gone now: another thread or tool destroyed the instance
// while Discover walked the GPU. Skipped, as if it had been destroyed a moment earlier.
bool Vanished(nvml::Return r) {
  return r == nvml::kErrorInvalidArgument || r == nvml::kErrorNotFound;
}
bool Vanished(const absl::Status& s) {
  const std::optional<NvmlError> e = NvmlErrorOf(s);
  return e == NvmlError::kInvalidArgument || e == NvmlError::kNotFound;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// nvidia-smi prints profile names as "MIG 1g.10gb"; tessera names them "1g.10gb" everywhere.
std::string ProfileNameFromBuffer(const char* buffer, std::size_t size) {
  std::string name = FromNvmlBuffer(buffer, size);
  if (StartsWith(name, "MIG ")) name.erase(0, 4);
  return name;
}

template <typename Info>
void CopyCounts(const Info& in, NvmlGiProfile* out) {
  out->id = in.id;
  out->compute_slices = in.sliceCount;
  out->max_count = in.instanceCount;
  out->multiprocessors = in.multiprocessorCount;
  out->copy_engines = in.copyEngineCount;
  out->decoders = in.decoderCount;
  out->encoders = in.encoderCount;
  out->jpeg_engines = in.jpegCount;
  out->ofa_engines = in.ofaCount;
  out->memory_mib = in.memorySizeMB;
}

// One profile enum, newest struct version first. Returns NVML's code for the last attempt.
nvml::Return QueryGiProfile(const NvmlFunctions& f, nvml::Device device, unsigned int profile_enum,
                            NvmlGiProfile* out) {
  out->profile_enum = profile_enum;
  if (f.device_get_gpu_instance_profile_info_v != nullptr) {
    nvml::GpuInstanceProfileInfoV3 v3;
    std::memset(&v3, 0, sizeof(v3));
    v3.version = nvml::kGpuInstanceProfileInfoV3Version;
    nvml::Return r = f.device_get_gpu_instance_profile_info_v(device, profile_enum, &v3);
    if (r == nvml::kSuccess) {
      CopyCounts(v3, out);
      out->nvml_name = ProfileNameFromBuffer(v3.name, sizeof(v3.name));
      return r;
    }
    if (r != nvml::kErrorInvalidArgument && r != nvml::kErrorArgumentVersionMismatch) return r;
    nvml::GpuInstanceProfileInfoV2 v2;
    std::memset(&v2, 0, sizeof(v2));
    v2.version = nvml::kGpuInstanceProfileInfoV2Version;
    r = f.device_get_gpu_instance_profile_info_v(device, profile_enum, &v2);
    if (r == nvml::kSuccess) {
      CopyCounts(v2, out);
      out->nvml_name = ProfileNameFromBuffer(v2.name, sizeof(v2.name));
      return r;
    }
    if (r != nvml::kErrorInvalidArgument && r != nvml::kErrorArgumentVersionMismatch) return r;
    if (f.device_get_gpu_instance_profile_info == nullptr) return r;
  }
  nvml::GpuInstanceProfileInfoV1 v1;
  std::memset(&v1, 0, sizeof(v1));
  const nvml::Return r = f.device_get_gpu_instance_profile_info(device, profile_enum, &v1);
  if (r == nvml::kSuccess) CopyCounts(v1, out);
  return r;
}

std::string_view ProfileSuffix(unsigned int profile_enum) {
  switch (profile_enum) {
    case nvml::kGpuInstanceProfile1SliceRev1:
    case nvml::kGpuInstanceProfile2SliceRev1:
      return "+me";
    case nvml::kGpuInstanceProfile1SliceNoMe:
    case nvml::kGpuInstanceProfile2SliceNoMe:
      return "-me";
    case nvml::kGpuInstanceProfile1SliceAllMe:
    case nvml::kGpuInstanceProfile2SliceAllMe:
      return "+me.all";
    case nvml::kGpuInstanceProfile3SliceGfx:
      return "+gfx";
    default:
      if (profile_enum >= nvml::kGpuInstanceProfile1SliceGfx &&
          profile_enum <= nvml::kGpuInstanceProfile4SliceGfx) {
        return "+gfx";
      }
      return "";
  }
}

// (GI ID, CI ID) → MIG UUID for every MIG device of `parent`.
absl::StatusOr<std::map<std::pair<unsigned int, unsigned int>, std::string>> MigDeviceUuids(
    const NvmlLibrary& lib, nvml::Device parent, int gpu) {
  const NvmlFunctions& f = lib.fn();
  const std::string where = StrCat("(GPU ", gpu, ")");
  if (f.device_get_max_mig_device_count == nullptr) {
    return lib.Missing("nvmlDeviceGetMaxMigDeviceCount",
                       StrCat("nvmlDeviceGetMaxMigDeviceCount", where));
  }
  if (f.device_get_mig_device_handle_by_index == nullptr) {
    return lib.Missing("nvmlDeviceGetMigDeviceHandleByIndex",
                       StrCat("nvmlDeviceGetMigDeviceHandleByIndex", where));
  }
  if (f.device_get_gpu_instance_id == nullptr || f.device_get_compute_instance_id == nullptr) {
    return lib.Missing("nvmlDeviceGetGpuInstanceId/nvmlDeviceGetComputeInstanceId",
                       StrCat("nvmlDeviceGetGpuInstanceId", where));
  }
  unsigned int max = 0;
  if (nvml::Return r = f.device_get_max_mig_device_count(parent, &max); r != nvml::kSuccess) {
    return lib.Error(r, StrCat("nvmlDeviceGetMaxMigDeviceCount", where));
  }
  std::map<std::pair<unsigned int, unsigned int>, std::string> out;
  for (unsigned int i = 0; i < std::min(max, kMaxMigDevices); ++i) {
    const std::string call = StrCat("(GPU ", gpu, ", MIG device ", i, ")");
    nvml::Device mig = nullptr;
    nvml::Return r = f.device_get_mig_device_handle_by_index(parent, i, &mig);
    if (r == nvml::kErrorNotFound) continue;  // an empty index
    if (r != nvml::kSuccess)
      return lib.Error(r, StrCat("nvmlDeviceGetMigDeviceHandleByIndex", call));
    unsigned int gi = 0, ci = 0;
    if (r = f.device_get_gpu_instance_id(mig, &gi); r != nvml::kSuccess) {
      if (Vanished(r)) continue;
      return lib.Error(r, StrCat("nvmlDeviceGetGpuInstanceId", call));
    }
    if (r = f.device_get_compute_instance_id(mig, &ci); r != nvml::kSuccess) {
      if (Vanished(r)) continue;
      return lib.Error(r, StrCat("nvmlDeviceGetComputeInstanceId", call));
    }
    char uuid[nvml::kDeviceUuidV2BufferSize] = {};
    if (r = f.device_get_uuid(mig, uuid, sizeof(uuid)); r != nvml::kSuccess) {
      if (Vanished(r)) continue;
      return lib.Error(r, StrCat("nvmlDeviceGetUUID", call));
    }
    out[{gi, ci}] = FromNvmlBuffer(uuid, sizeof(uuid));
  }
  return out;
}

}  // namespace

std::string FromNvmlBuffer(const char* buffer, std::size_t size) {
  return std::string(buffer, strnlen(buffer, size));
}

absl::StatusOr<std::vector<NvmlGiProfile>> ListGiProfiles(const NvmlLibrary& lib,
                                                          nvml::Device device, int gpu) {
  const NvmlFunctions& f = lib.fn();
  if (f.device_get_gpu_instance_profile_info == nullptr &&
      f.device_get_gpu_instance_profile_info_v == nullptr) {
    return lib.Missing("nvmlDeviceGetGpuInstanceProfileInfo",
                       StrCat("nvmlDeviceGetGpuInstanceProfileInfo(GPU ", gpu, ")"));
  }
  std::vector<NvmlGiProfile> out;
  for (unsigned int e = 0; e < kMaxProfileEnums; ++e) {
    NvmlGiProfile profile;
    const nvml::Return r = QueryGiProfile(f, device, e, &profile);
    if (r == nvml::kErrorInvalidArgument) break;  // the end of the enum space
    if (r == nvml::kErrorNotSupported) continue;  // not offered on this GPU
    if (r != nvml::kSuccess) {
      return lib.Error(
          r, StrCat("nvmlDeviceGetGpuInstanceProfileInfo(GPU ", gpu, ", profile enum ", e, ")"));
    }
    out.push_back(std::move(profile));
  }
  return out;
}

std::string GiProfileName(const NvmlGiProfile& profile, int memory_slices,
                          const partitioner::GpuModel* builtin) {
  if (!profile.nvml_name.empty()) return profile.nvml_name;
  if (builtin != nullptr) {
    for (const partitioner::GiProfile& p : builtin->profiles) {
      if (p.nvml_id == static_cast<int>(profile.id) &&
          p.compute_slices == static_cast<int>(profile.compute_slices) &&
          p.memory_slices == memory_slices) {
        return p.name;
      }
    }
  }
  const unsigned long long gib = (profile.memory_mib + 1023) / 1024;
  return StrCat(profile.compute_slices, "g.", gib, "gb", ProfileSuffix(profile.profile_enum));
}

absl::StatusOr<std::vector<api::MigProfileInfo>> DescribeMigProfiles(
    const NvmlLibrary& lib, nvml::Device device, int gpu, const partitioner::GpuModel* builtin) {
  absl::StatusOr<std::vector<NvmlGiProfile>> profiles = ListGiProfiles(lib, device, gpu);
  if (!profiles.ok()) return profiles.status();
  const auto placements_fn = lib.fn().device_get_gpu_instance_possible_placements;
  std::vector<api::MigProfileInfo> out;
  for (const NvmlGiProfile& p : *profiles) {
    api::MigProfileInfo info;
    info.profile_id = static_cast<int32_t>(p.id);
    info.compute_slices = static_cast<int32_t>(p.compute_slices);
    info.memory = api::Quantity::FromInt64(static_cast<int64_t>(p.memory_mib) * 1024 * 1024,
                                           api::Quantity::Format::kBinarySI);
    info.max_count = static_cast<int32_t>(p.max_count);
    info.multiprocessors = static_cast<int32_t>(p.multiprocessors);
    info.copy_engines = static_cast<int32_t>(p.copy_engines);
    info.decoders = static_cast<int32_t>(p.decoders);
    info.encoders = static_cast<int32_t>(p.encoders);
    info.jpeg_engines = static_cast<int32_t>(p.jpeg_engines);
    info.ofa_engines = static_cast<int32_t>(p.ofa_engines);
    if (placements_fn != nullptr) {
      const std::string call = StrCat("nvmlDeviceGetGpuInstancePossiblePlacements_v2(GPU ", gpu,
                                      ", profile ", p.id, ")");
      unsigned int count = 0;
      if (nvml::Return r = placements_fn(device, p.id, nullptr, &count); r != nvml::kSuccess) {
        return lib.Error(r, call);
      }
      std::vector<nvml::GpuInstancePlacement> placements(count);
      if (count > 0) {
        if (nvml::Return r = placements_fn(device, p.id, placements.data(), &count);
            r != nvml::kSuccess) {
          return lib.Error(r, call);
        }
        placements.resize(std::min<std::size_t>(count, placements.size()));
      }
      for (const nvml::GpuInstancePlacement& pl : placements) {
        info.placements.push_back({static_cast<int32_t>(pl.start), static_cast<int32_t>(pl.size)});
      }
    }
    info.memory_slices = info.placements.empty() ? 0 : info.placements.front().size;
    info.name = GiProfileName(p, info.memory_slices, builtin);
    out.push_back(std::move(info));
  }
  return out;
}

namespace {

// Walks the compute-instance profile enums 0, 1, ... of `gi` (shared engines) until NVML has no
// more (INVALID_ARGUMENT), skipping those not offered (NOT_SUPPORTED). `visit` returns true to
// stop.
absl::Status VisitComputeInstanceProfiles(
    const NvmlLibrary& lib, nvml::GpuInstance gi, std::string_view where,
    const std::function<absl::StatusOr<bool>(const nvml::ComputeInstanceProfileInfoV1&)>& visit) {
  const NvmlFunctions& f = lib.fn();
  if (f.gpu_instance_get_compute_instance_profile_info == nullptr) {
    return lib.Missing("nvmlGpuInstanceGetComputeInstanceProfileInfo",
                       StrCat("nvmlGpuInstanceGetComputeInstanceProfileInfo(", where, ")"));
  }
  for (unsigned int e = 0; e < kMaxProfileEnums; ++e) {
    nvml::ComputeInstanceProfileInfoV1 profile;
    std::memset(&profile, 0, sizeof(profile));
    const nvml::Return r = f.gpu_instance_get_compute_instance_profile_info(
        gi, e, nvml::kComputeInstanceEngineProfileShared, &profile);
    if (r == nvml::kErrorInvalidArgument) break;
    if (r == nvml::kErrorNotSupported) continue;
    if (r != nvml::kSuccess) {
      return lib.Error(r, StrCat("nvmlGpuInstanceGetComputeInstanceProfileInfo(", where,
                                 ", CI profile enum ", e, ")"));
    }
    absl::StatusOr<bool> stop = visit(profile);
    if (!stop.ok()) return stop.status();
    if (*stop) break;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ForEachComputeInstance(
    const NvmlLibrary& lib, nvml::GpuInstance gi, std::string_view where,
    const std::function<absl::Status(nvml::ComputeInstance,
                                     const nvml::ComputeInstanceProfileInfoV1&)>& fn) {
  const NvmlFunctions& f = lib.fn();
  if (f.gpu_instance_get_compute_instance_profile_info != nullptr &&
      f.gpu_instance_get_compute_instances == nullptr) {
    return lib.Missing("nvmlGpuInstanceGetComputeInstances",
                       StrCat("nvmlGpuInstanceGetComputeInstances(", where, ")"));
  }
  std::set<unsigned int> seen;  // two enums could name one profile ID
  return VisitComputeInstanceProfiles(
      lib, gi, where,
      [&](const nvml::ComputeInstanceProfileInfoV1& profile) -> absl::StatusOr<bool> {
        if (!seen.insert(profile.id).second) return false;
        std::vector<nvml::ComputeInstance> cis(std::max(profile.instanceCount, 1u));
        unsigned int count = 0;
        const nvml::Return r =
            f.gpu_instance_get_compute_instances(gi, profile.id, cis.data(), &count);
        if (r == nvml::kErrorNotFound) return false;
        if (r != nvml::kSuccess) {
          return lib.Error(r, StrCat("nvmlGpuInstanceGetComputeInstances(", where, ", CI profile ",
                                     profile.id, ")"));
        }
        for (unsigned int i = 0; i < std::min<std::size_t>(count, cis.size()); ++i) {
          if (absl::Status s = fn(cis[i], profile); !s.ok()) return s;
        }
        return false;
      });
}

absl::StatusOr<nvml::ComputeInstanceProfileInfoV1> FullComputeInstanceProfile(
    const NvmlLibrary& lib, nvml::GpuInstance gi, unsigned int compute_slices,
    std::string_view where) {
  std::optional<nvml::ComputeInstanceProfileInfoV1> full;
  absl::Status s = VisitComputeInstanceProfiles(
      lib, gi, where,
      [&](const nvml::ComputeInstanceProfileInfoV1& profile) -> absl::StatusOr<bool> {
        if (profile.sliceCount == compute_slices) full = profile;
        return full.has_value();
      });
  if (!s.ok()) return s;
  if (full) return *full;
  return NvmlStatus(NvmlError::kNotSupported,
                    StrCat("nvmlGpuInstanceGetComputeInstanceProfileInfo(", where, ")"),
                    StrCat("no compute-instance profile of ", compute_slices, " slices"));
}

absl::StatusOr<std::vector<api::MigInstanceInfo>> DescribeMigInstances(
    const NvmlLibrary& lib, nvml::Device device, int gpu,
    const std::vector<api::MigProfileInfo>& profiles) {
  const NvmlFunctions& f = lib.fn();
  const std::string gpu_where = StrCat("(GPU ", gpu, ")");
  if (f.device_get_gpu_instances == nullptr) {
    return lib.Missing("nvmlDeviceGetGpuInstances", StrCat("nvmlDeviceGetGpuInstances", gpu_where));
  }
  if (f.gpu_instance_get_info == nullptr) {
    return lib.Missing("nvmlGpuInstanceGetInfo", StrCat("nvmlGpuInstanceGetInfo", gpu_where));
  }
  if (f.compute_instance_get_info == nullptr) {
    return lib.Missing("nvmlComputeInstanceGetInfo_v2",
                       StrCat("nvmlComputeInstanceGetInfo_v2", gpu_where));
  }
  auto uuids = MigDeviceUuids(lib, device, gpu);
  if (!uuids.ok()) return uuids.status();
  std::vector<api::MigInstanceInfo> out;
  for (const api::MigProfileInfo& profile : profiles) {
    std::vector<nvml::GpuInstance> gis(std::max(profile.max_count, 1));
    unsigned int count = 0;
    const auto id = static_cast<unsigned int>(profile.profile_id);
    if (nvml::Return r = f.device_get_gpu_instances(device, id, gis.data(), &count);
        r != nvml::kSuccess) {
      return lib.Error(r, StrCat("nvmlDeviceGetGpuInstances(GPU ", gpu, ", profile ", id, ")"));
    }
    for (unsigned int i = 0; i < std::min<std::size_t>(count, gis.size()); ++i) {
      nvml::GpuInstanceInfo gi;
      std::memset(&gi, 0, sizeof(gi));
      if (nvml::Return r = f.gpu_instance_get_info(gis[i], &gi); r != nvml::kSuccess) {
        if (Vanished(r)) continue;
        return lib.Error(r, StrCat("nvmlGpuInstanceGetInfo(GPU ", gpu, ", profile ", id, ")"));
      }
      const std::string where = StrCat("GPU ", gpu, ", GI ", gi.id);
      // The full-size compute instance if there is one, else the first.
      std::optional<nvml::ComputeInstanceInfo> chosen;
      absl::Status s = ForEachComputeInstance(
          lib, gis[i], where,
          [&](nvml::ComputeInstance ci, const nvml::ComputeInstanceProfileInfoV1& p) {
            if (chosen && p.sliceCount != static_cast<unsigned int>(profile.compute_slices)) {
              return absl::OkStatus();
            }
            nvml::ComputeInstanceInfo info;
            std::memset(&info, 0, sizeof(info));
            if (nvml::Return r = f.compute_instance_get_info(ci, &info); r != nvml::kSuccess) {
              if (Vanished(r)) return absl::OkStatus();
              return lib.Error(r, StrCat("nvmlComputeInstanceGetInfo_v2(", where, ")"));
            }
            chosen = info;
            return absl::OkStatus();
          });
      if (!s.ok() && Vanished(s)) continue;
      if (!s.ok()) return s;
      api::MigInstanceInfo instance;
      instance.profile = profile.name;
      instance.placement = {static_cast<int32_t>(gi.placement.start),
                            static_cast<int32_t>(gi.placement.size)};
      instance.gpu_instance_id = static_cast<int32_t>(gi.id);
      if (chosen) {
        instance.compute_instance_id = static_cast<int32_t>(chosen->id);
        auto it = uuids->find({gi.id, chosen->id});
        if (it != uuids->end()) instance.uuid = it->second;
      }
      out.push_back(std::move(instance));
    }
  }
  std::sort(out.begin(), out.end(),
            [](const api::MigInstanceInfo& a, const api::MigInstanceInfo& b) {
              return std::pair(a.placement.start, a.gpu_instance_id) <
                     std::pair(b.placement.start, b.gpu_instance_id);
            });
  return out;
}

absl::StatusOr<std::string> MigDeviceUuid(const NvmlLibrary& lib, nvml::Device parent, int gpu,
                                          const nvml::ComputeInstanceInfo& ci, unsigned int gi_id) {
  const NvmlFunctions& f = lib.fn();
  // The NVIDIA DRA driver reads the UUID from the CI info's handle; nvml.h documents that handle
  // as the parent GPU. Use it only when it demonstrably is this MIG device.
  char uuid[nvml::kDeviceUuidV2BufferSize] = {};
  if (ci.device != nullptr && f.device_get_uuid(ci.device, uuid, sizeof(uuid)) == nvml::kSuccess &&
      StartsWith(FromNvmlBuffer(uuid, sizeof(uuid)), "MIG-")) {
    unsigned int handle_gi = 0, handle_ci = 0;
    const bool ids_known =
        f.device_get_gpu_instance_id != nullptr && f.device_get_compute_instance_id != nullptr &&
        f.device_get_gpu_instance_id(ci.device, &handle_gi) == nvml::kSuccess &&
        f.device_get_compute_instance_id(ci.device, &handle_ci) == nvml::kSuccess;
    if (!ids_known || (handle_gi == gi_id && handle_ci == ci.id)) {
      return FromNvmlBuffer(uuid, sizeof(uuid));
    }
  }
  auto uuids = MigDeviceUuids(lib, parent, gpu);
  if (!uuids.ok()) return uuids.status();
  auto it = uuids->find({gi_id, ci.id});
  if (it == uuids->end()) {
    return NvmlStatus(NvmlError::kNotFound,
                      StrCat("nvmlDeviceGetMigDeviceHandleByIndex(GPU ", gpu, ")"),
                      StrCat("no MIG device for GI ", gi_id, ", CI ", ci.id));
  }
  return it->second;
}

}  // namespace tessera::plugin
