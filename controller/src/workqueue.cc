#include "tessera/controller/workqueue.h"

#include <algorithm>

namespace tessera::controller {

WorkQueue::WorkQueue(Options options) : options_(options) {}

void WorkQueue::Schedule(const std::string& key, Clock::time_point when) {
  if (shut_down_) return;
  if (processing_.count(key) != 0) {
    auto [it, added] = dirty_.emplace(key, when);
    if (!added) it->second = std::min(it->second, when);
    return;
  }
  auto it = waiting_.find(key);
  if (it != waiting_.end()) {
    if (it->second <= when) return;  // already due sooner
    by_time_.erase({it->second, key});
    it->second = when;
  } else {
    waiting_.emplace(key, when);
  }
  by_time_.emplace(when, key);
  cv_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  Schedule(key, Clock::now() + options_.batch);
}

void WorkQueue::AddAfter(const std::string& key, std::chrono::milliseconds delay) {
  std::lock_guard<std::mutex> lock(mu_);
  Schedule(key, Clock::now() + delay);
}

void WorkQueue::AddRateLimited(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const int n = failures_[key]++;
  auto delay = options_.base_backoff;
  for (int i = 0; i < n && delay < options_.max_backoff; ++i) delay *= 2;
  Schedule(key, Clock::now() + std::min(delay, options_.max_backoff));
}

void WorkQueue::Forget(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.erase(key);
}

int WorkQueue::Failures(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (shut_down_) return std::nullopt;
    if (!by_time_.empty()) {
      const auto [when, key] = *by_time_.begin();
      if (when <= Clock::now()) {
        by_time_.erase(by_time_.begin());
        waiting_.erase(key);
        processing_.insert(key);
        return key;
      }
      cv_.wait_until(lock, when);
    } else {
      cv_.wait(lock);
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  processing_.erase(key);
  auto it = dirty_.find(key);
  if (it != dirty_.end()) {
    const Clock::time_point when = it->second;
    dirty_.erase(it);
    Schedule(key, when);
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard<std::mutex> lock(mu_);
  shut_down_ = true;
  cv_.notify_all();
}

std::size_t WorkQueue::Depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_.size() + dirty_.size();
}

}  // namespace tessera::controller
