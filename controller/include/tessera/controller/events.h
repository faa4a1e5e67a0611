#ifndef TESSERA_CONTROLLER_EVENTS_H_
#define TESSERA_CONTROLLER_EVENTS_H_

// Kubernetes Events (core/v1) for important transitions, written by a background thread so that a
// slow API server never delays a sync. The same (object, reason, message) is written at most once
// per `dedupe` window; when more than `max_pending` are waiting, new ones are dropped and counted.
// Events about cluster-scoped objects (Nodes, policies) go to `ns` ("default"), where
// `kubectl describe` finds them.

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "tessera/kube/client.h"

namespace tessera::controller {

struct ObjectRef {
  std::string api_version;  // "v1", "tessera.dev/v1alpha1"
  std::string kind;         // "Node", "GpuPartitionPolicy"
  std::string name;
  std::string uid{};
};

class EventRecorder {
 public:
  struct Options {
    std::string ns = "default";
    std::string component = "tessera-controller";
    std::chrono::seconds dedupe{600};
    std::size_t max_pending = 1000;
  };
  EventRecorder(kube::Client& client, Options options);
  ~EventRecorder();  // drops what is pending and stops

  // type: "Normal" or "Warning".
  void Record(const ObjectRef& object, std::string_view type, std::string_view reason,
              std::string_view message);
  int dropped() const;
  int written() const;

 private:
  struct Pending {
    ObjectRef object;
    std::string type, reason, message;
  };
  void Run();

  kube::Client& client_;
  const Options options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> pending_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::chrono::steady_clock::time_point> recent_ ABSL_GUARDED_BY(mu_);
  int dropped_ ABSL_GUARDED_BY(mu_) = 0;
  int written_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_EVENTS_H_
