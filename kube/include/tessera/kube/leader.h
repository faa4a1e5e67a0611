#ifndef TESSERA_KUBE_LEADER_H_
#define TESSERA_KUBE_LEADER_H_

// Leader election on a coordination.k8s.io/v1 Lease, as client-go does it: a candidate takes the
// lease when it does not exist, is held by nobody, or its holder has not renewed it for
// leaseDurationSeconds as observed on this candidate's own clock (no clock comparison across
// machines); the leader renews every retry period and steps down when renewing has failed for the
// renew deadline; on shutdown it releases the lease so another candidate takes over at once.
// Writes use the lease's resourceVersion, so two candidates can never both win.

#include <atomic>
#include <chrono>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "tessera/kube/client.h"

namespace tessera::kube {

struct LeaderElectionConfig {
  std::string ns;
  std::string name;
  std::string identity;  // unique per candidate, e.g. the pod name
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  // Give the lease up when Run ends. Off only to model a candidate that dies (tests).
  bool release_on_stop = true;
};

class LeaderElector {
 public:
  LeaderElector(Client& client, LeaderElectionConfig config);

  // Campaigns until `stop` is set: on_started_leading runs (on this thread) when the lease is won
  // and must return promptly; on_stopped_leading when it is lost or given up. Returns after
  // releasing a held lease.
  void Run(const std::atomic<bool>* stop, const std::function<void()>& on_started_leading,
           const std::function<void()>& on_stopped_leading);

  bool IsLeader() const { return leader_.load(); }
  const LeaderElectionConfig& config() const { return config_; }

 private:
  // One attempt to take or renew the lease: OK if we hold it afterwards.
  absl::Status TryAcquireOrRenew();
  absl::Status Release();

  Client& client_;
  const LeaderElectionConfig config_;
  std::atomic<bool> leader_{false};
  // What we last saw of the lease and when, on our clock.
  std::string observed_version_;
  std::string observed_holder_;
  std::chrono::steady_clock::time_point observed_at_{};
};

// "2026-11-21T10:00:00.000000Z": a metav1.MicroTime for now.
std::string MicroTimeNow();
// "2026-11-21T10:00:00Z": a metav1.Time (RFC 3339, whole seconds) for now.
std::string TimeNow();

}  // namespace tessera::kube

#endif  // TESSERA_KUBE_LEADER_H_
