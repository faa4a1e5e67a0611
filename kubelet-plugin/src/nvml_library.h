#ifndef TESSERA_PLUGIN_NVML_LIBRARY_H_
#define TESSERA_PLUGIN_NVML_LIBRARY_H_

// libnvidia-ml.so.1, loaded with dlopen from a driver root, and the functions the nvml backend
// calls. Required symbols (present in every driver tessera supports) make Load fail naming the
// symbol; optional ones are null when the driver lacks them, and the caller degrades. Versioned
// symbols are resolved newest first, as NVML's own header would map the unversioned name.
//
// Owns the dlopen handle only: NVML's init/shutdown is the backend's business. The library stays
// loaded until this object is destroyed, so no function pointer may outlive it.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "nvml_abi.h"
#include "tessera/plugin/gpu_backend.h"

namespace tessera::plugin {

// A driver root as a path prefix: without trailing slashes, so "" for the host's "/".
std::string DriverRootPrefix(std::string_view driver_root);

struct NvmlFunctions {
  // Required.
  nvml::InitFn init = nullptr;  // nvmlInit_v2, else nvmlInit
  nvml::ShutdownFn shutdown = nullptr;
  nvml::ErrorStringFn error_string = nullptr;
  nvml::SystemGetDriverVersionFn system_get_driver_version = nullptr;
  nvml::DeviceGetCountFn device_get_count = nullptr;                    // nvmlDeviceGetCount_v2
  nvml::DeviceGetHandleByIndexFn device_get_handle_by_index = nullptr;  // _v2
  nvml::DeviceGetStringFn device_get_name = nullptr;
  nvml::DeviceGetStringFn device_get_uuid = nullptr;
  nvml::DeviceGetMemoryInfoFn device_get_memory_info = nullptr;
  nvml::DeviceGetPciInfoFn device_get_pci_info = nullptr;  // _v3
  nvml::DeviceGetUintFn device_get_minor_number = nullptr;
  nvml::DeviceGetCudaComputeCapabilityFn device_get_cuda_compute_capability = nullptr;

  // Optional.
  nvml::SystemGetCudaDriverVersionFn system_get_cuda_driver_version = nullptr;  // _v2, else v1
  nvml::DeviceGetUintFn device_get_index = nullptr;
  // MIG (R450+). Without device_get_mig_mode no GPU is MIG-capable.
  nvml::DeviceGetMigModeFn device_get_mig_mode = nullptr;
  nvml::DeviceGetGpuInstanceProfileInfoFn device_get_gpu_instance_profile_info = nullptr;
  nvml::DeviceGetGpuInstanceProfileInfoVFn device_get_gpu_instance_profile_info_v = nullptr;
  nvml::DeviceGetGpuInstancePossiblePlacementsFn device_get_gpu_instance_possible_placements =
      nullptr;  // _v2 only: v1 needs MIG on and cannot size with NULL
  nvml::DeviceCreateGpuInstanceWithPlacementFn device_create_gpu_instance_with_placement = nullptr;
  nvml::DeviceGetGpuInstancesFn device_get_gpu_instances = nullptr;
  nvml::DeviceGetGpuInstanceByIdFn device_get_gpu_instance_by_id = nullptr;
  nvml::GpuInstanceGetInfoFn gpu_instance_get_info = nullptr;
  nvml::GpuInstanceDestroyFn gpu_instance_destroy = nullptr;
  nvml::GpuInstanceGetComputeInstanceProfileInfoFn gpu_instance_get_compute_instance_profile_info =
      nullptr;
  nvml::GpuInstanceCreateComputeInstanceFn gpu_instance_create_compute_instance = nullptr;
  nvml::GpuInstanceGetComputeInstancesFn gpu_instance_get_compute_instances = nullptr;
  nvml::ComputeInstanceGetInfoFn compute_instance_get_info = nullptr;  // _v2 only
  nvml::ComputeInstanceDestroyFn compute_instance_destroy = nullptr;
  nvml::DeviceGetUintFn device_get_max_mig_device_count = nullptr;
  nvml::DeviceGetMigDeviceHandleByIndexFn device_get_mig_device_handle_by_index = nullptr;
  nvml::DeviceGetUintFn device_get_gpu_instance_id = nullptr;
  nvml::DeviceGetUintFn device_get_compute_instance_id = nullptr;
  // Events.
  nvml::EventSetCreateFn event_set_create = nullptr;
  nvml::EventSetFreeFn event_set_free = nullptr;
  nvml::DeviceGetSupportedEventTypesFn device_get_supported_event_types = nullptr;
  nvml::DeviceRegisterEventsFn device_register_events = nullptr;
  nvml::EventSetWaitFn event_set_wait = nullptr;  // _v2 only: v1 has no GI/CI IDs
};

class NvmlLibrary {
 public:
  // Loads `library_path` when it is not empty, else the first libnvidia-ml.so.1 found in the
  // library directories of `driver_root` (and, for the root "/", by soname through the dynamic
  // loader's own search). FailedPrecondition naming the root, every path tried and dlerror() when
  // there is none, or naming the symbols when required ones are missing.
  static absl::StatusOr<std::unique_ptr<NvmlLibrary>> Load(const std::string& driver_root,
                                                           const std::string& library_path);
  ~NvmlLibrary();
  NvmlLibrary(const NvmlLibrary&) = delete;
  NvmlLibrary& operator=(const NvmlLibrary&) = delete;

  const NvmlFunctions& fn() const { return fn_; }
  // The file that was loaded, or the soname when the loader found it.
  const std::string& path() const { return path_; }
  // NVML's text for a return code ("" if the library has none).
  std::string ErrorString(nvml::Return code) const;
  // The NvmlStatus of a failed `call`: NVML's code where tessera names it (else UNKNOWN, with the
  // number in the message) and NVML's text for it.
  absl::Status Error(nvml::Return code, std::string_view call) const;
  // NOT_SUPPORTED: this driver's library does not export `symbol`, which `call` needs.
  absl::Status Missing(std::string_view symbol, std::string_view call) const;

  // The directories searched under a driver root, in order.
  static std::vector<std::string> SearchDirectories(std::string_view driver_root);

 private:
  NvmlLibrary(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  absl::Status Resolve();

  void* handle_;
  std::string path_;
  NvmlFunctions fn_;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_NVML_LIBRARY_H_
