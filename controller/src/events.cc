#include "tessera/controller/events.h"

#include <random>

#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/kube/leader.h"

namespace tessera::controller {

EventRecorder::EventRecorder(kube::Client& client, Options options)
    : client_(client), options_(std::move(options)), thread_([this] { Run(); }) {}

EventRecorder::~EventRecorder() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void EventRecorder::Record(const ObjectRef& object, std::string_view type, std::string_view reason,
                           std::string_view message) {
  const std::string key = StrCat(object.kind, "/", object.name, "|", reason, "|", message);
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto it = recent_.find(key);
  if (it != recent_.end() && now - it->second < options_.dedupe) return;
  if (pending_.size() >= options_.max_pending) {
    ++dropped_;
    return;
  }
  recent_[key] = now;
  if (recent_.size() > 10000) recent_.clear();  // bounded; at worst an event repeats
  pending_.push_back({object, std::string(type), std::string(reason), std::string(message)});
  cv_.notify_one();
}

int EventRecorder::dropped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dropped_;
}

int EventRecorder::written() const {
  std::lock_guard<std::mutex> lock(mu_);
  return written_;
}

void EventRecorder::Run() {
  std::mt19937_64 rng(std::random_device{}());
  while (true) {
    Pending p;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
      // On stop, what is pending is dropped: against an API server that is gone, writing it would
      // hold the shutdown for the client's retries.
      if (stop_) return;
      p = std::move(pending_.front());
      pending_.pop_front();
    }
    const std::string ts = kube::TimeNow();
    char suffix[17];
    std::snprintf(suffix, sizeof(suffix), "%016llx", static_cast<unsigned long long>(rng()));
    api::Json involved = {
        {"apiVersion", p.object.api_version}, {"kind", p.object.kind}, {"name", p.object.name}};
    if (!p.object.uid.empty()) involved["uid"] = p.object.uid;
    const api::Json event = {
        {"apiVersion", "v1"},
        {"kind", "Event"},
        {"metadata", {{"name", StrCat(p.object.name, ".", suffix)}, {"namespace", options_.ns}}},
        {"involvedObject", involved},
        {"type", p.type},
        {"reason", p.reason},
        {"message", p.message.substr(0, 1024)},
        {"source", {{"component", options_.component}}},
        {"reportingComponent", options_.component},
        {"reportingInstance", options_.component},
        {"firstTimestamp", ts},
        {"lastTimestamp", ts},
        {"count", 1}};
    absl::StatusOr<api::Json> r = client_.Create(kube::resources::kEvents, options_.ns, event);
    if (!r.ok()) {
      spdlog::debug("event {} on {}/{} not written: {}", p.reason, p.object.kind, p.object.name,
                    std::string(r.status().message()));
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    ++written_;
  }
}

}  // namespace tessera::controller
