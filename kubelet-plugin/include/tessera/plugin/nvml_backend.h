#ifndef TESSERA_PLUGIN_NVML_BACKEND_H_
#define TESSERA_PLUGIN_NVML_BACKEND_H_

// The `nvml` GPU backend: the node's real GPUs through libnvidia-ml.so.1, loaded with dlopen from
// the driver root (the host's "/", or "/run/nvidia/driver" under the GPU operator), so that the
// plugin binary starts, and says why, on a node without a driver.
//
// NVML is initialised once in Open and shut down in the destructor; device handles are looked up
// once and cached (uncached lookups take seconds under load). Symbols that old drivers lack
// degrade the feature that needs them: without nvmlDeviceGetGpuInstancePossiblePlacements_v2 and
// nvmlDeviceCreateGpuInstanceWithPlacement, Discover still works and CreateMigInstance is
// NOT_SUPPORTED naming the symbol.
//
// Discover reports MIG profiles and instances only for GPUs in MIG mode (the backend never toggles
// MIG mode). A GPU whose handle NVML refuses at Open (no permission, lost) is left out of Discover
// and every call naming it returns that error. Health comes from an event thread: a critical Xid,
// a double-bit ECC error or a lost GPU makes the GPU unhealthy until the plugin restarts;
// application Xids (13, 31, 43, 45, 68, 109) are only logged.
//
// Thread-safe: calls for different GPUs may run concurrently (NVML is thread-safe); the caller
// serialises calls for one GPU.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/plugin/gpu_backend.h"

namespace tessera::plugin {

namespace nvml {
struct DeviceSt;
}  // namespace nvml
class NvmlLibrary;
class NvmlEventWatcher;
class GpuHealth;

struct NvmlOptions {
  // Where the driver's files are: "/", "/run/nvidia/driver", or another host path.
  std::string driver_root = "/";
  // An explicit libnvidia-ml.so.1; overrides the search under driver_root.
  std::string library_path{};
  // Default: <driver_root>/usr/bin/nvidia-smi.
  std::string nvidia_smi_path{};
  // Watch Xid and ECC events for GPU health.
  bool watch_events = true;
  // nvidia-smi is killed after this long.
  std::chrono::milliseconds nvidia_smi_timeout{30000};
  // Where the backend reports what no call returns: events, GPUs left out, features that degraded.
  // Called from the event thread too. Null: standard error.
  std::function<void(std::string_view message)> log{};
};

class NvmlBackend : public GpuBackend {
 public:
  // Loads the library (FailedPrecondition naming the driver root, the paths tried and dlerror()
  // when it is missing), initialises NVML (an NvmlStatus with NVML's code when that fails), caches
  // the device handles and starts the event thread.
  static absl::StatusOr<std::unique_ptr<NvmlBackend>> Open(NvmlOptions options);
  // Stops the event thread (within one event wait, at most half a second), shuts NVML down and
  // unloads the library.
  ~NvmlBackend() override;
  NvmlBackend(const NvmlBackend&) = delete;
  NvmlBackend& operator=(const NvmlBackend&) = delete;

  std::string_view name() const override { return "nvml"; }
  absl::StatusOr<NodeInventory> Discover() override;
  // Creates the GI at exactly `placement`, then one compute instance covering it; if the compute
  // instance cannot be made, the GI is destroyed again before the error is returned.
  absl::StatusOr<api::MigInstanceInfo> CreateMigInstance(int gpu, int profile_id,
                                                         api::Placement placement) override;
  // NOT_FOUND when there is no such GI; IN_USE (never forced) while a process runs on it.
  absl::Status DestroyMigInstance(int gpu, int gi_id) override;
  // Runs `<nvidia-smi> compute-policy -i <GPU UUID> --set-timeslice <0..3>` (no shell); the error
  // names the command, its exit code and its output.
  absl::Status SetTimeSlice(int gpu, api::TimeSliceInterval interval) override;
  // nvmlDeviceGetMemoryInfo on the GPU's handle, or on the handle of its MIG device with that UUID
  // (found through nvmlDeviceGetMigDeviceHandleByIndex).
  absl::StatusOr<std::int64_t> MemoryUsed(int gpu, std::string_view uuid) override;

  // OK when the driver's library has what creating MIG instances at a placement needs, else
  // NOT_SUPPORTED naming the missing symbol.
  absl::Status DynamicMigSupport() const;

 private:
  struct Gpu {
    nvml::DeviceSt* handle = nullptr;
    std::string uuid{};
    absl::Status unavailable{};  // why NVML refused the GPU at Open
  };

  NvmlBackend(NvmlOptions options, std::unique_ptr<NvmlLibrary> library);
  absl::StatusOr<const Gpu*> FindGpu(int gpu, std::string_view call) const;
  absl::Status DescribeGpu(int index, api::GpuInfo* out) const;
  absl::Status CheckMigEnabled(const Gpu& gpu, std::string_view call) const;
  absl::Status CheckDynamicMig(std::string_view call) const;
  void Log(std::string_view message) const;

  const NvmlOptions options_;
  const std::unique_ptr<NvmlLibrary> library_;
  bool initialized_ = false;  // nvmlInit succeeded: the destructor owes an nvmlShutdown
  std::vector<Gpu> gpus_;     // by NVML index; fixed after Open
  std::unique_ptr<GpuHealth> health_;
  std::unique_ptr<NvmlEventWatcher> events_;  // stopped before NVML shuts down
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_NVML_BACKEND_H_
