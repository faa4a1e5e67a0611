#ifndef TESSERA_PLUGIN_NVML_MIG_H_
#define TESSERA_PLUGIN_NVML_MIG_H_

// Reading one GPU's MIG geometry through NVML: its GPU-instance profiles (enumerated, never
// hard-coded: IDs and sizes differ between products and drivers), the GPU and compute instances
// that exist, and MIG device UUIDs. Nothing here creates or destroys anything.
//
// Errors are NvmlStatus values naming the NVML call and the GPU ("nvmlDeviceGetGpuInstances(GPU 0,
// profile 9)"); a symbol the driver lacks is NOT_SUPPORTED naming it.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nvml_abi.h"
#include "nvml_library.h"
#include "tessera/api/crd.h"
#include "tessera/partitioner/catalogue.h"

namespace tessera::plugin {

// One GPU-instance profile as NVML reports it.
struct NvmlGiProfile {
  unsigned int profile_enum = 0;  // NVML_GPU_INSTANCE_PROFILE_*
  unsigned int id = 0;            // what every other call takes
  unsigned int compute_slices = 0;
  unsigned int max_count = 0;
  unsigned int multiprocessors = 0;
  unsigned int copy_engines = 0;
  unsigned int decoders = 0;
  unsigned int encoders = 0;
  unsigned int jpeg_engines = 0;
  unsigned int ofa_engines = 0;
  unsigned long long memory_mib = 0;
  std::string nvml_name{};  // "1g.10gb" (a "MIG " prefix removed); empty from the v1 call
};

// Profile enums 0, 1, 2, ... until INVALID_ARGUMENT, skipping NOT_SUPPORTED (not offered here).
// Each is read with the versioned call at v3, then v2 (when the library rejects the version),
// then with the v1 call, which has no name.
absl::StatusOr<std::vector<NvmlGiProfile>> ListGiProfiles(const NvmlLibrary& lib,
                                                          nvml::Device device, int gpu);

// NVML's name if it gave one; else the built-in model's name for the same profile ID and size;
// else "<compute slices>g.<GiB rounded up>gb" with the enum's suffix ("+me", ...).
std::string GiProfileName(const NvmlGiProfile& profile, int memory_slices,
                          const partitioner::GpuModel* builtin);

// The GPU's profiles with their placements (PossiblePlacements_v2; none when the driver lacks it).
absl::StatusOr<std::vector<api::MigProfileInfo>> DescribeMigProfiles(
    const NvmlLibrary& lib, nvml::Device device, int gpu, const partitioner::GpuModel* builtin);

// The GPU instances that exist now, each with its compute instance (the full-size one if there
// are several) and MIG UUID. A GI without a compute instance (a half-finished create or destroy)
// has an empty UUID. Sorted by placement.
absl::StatusOr<std::vector<api::MigInstanceInfo>> DescribeMigInstances(
    const NvmlLibrary& lib, nvml::Device device, int gpu,
    const std::vector<api::MigProfileInfo>& profiles);

// Calls `fn` for every compute instance of `gi`, with its profile. `where` names the GI in errors
// ("GPU 0, GI 3"). Stops at the first error `fn` returns.
absl::Status ForEachComputeInstance(
    const NvmlLibrary& lib, nvml::GpuInstance gi, std::string_view where,
    const std::function<absl::Status(nvml::ComputeInstance,
                                     const nvml::ComputeInstanceProfileInfoV1&)>& fn);

// The compute-instance profile that covers a GI of `compute_slices` slices (shared engines): the
// first CI profile enum whose slice count equals the GI's.
absl::StatusOr<nvml::ComputeInstanceProfileInfoV1> FullComputeInstanceProfile(
    const NvmlLibrary& lib, nvml::GpuInstance gi, unsigned int compute_slices,
    std::string_view where);

// The UUID of the MIG device of compute instance `ci` (GI `gi_id`) on `parent`: the handle in the
// CI's info when it is that MIG device, else found among the GPU's MIG device handles.
absl::StatusOr<std::string> MigDeviceUuid(const NvmlLibrary& lib, nvml::Device parent, int gpu,
                                          const nvml::ComputeInstanceInfo& ci, unsigned int gi_id);

// A NUL-terminated string from an NVML buffer of `size` bytes (never reads past it).
std::string FromNvmlBuffer(const char* buffer, std::size_t size);

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_NVML_MIG_H_
