#ifndef TESSERA_CONTROLLER_CONTROLLER_H_
#define TESSERA_CONTROLLER_CONTROLLER_H_

// The controller: one ResourceSlice pool per GPU node, published from the node's GpuInventory,
// the GpuPartitionPolicy that selects it and the allocations of our driver's claims.
//
// Inputs are informers (Nodes, GpuInventories, GpuPartitionPolicies, ResourceClaims, our driver's
// ResourceSlices); their events put node names on a WorkQueue (one sync per node at a time,
// bursts coalesced, failures retried with back-off). A node sync builds the device model
// (NodeModeler), splits it into slices (partitioner::SplitIntoSlices, which validates the pool)
// and writes the difference (PlanPool). What goes wrong leaves what was published in place.
//
// Withdrawal: a node's slices are deleted when its Node or GpuInventory is gone, or when no
// heartbeat of its plugin (GpuInventory status.heartbeatTime changing) has been seen for
// `heartbeat_timeout` on the controller's own clock. When someone else deletes our slices (the
// kubelet wipes a node's slices when it starts and when the plugin has been gone 30 s), the pool
// is republished only after a heartbeat newer than the deletion: a live plugin, not a fight with
// the kubelet.
//
// Policies: every change re-evaluates all policies (ValidatePolicy, AssignPolicies), writes their
// status, and re-queues the nodes whose policy changed. An invalid policy keeps its last valid
// form in force (in this process); a node whose policies tie keeps the policy it had.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "tessera/api/crd.h"
#include "tessera/controller/events.h"
#include "tessera/controller/metrics.h"
#include "tessera/controller/node_model.h"
#include "tessera/controller/policy.h"
#include "tessera/controller/pool.h"
#include "tessera/controller/workqueue.h"
#include "tessera/kube/client.h"
#include "tessera/kube/informer.h"
#include "tessera/partitioner/device_model.h"
#include "tessera/partitioner/placement.h"

namespace tessera::controller {

struct ControllerOptions {
  std::string driver = "gpu.tessera.dev";
  std::string field_manager = "tessera-controller";
  partitioner::Policy placement = partitioner::Policy::kTessera;
  std::chrono::milliseconds heartbeat_timeout{60000};
  std::chrono::milliseconds batch{100};  // coalescing window for a node's events
  int workers = 4;
  // Null: asked from the API server (version and dry-run probes, kube/discovery.h).
  std::optional<partitioner::ApiFeatures> features{};
  std::string events_namespace = "default";
};

class Controller {
 public:
  Controller(kube::Client& client, ControllerOptions options, ControllerMetrics& metrics);
  ~Controller();  // Stop()
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Discovers features, starts the informers, waits for them to sync, evaluates the policies
  // and starts the workers. Errors name what could not be reached.
  absl::Status Start(std::chrono::milliseconds sync_timeout);
  void Stop();

  const partitioner::ApiFeatures& features() const { return features_; }

 private:
  struct NodeContext;
  struct Heartbeat {
    std::string value;
    std::chrono::steady_clock::time_point seen{};
    std::optional<std::chrono::steady_clock::time_point> wiped{};  // our slices deleted by others
  };
  struct Written {
    std::string node;
    std::string resource_version;     // empty: deleted
    std::optional<api::Json> object;  // compact (CompactWritten)
    std::chrono::steady_clock::time_point at;
  };

  void RegisterHandlers();
  void Worker();
  void ReleaseFreedMemory();
  void Sweep();
  absl::Status SyncNode(const std::string& node);
  absl::Status SyncPolicies();
  absl::Status Withdraw(const std::string& node, NodeContext& ctx, const std::string& reason);
  absl::Status Execute(const std::string& node, const PoolPlan& plan);
  std::vector<StoredSlice> StoredSlices(const std::string& node);
  void Remember(const std::string& node, const std::string& name, const api::Json* object);
  // A write of slice `name` is on its way: its watch event may come back before the answer does.
  void BeginWrite(const std::string& name);
  void EndWrite(const std::string& name);
  // Waits (bounded) until no write of `name` is on its way, so that its watch event is matched
  // against what was recorded for it rather than taken for someone else's change.
  void AwaitWrite(std::unique_lock<std::mutex>& lock, const std::string& name)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsOurWrite(const api::Json& slice, bool deleted);
  // The compact form recorded for this exact version of a slice we wrote, if any.
  std::optional<api::Json> WrittenCompact(const api::Json& slice);
  // The slice informer's transform: the compact form (pool.h) of a listed slice or of a watch
  // event's metadata, read whole when the metadata cannot be trusted.
  api::Json CachedSlice(api::Json slice);
  NodeContext& Context(const std::string& node);
  void Warn(const ObjectRef& object, const std::string& reason, const std::string& message);

  kube::Client& client_;
  const ControllerOptions options_;
  ControllerMetrics& metrics_;
  partitioner::ApiFeatures features_;
  std::unique_ptr<partitioner::Placer> placer_;
  WorkQueue queue_;
  EventRecorder events_;

  std::unique_ptr<kube::Informer> nodes_, inventories_, policies_, claims_, slices_;

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<NodeContext>> contexts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Heartbeat> heartbeats_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Written> written_ ABSL_GUARDED_BY(mu_);  // by slice name
  std::map<std::string, int> in_flight_ ABSL_GUARDED_BY(mu_);    // writes on their way, by name
  std::condition_variable written_cv_;
  // From the last policy sync: the policy spec in force per node.
  std::map<std::string, std::shared_ptr<const api::GpuPartitionPolicySpec>> node_policy_
      ABSL_GUARDED_BY(mu_);
  std::set<std::string> conflicted_nodes_ ABSL_GUARDED_BY(mu_);
  // Gated fields (GatedFields) the API server has been seen to keep in a slice we wrote.
  std::set<std::string> kept_fields_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, api::GpuPartitionPolicy> last_valid_ ABSL_GUARDED_BY(mu_);

  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> last_trim_ms_{0};
  std::vector<std::thread> workers_;
  std::thread sweeper_;
};

// The special work-queue key that re-evaluates the policies.
inline constexpr char kPoliciesKey[] = "\x01policies";

}  // namespace tessera::controller

#endif  // TESSERA_CONTROLLER_CONTROLLER_H_
