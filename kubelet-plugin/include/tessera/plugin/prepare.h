#ifndef TESSERA_PLUGIN_PREPARE_H_
#define TESSERA_PLUGIN_PREPARE_H_

// Prepare and unprepare of ResourceClaims on this node: the heart of the kubelet plugin.
//
// Prepare, per claim: read the claim from the API server (before any lock), check its UID and
// allocation, take the results of our driver, decode each device name into its partition or share
// (partitioner::ResolveDeviceName), resolve its opaque config (class configs, then claim configs;
// later entries win; strictly validated), then, holding the locks of exactly the GPUs involved:
// record the intent, create the MIG instance at the allocated placement (or adopt the instance
// that already exists there), start or join the MPS daemon / set the time slice, write the CDI
// spec, record the claim as prepared. A failure rolls back what this attempt did and fails only
// that claim, with a message naming the claim and the cause.
//
// Unprepare: record the intent, remove the CDI spec, stop the MPS daemon and restore the time
// slice when no other claim uses them, destroy the MIG instance if tessera created it and no other
// claim uses it (IN_USE: fail, keep the record, the kubelet retries), forget the claim.
//
// Locks are per physical GPU, in-process (mutex) and across processes (flock on
// <data dir>/locks/gpu-<uuid>.lock, for rolling updates), always taken in GPU index order: claims
// on different GPUs prepare in parallel. LockScope::kNode replaces them with one node-wide lock
// (locks/node.lock) held for the whole of every prepare and unprepare after the claim is read,
// the way NVIDIA's DRA driver serialises; it exists so that a benchmark can compare the two on one
// binary. Repeated prepares return the recorded devices without acting; unprepare of an unknown
// claim succeeds.
//
// Start() reconciles the checkpoint with the GPUs: half-done prepares are rolled back, half-done
// unprepares finished, claims whose checkpoint was lost but whose CDI spec survives are restored
// from the record the spec carries, MPS daemons and CDI specs no claim owns are removed, and MIG
// instances tessera did not record creating are never touched.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "tessera/api/resource.h"
#include "tessera/partitioner/catalogue.h"
#include "tessera/plugin/cdi.h"
#include "tessera/plugin/checkpoint.h"
#include "tessera/plugin/device_nodes.h"
#include "tessera/plugin/driver_files.h"
#include "tessera/plugin/gpu_backend.h"
#include "tessera/plugin/mps.h"

namespace tessera::plugin {

// What one lock covers: the GPUs of a claim (the default), or the whole node for the whole claim.
enum class LockScope { kGpu, kNode };
// "gpu" or "node"; InvalidArgument naming the allowed values otherwise.
absl::StatusOr<LockScope> ParseLockScope(std::string_view text);

// Where claims come from: the API server in production (KubeClaimReader), a map in tests.
class ClaimReader {
 public:
  virtual ~ClaimReader() = default;
  virtual absl::StatusOr<api::ResourceClaim> Get(const std::string& ns,
                                                 const std::string& name) = 0;
};

struct ClaimRef {
  std::string namespace_{};
  std::string name{};
  std::string uid{};
};

struct PrepareResult {
  std::vector<PreparedDevice> devices{};
  std::string error{};   // non-empty: this claim failed
  std::string reason{};  // when failed: get-claim, claim, config, conflict, actuation, busy
};

// What happened during Start(), for logs and tests.
struct ReconcileReport {
  std::vector<std::string> rolled_back{};  // claim UIDs whose prepare was undone
  std::vector<std::string> finished{};     // claim UIDs whose unprepare was completed
  std::vector<std::string> restored{};     // claim UIDs rebuilt from their CDI spec
  std::vector<std::string> problems{};     // what could not be done, in words
  std::vector<std::string> stray_cdi{};    // CDI specs removed
  std::vector<std::string> stray_mps{};    // MPS daemons stopped
};

// Observes every prepare/unprepare (metrics); called outside the locks.
struct PrepareObserver {
  std::function<void(const ClaimRef&, const PrepareResult&)> on_prepare{};
  std::function<void(const ClaimRef&, const std::string& error)> on_unprepare{};
};

struct PreparerOptions {
  std::string driver_name = "gpu.tessera.dev";
  std::string node_name{};  // our pool
  std::string lock_dir{};   // per-GPU lock files; empty: in-process locks only
  LockScope lock_scope = LockScope::kGpu;
  // Where MPS clients see the daemon's pipe directory.
  std::string mps_container_pipe_dir = "/tmp/nvidia-mps";
  // The driver's user-space files, mounted into the containers of every claim (the spec's
  // claim-level edits); null: none. Only read on the prepare path, never scanned there.
  const DriverFiles* driver_files = nullptr;
};

class Preparer {
 public:
  // `mps` may be null: MPS devices then fail to prepare with a clear message.
  Preparer(PreparerOptions options, GpuBackend& backend, CheckpointStore& checkpoint,
           CdiWriter& cdi, const DeviceNodes& nodes, MpsManager* mps, ClaimReader& claims);
  ~Preparer();

