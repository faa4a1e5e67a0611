#include "nvml_events.h"

#include <algorithm>
#include <cstring>

#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

// The events that say something about the GPU's health (gpu-partitioning reference §2.8).
constexpr unsigned long long kHealthEvents =
    nvml::kEventTypeXidCriticalError | nvml::kEventTypeDoubleBitEccError |
    nvml::kEventTypeDramRetirementFailure | nvml::kEventTypeFatalPoisonError |
    nvml::kEventTypeGpuUnavailableError;

// After an unexpected wait error: back off, doubling up to the cap, so that a broken set does not
// spin or flood the log.
constexpr std::chrono::milliseconds kFirstBackoff{1000};
constexpr std::chrono::milliseconds kMaxBackoff{30000};

std::string Attribution(const nvml::EventData& e) {
  if (e.gpuInstanceId == nvml::kNoInstanceId) return "";
  if (e.computeInstanceId == nvml::kNoInstanceId) return StrCat(" (GI ", e.gpuInstanceId, ")");
  return StrCat(" (GI ", e.gpuInstanceId, ", CI ", e.computeInstanceId, ")");
}

}  // namespace

bool GpuHealth::MarkUnhealthy(int gpu, std::string message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (gpu < 0 || gpu >= static_cast<int>(gpus_.size())) return false;
  State& s = gpus_[gpu];
  if (s.health == api::HealthState::kUnhealthy &&
      (s.message == message || s.message == kGpuLostMessage)) {
    return false;
  }
  s.health = api::HealthState::kUnhealthy;
  s.message = std::move(message);
  return true;
}

GpuHealth::State GpuHealth::Get(int gpu) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (gpu < 0 || gpu >= static_cast<int>(gpus_.size())) {
    return {.health = api::HealthState::kUnknown, .message = "no such GPU"};
  }
  return gpus_[gpu];
}

bool IsApplicationXid(unsigned long long xid) {
  constexpr unsigned long long kApplicationXids[] = {13, 31, 43, 45, 68, 109};
  return std::find(std::begin(kApplicationXids), std::end(kApplicationXids), xid) !=
         std::end(kApplicationXids);
}

absl::StatusOr<std::unique_ptr<NvmlEventWatcher>> NvmlEventWatcher::Start(
    const NvmlLibrary& lib, std::vector<nvml::Device> devices, GpuHealth* health,
    std::function<void(std::string_view)> log) {
  const NvmlFunctions& f = lib.fn();
  for (auto [fn, symbol] :
       {std::pair<bool, const char*>{f.event_set_create != nullptr, "nvmlEventSetCreate"},
        {f.event_set_free != nullptr, "nvmlEventSetFree"},
        {f.device_register_events != nullptr, "nvmlDeviceRegisterEvents"},
        {f.event_set_wait != nullptr, "nvmlEventSetWait_v2"}}) {
    if (!fn) return lib.Missing(symbol, symbol);
  }
  nvml::EventSet set = nullptr;
  if (nvml::Return r = f.event_set_create(&set); r != nvml::kSuccess) {
    return lib.Error(r, "nvmlEventSetCreate");
  }
  std::unique_ptr<NvmlEventWatcher> w(
      new NvmlEventWatcher(lib, std::move(devices), health, std::move(log), set));
  w->Register();
  w->thread_ = std::thread([raw = w.get()] { raw->Run(); });
  return w;
}

NvmlEventWatcher::~NvmlEventWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  lib_.fn().event_set_free(set_);
}

