#ifndef TESSERA_CONTROLLER_WORKQUEUE_H_
#define TESSERA_CONTROLLER_WORKQUEUE_H_

// A work queue of string keys (node names), as client-go's rate-limited delaying queue:
//  - a key is queued at most once; adding a queued key again only moves its time earlier;
//  - a key being processed is never handed to a second worker: adds while it runs mark it dirty
//    and it is queued again when Done is called;
//  - AddAfter delays a key (a heartbeat deadline, a re-check); AddRateLimited delays it by an
//    exponential back-off per key (failures), which Forget resets;
//  - Add itself waits `batch` first, so a burst of events for one node (a claim allocated, its
//    status written, the inventory updated) becomes one sync.

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"

namespace tessera::controller {

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::chrono::milliseconds batch{0};
    std::chrono::milliseconds base_backoff{200};
    std::chrono::milliseconds max_backoff{60000};
  };
  explicit WorkQueue(Options options);

  void Add(const std::string& key);
  void AddAfter(const std::string& key, std::chrono::milliseconds delay);
  void AddRateLimited(const std::string& key);
  void Forget(const std::string& key);
  int Failures(const std::string& key) const;

  // Blocks until a key is due (returns it, marked processing) or the queue shuts down (nullopt).
  std::optional<std::string> Get();
  // The worker finished `key`; a key added meanwhile is queued again.
  void Done(const std::string& key);
  void ShutDown();

  // Keys waiting (due or not), for the queue-depth metric.
  std::size_t Depth() const;

 private:
  void Schedule(const std::string& key, Clock::time_point when) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, Clock::time_point> waiting_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<Clock::time_point, std::string>> by_time_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> processing_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Clock::time_point> dirty_ ABSL_GUARDED_BY(mu_);  // added while processing
  std::map<std::string, int> failures_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_WORKQUEUE_H_