  // Discovers the GPUs and reconciles (see above). Call once, before serving.
  absl::StatusOr<ReconcileReport> Start();

  // One result per claim UID, always (duplicates collapse).
  std::map<std::string, PrepareResult> Prepare(const std::vector<ClaimRef>& claims);
  // UID -> error ("" = done).
  std::map<std::string, std::string> Unprepare(const std::vector<ClaimRef>& claims);

  // The node's GPUs as last discovered, with instance owners and shares from the checkpoint (what
  // the plugin writes to its GpuInventory). Refreshes from the backend.
  absl::StatusOr<NodeInventory> Inventory();
  // Device health per (pool, device) for the health service: every whole GPU and every prepared
  // device, with the GPU's health.
  struct DeviceHealth {
    std::string device{};
    api::HealthState health = api::HealthState::kUnknown;
    std::string message{};
  };
  absl::StatusOr<std::vector<DeviceHealth>> Health();

  void set_observer(PrepareObserver observer) { observer_ = std::move(observer); }
  const std::string& pool() const { return options_.node_name; }

 private:
  struct Gpu;
  struct Plan;
  class GpuLocks;

  PrepareResult PrepareOne(const ClaimRef& ref);
  std::string UnprepareOne(const ClaimRef& ref);
  absl::StatusOr<std::vector<Plan>> PlanClaim(const ClaimRef& ref,
                                              const api::ResourceClaim& claim) const;
  absl::Status Actuate(ClaimRecord& record, const std::vector<Plan>& plans);
  absl::Status Commit(ClaimRecord& record);
  void PlanMig(const std::vector<CheckpointStore::RecordPtr>& others, PreparedDevice& device) const;
  absl::Status ActuateMig(ClaimRecord& record, PreparedDevice& device);
  absl::Status ActuateSharing(const ClaimRecord& record, PreparedDevice& device);
  // Undoes everything `record` holds, skipping resources other claims still use. Stops at the
  // first failure (the record then still names what is left).
  absl::Status Release(ClaimRecord& record, bool crash_points);
  // The record with phase kPrepared, in the checkpoint's form (CheckpointStore::Encode).
  std::string EncodePrepared(ClaimRecord record) const;
  // `encoded`: EncodePrepared(record), which the spec carries so that a lost checkpoint can be
  // restored from it.
  absl::Status WriteCdi(const ClaimRecord& record, const std::string& encoded);
  std::vector<CheckpointStore::RecordPtr> OthersThan(const std::string& uid) const;
  std::vector<int> GpusOf(const ClaimRecord& record) const;
  // The lock indexes that cover `gpus`: the GPUs themselves, or the node lock (LockScope::kNode).
  std::vector<int> LockIds(std::vector<int> gpus) const;
  std::shared_ptr<std::mutex> ClaimMutex(const std::string& uid);

  const PreparerOptions options_;
  GpuBackend& backend_;
  CheckpointStore& checkpoint_;
  CdiWriter& cdi_;
  const DeviceNodes& nodes_;
  MpsManager* const mps_;
  ClaimReader& claims_;
  PrepareObserver observer_;

  std::vector<std::unique_ptr<Gpu>> gpus_;  // fixed after Start()
  std::unique_ptr<GpuLocks> locks_;
  std::string driver_version_;
  std::string cuda_driver_version_;

  std::mutex claim_mu_;
  std::map<std::string, std::weak_ptr<std::mutex>> claim_locks_ ABSL_GUARDED_BY(claim_mu_);
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_PREPARE_H_