void NvmlEventWatcher::Register() {
  const NvmlFunctions& f = lib_.fn();
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    const nvml::Device device = devices_[i];
    if (device == nullptr) continue;
    const int gpu = static_cast<int>(i);
    unsigned long long mask = kHealthEvents;
    if (f.device_get_supported_event_types != nullptr) {
      unsigned long long supported = 0;
      const nvml::Return r = f.device_get_supported_event_types(device, &supported);
      if (r == nvml::kErrorGpuIsLost) {
        MarkUnhealthy(gpu, std::string(kGpuLostMessage));
        continue;
      }
      if (r == nvml::kSuccess) mask &= supported;
    }
    if (mask == 0) {
      log_(StrCat("GPU ", gpu, " reports none of the health events; its health is not watched"));
      continue;
    }
    nvml::Return r = f.device_register_events(device, mask, set_);
    // NOT_SUPPORTED registers nothing but leaves the set usable: fall back to Xids alone.
    if (r == nvml::kErrorNotSupported && mask != nvml::kEventTypeXidCriticalError) {
      r = f.device_register_events(device, nvml::kEventTypeXidCriticalError, set_);
    }
    if (r != nvml::kSuccess) {
      log_(StrCat("GPU ", gpu, ": health is not watched: ",
                  lib_.Error(r, StrCat("nvmlDeviceRegisterEvents(GPU ", gpu, ")")).message()));
    }
  }
}

void NvmlEventWatcher::Run() {
  std::chrono::milliseconds backoff = kFirstBackoff;
  while (!WaitForStop(std::chrono::milliseconds(0))) {
    nvml::EventData event;
    std::memset(&event, 0, sizeof(event));
    const nvml::Return r =
        lib_.fn().event_set_wait(set_, &event, static_cast<unsigned int>(kWaitSlice.count()));
    if (r == nvml::kSuccess) {
      Handle(event);
      backoff = kFirstBackoff;
      continue;
    }
    if (r == nvml::kErrorTimeout) {
      backoff = kFirstBackoff;
      continue;
    }
    if (r == nvml::kErrorGpuIsLost) {
      MarkLostGpus();
    } else {
      log_(StrCat(lib_.Error(r, "nvmlEventSetWait_v2").message(), "; retrying in ", backoff.count(),
                  " ms"));
    }
    if (WaitForStop(backoff)) break;
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void NvmlEventWatcher::Handle(const nvml::EventData& event) {
  const auto it = std::find(devices_.begin(), devices_.end(), event.device);
  if (event.device == nullptr || it == devices_.end()) {
    log_(StrCat("NVML event ", event.eventType, " for a device tessera does not know; ignored"));
    return;
  }
  const int gpu = static_cast<int>(it - devices_.begin());
  std::string message;
  switch (event.eventType) {
    case nvml::kEventTypeXidCriticalError:
      message = StrCat("Xid ", event.eventData, Attribution(event));
      if (IsApplicationXid(event.eventData)) {
        log_(StrCat("GPU ", gpu, ": ", message, ": an application error; the GPU stays healthy"));
        return;
      }
      break;
    case nvml::kEventTypeDoubleBitEccError:
      message = StrCat("double-bit ECC error", Attribution(event));
      break;
    case nvml::kEventTypeDramRetirementFailure:
      message = "DRAM page retirement failed";
      break;
    case nvml::kEventTypeFatalPoisonError:
      message = StrCat("fatal poison error", Attribution(event));
      break;
    case nvml::kEventTypeGpuUnavailableError:
      message = "GPU unavailable";
      break;
    default:
      log_(StrCat("GPU ", gpu, ": NVML event ", event.eventType, " ignored"));
      return;
  }
  MarkUnhealthy(gpu, message);
}

void NvmlEventWatcher::MarkLostGpus() {
  for (std::size_t i = 0; i < devices_.size(); ++i) {
    if (devices_[i] == nullptr) continue;
    unsigned int minor = 0;
    if (lib_.fn().device_get_minor_number(devices_[i], &minor) == nvml::kErrorGpuIsLost) {
      MarkUnhealthy(static_cast<int>(i), std::string(kGpuLostMessage));
    }
  }
}

void NvmlEventWatcher::MarkUnhealthy(int gpu, const std::string& message) {
  if (health_->MarkUnhealthy(gpu, message)) log_(StrCat("GPU ", gpu, " is unhealthy: ", message));
}

bool NvmlEventWatcher::WaitForStop(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  if (d.count() > 0) stop_cv_.wait_for(lock, d, [this] { return stop_; });
  return stop_;
}

}  // namespace tessera::plugin
