#ifndef TESSERA_PLUGIN_NVML_EVENTS_H_
#define TESSERA_PLUGIN_NVML_EVENTS_H_

// GPU health from NVML events. One event set covers every GPU (registered on the parent handle,
// which also delivers MIG instances' events with their GI/CI IDs); one thread waits on it in short
// slices so that stopping it never takes longer than one slice.
//
// A critical Xid, a double-bit ECC error, a failed DRAM retirement, a fatal poison error, an
// unavailable or lost GPU make the GPU unhealthy until the process ends: the NVIDIA DRA driver
// does the same, because the cause outlives the event. Application Xids (a fault of the program,
// not of the GPU) are only logged.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "nvml_abi.h"
#include "nvml_library.h"
#include "tessera/api/crd.h"

namespace tessera::plugin {

// Per-GPU health, healthy until an event says otherwise. Thread-safe.
class GpuHealth {
 public:
  struct State {
    api::HealthState health = api::HealthState::kHealthy;
    std::string message{};
  };

  explicit GpuHealth(std::size_t gpus) : gpus_(gpus) {}

  // The latest cause wins, except that a lost GPU stays "GPU is lost". False for an unknown GPU
  // or when nothing changed.
  bool MarkUnhealthy(int gpu, std::string message);
  State Get(int gpu) const;

 private:
  mutable std::mutex mu_;
  std::vector<State> gpus_ ABSL_GUARDED_BY(mu_);
};

inline constexpr std::string_view kGpuLostMessage = "GPU is lost";

// Xids caused by the application rather than the GPU (the NVIDIA DRA driver's list): 13 graphics
// engine exception, 31 memory page fault, 43 GPU stopped processing, 45 preemptive cleanup,
// 68 video processor exception, 109 context switch timeout.
bool IsApplicationXid(unsigned long long xid);

class NvmlEventWatcher {
 public:
  // How long one nvmlEventSetWait_v2 may block: the bound on stopping the watcher.
  static constexpr std::chrono::milliseconds kWaitSlice{200};

  // Registers every GPU in `devices` (by NVML index; null handles are skipped) for the health
  // events it supports and starts the thread. Fails when the library has no event calls or the
  // set cannot be created; a GPU that cannot be registered is logged and left unwatched.
  // `lib` and `health` must outlive the watcher.
  static absl::StatusOr<std::unique_ptr<NvmlEventWatcher>> Start(
      const NvmlLibrary& lib, std::vector<nvml::Device> devices, GpuHealth* health,
      std::function<void(std::string_view)> log);
  // Stops and joins the thread, then frees the event set.
  ~NvmlEventWatcher();
  NvmlEventWatcher(const NvmlEventWatcher&) = delete;
  NvmlEventWatcher& operator=(const NvmlEventWatcher&) = delete;

 private:
  NvmlEventWatcher(const NvmlLibrary& lib, std::vector<nvml::Device> devices, GpuHealth* health,
                   std::function<void(std::string_view)> log, nvml::EventSet set)
      : lib_(lib), devices_(std::move(devices)), health_(health), log_(std::move(log)), set_(set) {}
  void Register();
  void Run();
  void Handle(const nvml::EventData& event);
  void MarkLostGpus();
  void MarkUnhealthy(int gpu, const std::string& message);
  // Sleeps up to `d`; true when a stop was requested.
  bool WaitForStop(std::chrono::milliseconds d);

  const NvmlLibrary& lib_;
  const std::vector<nvml::Device> devices_;
  GpuHealth* const health_;
  const std::function<void(std::string_view)> log_;
  const nvml::EventSet set_;
  std::mutex mu_;
  std::condition_variable stop_cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_NVML_EVENTS_H_
