#include "nvml_library.h"

#include <dlfcn.h>

#include <initializer_list>

#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

constexpr char kSoname[] = "libnvidia-ml.so.1";

// Where driver packages and the GPU operator's driver container put the library, per distribution
// and architecture.
constexpr const char* kLibraryDirectories[] = {
    "usr/lib/x86_64-linux-gnu", "usr/lib64", "usr/lib",
    "lib/x86_64-linux-gnu",     "lib64",     "usr/lib/aarch64-linux-gnu",
};

std::string DlError() {
  const char* e = dlerror();
  return e == nullptr ? "unknown dlopen error" : e;
}

// Resolves the first of `names` that the library exports. POSIX guarantees that a dlsym result
// converts to a function pointer.
template <typename Fn>
bool Resolve(void* handle, Fn* out, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (void* symbol = dlsym(handle, name); symbol != nullptr) {
      *out = reinterpret_cast<Fn>(symbol);
      return true;
    }
  }
  return false;
}

}  // namespace

std::string DriverRootPrefix(std::string_view driver_root) {
  while (!driver_root.empty() && driver_root.back() == '/') driver_root.remove_suffix(1);
  return std::string(driver_root);
}

std::vector<std::string> NvmlLibrary::SearchDirectories(std::string_view driver_root) {
  const std::string root = DriverRootPrefix(driver_root);
  std::vector<std::string> out;
  for (const char* dir : kLibraryDirectories) out.push_back(StrCat(root, "/", dir));
  return out;
}

absl::StatusOr<std::unique_ptr<NvmlLibrary>> NvmlLibrary::Load(const std::string& driver_root,
                                                               const std::string& library_path) {
  std::vector<std::string> candidates;
  if (!library_path.empty()) {
    candidates.push_back(library_path);
  } else {
    for (const std::string& dir : SearchDirectories(driver_root)) {
      candidates.push_back(StrCat(dir, "/", kSoname));
    }
    // The host's own loader configuration (ld.so.cache, LD_LIBRARY_PATH) only describes "/".
    if (DriverRootPrefix(driver_root).empty()) candidates.push_back(kSoname);
  }
  std::vector<std::string> failures;
  for (const std::string& candidate : candidates) {
    void* handle = dlopen(candidate.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      failures.push_back(DlError());
      continue;
    }
    std::unique_ptr<NvmlLibrary> library(new NvmlLibrary(handle, candidate));
    if (absl::Status s = library->Resolve(); !s.ok()) return s;
    return library;
  }
  return absl::FailedPreconditionError(
      StrCat("cannot load ", kSoname, " (driver root \"", driver_root, "\"",
             library_path.empty() ? "" : StrCat(", library path \"", library_path, "\""),
             "): tried ", StrJoin(candidates, ", "), "; dlerror: ", StrJoin(failures, "; ")));
}

NvmlLibrary::~NvmlLibrary() { dlclose(handle_); }

std::string NvmlLibrary::ErrorString(nvml::Return code) const {
  const char* text = fn_.error_string == nullptr ? nullptr : fn_.error_string(code);
  return text == nullptr ? "" : text;
}

absl::Status NvmlLibrary::Error(nvml::Return code, std::string_view call) const {
  NvmlError error = NvmlError::kUnknown;
  switch (code) {
    case nvml::kErrorUninitialized:
    case nvml::kErrorInvalidArgument:
    case nvml::kErrorNotSupported:
    case nvml::kErrorNoPermission:
    case nvml::kErrorNotFound:
    case nvml::kErrorInsufficientSize:
    case nvml::kErrorDriverNotLoaded:
    case nvml::kErrorTimeout:
    case nvml::kErrorFunctionNotFound:
    case nvml::kErrorGpuIsLost:
    case nvml::kErrorInUse:
    case nvml::kErrorInsufficientResources:
    case nvml::kErrorUnknown:
      error = static_cast<NvmlError>(code);
      break;
    default:
      break;
  }
  std::string text = ErrorString(code);
  if (error == NvmlError::kUnknown && code != nvml::kErrorUnknown) {
    text = StrCat("NVML return code ", code, text.empty() ? "" : ": ", text);
  }
  return NvmlStatus(error, call, text);
}

absl::Status NvmlLibrary::Missing(std::string_view symbol, std::string_view call) const {
  return NvmlStatus(NvmlError::kNotSupported, call,
                    StrCat(path_, " does not export ", symbol, " (driver too old?)"));
}

