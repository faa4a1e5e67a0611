#ifndef TESSERA_PLUGIN_GPU_BACKEND_H_
#define TESSERA_PLUGIN_GPU_BACKEND_H_

// The plugin's view of the node's GPUs: discovery and MIG instance creation and destruction.
// Two implementations: `nvml` (libnvidia-ml.so.1 loaded with dlopen) and `fake` (simulated GPUs
// with NVML's failure semantics, for tests and the local demo cluster).
//
// Errors carry the NVML return code (NvmlErrorOf) so that callers can tell an occupied placement
// (INSUFFICIENT_RESOURCES: resync and replan, never retry blindly) from an instance in use (IN_USE:
// retry later, never force). Calls for different GPUs may run concurrently; the caller serialises
// calls for one GPU.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/api/crd.h"

namespace tessera::plugin {

// NVML return codes tessera distinguishes (gpu-partitioning reference, "NVML return codes").
enum class NvmlError : int {
  kUninitialized = 1,
  kInvalidArgument = 2,
  kNotSupported = 3,
  kNoPermission = 4,
  kNotFound = 6,
  kInsufficientSize = 7,
  kDriverNotLoaded = 9,
  kTimeout = 10,
  kFunctionNotFound = 13,
  kGpuIsLost = 15,
  kInUse = 19,
  kInsufficientResources = 23,
  kUnknown = 999,
};
std::string_view NvmlErrorName(NvmlError code);

// "nvmlGpuInstanceDestroy(gpu 3, GI 2): NVML_ERROR_IN_USE (19): <detail>", with the code as a
// payload and a matching canonical code (IN_USE FailedPrecondition, INSUFFICIENT_RESOURCES
// ResourceExhausted, NOT_FOUND NotFound, NO_PERMISSION PermissionDenied, GPU_IS_LOST Unavailable,
// NOT_SUPPORTED Unimplemented, INVALID_ARGUMENT InvalidArgument, others Internal).
absl::Status NvmlStatus(NvmlError code, std::string_view call, std::string_view detail = {});
std::optional<NvmlError> NvmlErrorOf(const absl::Status& status);

struct NodeInventory {
  std::string driver_version;       // "550.54.15"
  std::string cuda_driver_version;  // "12.4"
  std::vector<api::GpuInfo> gpus;   // with mig_profiles and the mig_instances that exist now
};

class GpuBackend {
 public:
  virtual ~GpuBackend() = default;
  virtual std::string_view name() const = 0;

  virtual absl::StatusOr<NodeInventory> Discover() = 0;

  // A GPU instance of NVML profile `profile_id` at exactly `placement` on GPU `gpu` (index), with
  // one compute instance covering it. Returns the instance (GI and CI IDs, MIG UUID).
  virtual absl::StatusOr<api::MigInstanceInfo> CreateMigInstance(int gpu, int profile_id,
                                                                 api::Placement placement) = 0;
  // Destroys the compute instances of GPU instance `gi_id`, then the GPU instance.
  virtual absl::Status DestroyMigInstance(int gpu, int gi_id) = 0;

  // The GPU's time-slice interval between CUDA contexts (`nvidia-smi compute-policy
  // --set-timeslice`; NVML has no call for it). Per physical GPU, also in MIG mode.
  virtual absl::Status SetTimeSlice(int gpu, api::TimeSliceInterval interval) = 0;

  // Bytes of device memory in use now on GPU `gpu` when `uuid` is its UUID, or on its MIG
  // instance `uuid` (a MIG UUID): every process on it together. NotFound for a UUID that is not
  // there. Cheap enough to call at every metrics scrape.
  virtual absl::StatusOr<std::int64_t> MemoryUsed(int gpu, std::string_view uuid) = 0;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_GPU_BACKEND_H_