absl::Status NvmlLibrary::Resolve() {
  void* h = handle_;
  std::vector<std::string> missing;
  auto required = [&](auto* out, std::initializer_list<const char*> names) {
    if (!plugin::Resolve(h, out, names)) missing.emplace_back(*names.begin());
  };
  required(&fn_.init, {"nvmlInit_v2", "nvmlInit"});
  required(&fn_.shutdown, {"nvmlShutdown"});
  required(&fn_.error_string, {"nvmlErrorString"});
  required(&fn_.system_get_driver_version, {"nvmlSystemGetDriverVersion"});
  required(&fn_.device_get_count, {"nvmlDeviceGetCount_v2"});
  required(&fn_.device_get_handle_by_index, {"nvmlDeviceGetHandleByIndex_v2"});
  required(&fn_.device_get_name, {"nvmlDeviceGetName"});
  required(&fn_.device_get_uuid, {"nvmlDeviceGetUUID"});
  required(&fn_.device_get_memory_info, {"nvmlDeviceGetMemoryInfo"});
  required(&fn_.device_get_pci_info, {"nvmlDeviceGetPciInfo_v3"});
  required(&fn_.device_get_minor_number, {"nvmlDeviceGetMinorNumber"});
  required(&fn_.device_get_cuda_compute_capability, {"nvmlDeviceGetCudaComputeCapability"});
  if (!missing.empty()) {
    return absl::FailedPreconditionError(StrCat(path_, " lacks required NVML symbol",
                                                missing.size() > 1 ? "s " : " ",
                                                StrJoin(missing, ", "), " (driver too old?)"));
  }

  auto optional = [&](auto* out, std::initializer_list<const char*> names) {
    plugin::Resolve(h, out, names);
  };
  optional(&fn_.system_get_cuda_driver_version,
           {"nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"});
  optional(&fn_.device_get_index, {"nvmlDeviceGetIndex"});
  optional(&fn_.device_get_mig_mode, {"nvmlDeviceGetMigMode"});
  optional(&fn_.device_get_gpu_instance_profile_info, {"nvmlDeviceGetGpuInstanceProfileInfo"});
  optional(&fn_.device_get_gpu_instance_profile_info_v, {"nvmlDeviceGetGpuInstanceProfileInfoV"});
  optional(&fn_.device_get_gpu_instance_possible_placements,
           {"nvmlDeviceGetGpuInstancePossiblePlacements_v2"});
  optional(&fn_.device_create_gpu_instance_with_placement,
           {"nvmlDeviceCreateGpuInstanceWithPlacement"});
  optional(&fn_.device_get_gpu_instances, {"nvmlDeviceGetGpuInstances"});
  optional(&fn_.device_get_gpu_instance_by_id, {"nvmlDeviceGetGpuInstanceById"});
  optional(&fn_.gpu_instance_get_info, {"nvmlGpuInstanceGetInfo"});
  optional(&fn_.gpu_instance_destroy, {"nvmlGpuInstanceDestroy"});
  optional(&fn_.gpu_instance_get_compute_instance_profile_info,
           {"nvmlGpuInstanceGetComputeInstanceProfileInfo"});
  optional(&fn_.gpu_instance_create_compute_instance, {"nvmlGpuInstanceCreateComputeInstance"});
  optional(&fn_.gpu_instance_get_compute_instances, {"nvmlGpuInstanceGetComputeInstances"});
  optional(&fn_.compute_instance_get_info, {"nvmlComputeInstanceGetInfo_v2"});
  optional(&fn_.compute_instance_destroy, {"nvmlComputeInstanceDestroy"});
  optional(&fn_.device_get_max_mig_device_count, {"nvmlDeviceGetMaxMigDeviceCount"});
  optional(&fn_.device_get_mig_device_handle_by_index, {"nvmlDeviceGetMigDeviceHandleByIndex"});
  optional(&fn_.device_get_gpu_instance_id, {"nvmlDeviceGetGpuInstanceId"});
  optional(&fn_.device_get_compute_instance_id, {"nvmlDeviceGetComputeInstanceId"});
  optional(&fn_.event_set_create, {"nvmlEventSetCreate"});
  optional(&fn_.event_set_free, {"nvmlEventSetFree"});
  optional(&fn_.device_get_supported_event_types, {"nvmlDeviceGetSupportedEventTypes"});
  optional(&fn_.device_register_events, {"nvmlDeviceRegisterEvents"});
  optional(&fn_.event_set_wait, {"nvmlEventSetWait_v2"});
  return absl::OkStatus();
}

}  // namespace tessera::plugin
