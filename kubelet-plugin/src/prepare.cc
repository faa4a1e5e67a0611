#include "tessera/plugin/prepare.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "spdlog/spdlog.h"
#include "tessera/api/gpu_config.h"
#include "tessera/api/strings.h"
#include "tessera/partitioner/device_name.h"
#include "tessera/plugin/fault.h"

namespace tessera::plugin {

// One GPU of the node: what Discover said at Start(), and the MIG instances as this plugin knows
// them (refreshed from the backend when in doubt).
struct Preparer::Gpu {
  api::GpuInfo info;
  partitioner::GpuModel model;
  std::vector<api::MigInstanceInfo> instances;  // guarded by holding the GPU lock
};

// One allocated device of a claim, decoded and with its configuration.
struct Preparer::Plan {
  api::DeviceRequestAllocationResult result;
  partitioner::ResolvedDevice resolved;
  std::optional<api::GpuConfig> config;
};

// The locks of a set of GPUs, taken in index order: a mutex for the threads of this process and an
// flock for a second plugin process (rolling update). Index gpus.size() is the node-wide lock of
// LockScope::kNode.
class Preparer::GpuLocks {
 public:
  GpuLocks(const std::vector<std::unique_ptr<Gpu>>& gpus, const std::string& dir)
      : mus_(gpus.size() + 1) {
    for (std::size_t i = 0; i <= gpus.size(); ++i) {
      int fd = -1;
      if (!dir.empty()) {
        const std::string path = i < gpus.size() ? StrCat(dir, "/gpu-", gpus[i]->info.uuid, ".lock")
                                                 : StrCat(dir, "/node.lock");
        fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) spdlog::warn("lock file {}: {}; in-process lock only", path, strerror(errno));
      }
      fds_.push_back(fd);
    }
  }
  ~GpuLocks() {
    for (int fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int node() const { return static_cast<int>(fds_.size()) - 1; }

  class Held {
   public:
    Held(GpuLocks& locks, std::vector<int> ids) : locks_(locks), ids_(std::move(ids)) {
      std::sort(ids_.begin(), ids_.end());
      ids_.erase(std::unique(ids_.begin(), ids_.end()), ids_.end());
      for (int i : ids_) {
        locks_.mus_[i].lock();
        if (locks_.fds_[i] >= 0) {
          while (::flock(locks_.fds_[i], LOCK_EX) != 0 && errno == EINTR) {
          }
        }
      }
    }
    ~Held() {
      for (auto it = ids_.rbegin(); it != ids_.rend(); ++it) {
        if (locks_.fds_[*it] >= 0) ::flock(locks_.fds_[*it], LOCK_UN);
        locks_.mus_[*it].unlock();
      }
    }
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;

   private:
    GpuLocks& locks_;
    std::vector<int> ids_;
  };

 private:
  std::vector<std::mutex> mus_;
  std::vector<int> fds_;
};

absl::StatusOr<LockScope> ParseLockScope(std::string_view text) {
  if (text == "gpu") return LockScope::kGpu;
  if (text == "node") return LockScope::kNode;
  return absl::InvalidArgumentError(StrCat("\"", text, "\" is not one of gpu, node"));
}

namespace {

std::string Describe(const ClaimRef& ref) {
  return StrCat("claim ", ref.namespace_, "/", ref.name, " (uid ", ref.uid, ")");
}

bool IsWholeExclusive(const PreparedDevice& d) {
  return !d.mig && d.sharing == ShareStrategy::kNone;
}

// Two prepared devices that cannot both be in use: the same exclusive device, anything next to an
// exclusive whole GPU, overlapping MIG instances unless both are shares of one instance, a MIG
// instance next to a whole-GPU share.
bool Conflict(const PreparedDevice& a, const PreparedDevice& b, bool a_shared_device,
              bool b_shared_device) {
  if (a.gpu != b.gpu) return false;
  if (a.device == b.device) return !(a_shared_device && b_shared_device);
  if (IsWholeExclusive(a) || IsWholeExclusive(b)) return true;
  if (a.mig && b.mig) {
    const api::Placement& pa = a.mig->placement;
    const api::Placement& pb = b.mig->placement;
    const bool overlap = pa.start < pb.start + pb.size && pb.start < pa.start + pa.size;
    if (!overlap) return false;
    // Fixed share slots of one instance ("…-mps-s0", "…-mps-s1") share it.
    return !(pa == pb && a.sharing != ShareStrategy::kNone && a.sharing == b.sharing);
  }
  if (a.mig || b.mig) return true;
  return a.sharing != b.sharing;  // whole-GPU shares of different kinds
}

// A device name whose partition many claims may hold at once (consumable-capacity share device).
bool SharedDeviceName(std::string_view device) {
  absl::StatusOr<partitioner::DeviceName> n = partitioner::DeviceName::Parse(device);
  return n.ok() && n->share.has_value() && n->slot < 0;
}

std::optional<int64_t> Mebibytes(const api::Quantity& q) {
  const int64_t bytes = q.Value();
  if (bytes <= 0) return std::nullopt;
  return (bytes + (1 << 20) - 1) >> 20;
}

bool RequestMatches(const std::vector<std::string>& requests, const std::string& request) {
  if (requests.empty()) return true;
  const std::string parent = request.substr(0, request.find('/'));
  return std::find(requests.begin(), requests.end(), request) != requests.end() ||
         std::find(requests.begin(), requests.end(), parent) != requests.end();
}

}  // namespace

Preparer::Preparer(PreparerOptions options, GpuBackend& backend, CheckpointStore& checkpoint,
                   CdiWriter& cdi, const DeviceNodes& nodes, MpsManager* mps, ClaimReader& claims)
    : options_(std::move(options)),
      backend_(backend),
      checkpoint_(checkpoint),
      cdi_(cdi),
      nodes_(nodes),
      mps_(mps),
      claims_(claims) {}

Preparer::~Preparer() = default;

std::shared_ptr<std::mutex> Preparer::ClaimMutex(const std::string& uid) {
  std::lock_guard<std::mutex> lock(claim_mu_);
  std::shared_ptr<std::mutex> m = claim_locks_[uid].lock();
  if (!m) {
    m = std::make_shared<std::mutex>();
    claim_locks_[uid] = m;
  }
  if (claim_locks_.size() > 1024) {
    std::erase_if(claim_locks_, [](const auto& e) { return e.second.expired(); });
  }
  return m;
}

std::vector<CheckpointStore::RecordPtr> Preparer::OthersThan(const std::string& uid) const {
  std::vector<CheckpointStore::RecordPtr> all = checkpoint_.Snapshot();
  std::erase_if(all, [&](const CheckpointStore::RecordPtr& r) { return r->uid == uid; });
  return all;
}

std::vector<int> Preparer::LockIds(std::vector<int> gpus) const {
  if (options_.lock_scope == LockScope::kNode) return {locks_->node()};
  return gpus;
}

std::vector<int> Preparer::GpusOf(const ClaimRecord& record) const {
  std::vector<int> gpus;
  for (const PreparedDevice& d : record.devices) {
    if (d.gpu >= 0 && d.gpu < static_cast<int>(gpus_.size())) gpus.push_back(d.gpu);
  }
  return gpus;
}

// ---------------------------------------------------------------------------------------------
// Planning: from the allocation to decoded devices with their configuration. No side effects.

absl::StatusOr<std::vector<Preparer::Plan>> Preparer::PlanClaim(
    const ClaimRef& ref, const api::ResourceClaim& claim) const {
  const std::string who = StrCat("claim ", ref.namespace_, "/", ref.name);
  if (claim.metadata.uid != ref.uid) {
    return absl::FailedPreconditionError(StrCat(who, " got replaced: the API server has uid ",
                                                claim.metadata.uid, ", the kubelet asked for ",
                                                ref.uid));
  }
  if (!claim.status.allocation) {
    return absl::FailedPreconditionError(StrCat(who, " is not allocated"));
  }
  const api::DeviceAllocationResult& alloc = claim.status.allocation->devices;
  std::vector<Plan> plans;
  for (const api::DeviceRequestAllocationResult& r : alloc.results) {
    if (r.driver != options_.driver_name) continue;
    if (r.pool != options_.node_name) {
      return absl::FailedPreconditionError(StrCat(who, ": device ", r.pool, "/", r.device,
                                                  " belongs to pool ", r.pool,
                                                  ", this node serves pool ", options_.node_name));
    }
    absl::StatusOr<partitioner::DeviceName> name = partitioner::DeviceName::Parse(r.device);
    if (!name.ok()) {
      return absl::InvalidArgumentError(
          StrCat(who, ": device ", r.device, ": ", name.status().message()));
    }
    if (name->gpu < 0 || name->gpu >= static_cast<int>(gpus_.size())) {
      return absl::FailedPreconditionError(StrCat(who, ": device ", r.device, " names GPU ",
                                                  name->gpu, "; this node has ", gpus_.size()));
    }
    absl::StatusOr<partitioner::ResolvedDevice> resolved =
        partitioner::ResolveDeviceName(r.device, gpus_[name->gpu]->model);
    if (!resolved.ok()) {
      return absl::InvalidArgumentError(
          StrCat(who, ": device ", r.device, ": ", resolved.status().message()));
    }
    // Class configs first, then claim configs; the last one that applies wins.
    std::optional<api::GpuConfig> config;
    for (const std::string_view source : {"FromClass", "FromClaim"}) {
      for (std::size_t i = 0; i < alloc.config.size(); ++i) {
        const api::DeviceAllocationConfiguration& c = alloc.config[i];
        if (c.source != source || !c.opaque || c.opaque->driver != options_.driver_name) continue;
        if (!RequestMatches(c.requests, r.request)) continue;
        absl::StatusOr<api::GpuConfig> parsed = api::ParseGpuConfig(
            c.opaque->parameters,
            StrCat("status.allocation.devices.config[", i, "].opaque.parameters"));
        if (!parsed.ok()) {
          return absl::InvalidArgumentError(StrCat(who, ": ",
                                                   source == "FromClass" ? "DeviceClass" : "claim",
                                                   " config: ", parsed.status().message()));
        }
        config = *std::move(parsed);
      }
    }
    if (config) {
      const bool is_mig = resolved->profile >= 0;
      if (is_mig != (config->kind == api::ConfigKind::kMigConfig)) {
        return absl::InvalidArgumentError(
            StrCat(who, ": device ", r.device, " is ", is_mig ? "a MIG instance" : "a whole GPU",
                   " but its config is a ", api::ToString(config->kind), " (use ",
                   is_mig ? "MigConfig" : "GpuConfig", ")"));
      }
      if (resolved->share && config->sharing) {
        const bool mps = *resolved->share == partitioner::ShareKind::kMps;
        if (mps != (config->sharing->strategy == api::SharingStrategy::kMps)) {
          return absl::InvalidArgumentError(
              StrCat(who, ": device ", r.device, " is a", mps ? "n MPS" : " time-slicing",
                     " share but its config asks for sharing.strategy ",
                     api::ToString(config->sharing->strategy)));
        }
      }
    }
    plans.push_back(Plan{.result = r, .resolved = *resolved, .config = std::move(config)});
  }
  return plans;
}

// ---------------------------------------------------------------------------------------------
// Prepare.

std::map<std::string, PrepareResult> Preparer::Prepare(const std::vector<ClaimRef>& claims) {
  std::map<std::string, PrepareResult> out;
  for (const ClaimRef& ref : claims) {
    if (out.count(ref.uid)) continue;
    PrepareResult r = PrepareOne(ref);
    if (observer_.on_prepare) observer_.on_prepare(ref, r);
    out[ref.uid] = std::move(r);
  }
  return out;
}

PrepareResult Preparer::PrepareOne(const ClaimRef& ref) {
  std::shared_ptr<std::mutex> claim_mu = ClaimMutex(ref.uid);
  std::lock_guard<std::mutex> claim_lock(*claim_mu);
  if (std::optional<ClaimRecord> done = checkpoint_.Get(ref.uid)) {
    if (done->phase == ClaimPhase::kPrepared) {
      return {.devices = done->devices, .error = "", .reason = ""};
    }
    if (done->phase == ClaimPhase::kUnpreparing) {
      return {.devices = {},
              .error = StrCat(Describe(ref), " is being unprepared; retry once that finished"),
              .reason = "busy"};
    }
  }
  if (ref.uid.empty() || ref.namespace_.empty() || ref.name.empty()) {
    return {
        .devices = {}, .error = "claim namespace, name and uid are required", .reason = "claim"};
  }
  absl::StatusOr<api::ResourceClaim> claim = claims_.Get(ref.namespace_, ref.name);
  if (!claim.ok()) {
    return {.devices = {},
            .error =
                StrCat("get claim ", ref.namespace_, "/", ref.name, ": ", claim.status().message()),
            .reason = "get-claim"};
  }
  absl::StatusOr<std::vector<Plan>> plans = PlanClaim(ref, *claim);
  if (!plans.ok()) {
    return {.devices = {},
            .error = std::string(plans.status().message()),
            .reason = absl::IsInvalidArgument(plans.status()) ? "config" : "claim"};
  }

  std::vector<int> gpus;
  for (const Plan& p : *plans) gpus.push_back(p.resolved.gpu);
  ClaimRecord record{.uid = ref.uid,
                     .namespace_ = ref.namespace_,
                     .name = ref.name,
                     .phase = ClaimPhase::kPreparing,
                     .devices = {}};
  // LockScope::kNode: one lock around everything that follows, rollback included.
  std::optional<GpuLocks::Held> node_held;
  if (options_.lock_scope == LockScope::kNode) node_held.emplace(*locks_, LockIds(gpus));
  absl::Status s;
  {
    // The GPUs are held while the partition changes: intent, MIG instance, MPS daemon, time
    // slice. The CDI spec and the final record concern this claim alone and are written after
    // the lock is released, so the next claim on the GPU does not wait for those disk writes.
    std::optional<GpuLocks::Held> held;
    if (!node_held) held.emplace(*locks_, LockIds(gpus));
    // A half-done attempt of this process (its rollback failed) is undone first.
    if (std::optional<ClaimRecord> stale = checkpoint_.Get(ref.uid)) {
      if (absl::Status undo = Release(*stale, false); !undo.ok()) {
        return {.devices = {},
                .error = StrCat(Describe(ref), ": undoing an earlier attempt: ", undo.message()),
                .reason = "actuation"};
      }
    }
    s = Actuate(record, *plans);
  }
  if (s.ok()) s = Commit(record);
  if (s.ok()) {
    fault::Reached("prepare.done");
    spdlog::info("{}: prepared {} device(s)", Describe(ref), record.devices.size());
    return {.devices = record.devices, .error = "", .reason = ""};
  }
  std::optional<GpuLocks::Held> held;
  if (!node_held) held.emplace(*locks_, LockIds(gpus));
  const std::string reason = absl::IsFailedPrecondition(s) ? "conflict" : "actuation";
  spdlog::warn("{}: prepare failed: {}; rolling back", Describe(ref), std::string(s.message()));
  if (absl::Status undo = Release(record, false); !undo.ok()) {
    spdlog::error("{}: rollback incomplete ({}); the record stays for the next attempt",
                  Describe(ref), std::string(undo.message()));
    return {.devices = {},
            .error = StrCat(s.message(), "; rollback incomplete: ", undo.message()),
            .reason = reason};
  }
  if (absl::Status e = checkpoint_.Erase(ref.uid); !e.ok())
    spdlog::error("{}", std::string(e.message()));
  return {.devices = {}, .error = std::string(s.message()), .reason = reason};
}

absl::Status Preparer::Actuate(ClaimRecord& record, const std::vector<Plan>& plans) {
  const std::vector<CheckpointStore::RecordPtr> others = OthersThan(record.uid);
  // Intent first: every device with what it will need, before anything happens.
  for (const Plan& p : plans) {
    const Gpu& gpu = *gpus_[p.resolved.gpu];
    PreparedDevice d{.requests = {p.result.ParentRequest()},
                     .pool = p.result.pool,
                     .device = p.result.device,
                     .share_id = p.result.share_id,
                     .gpu = p.resolved.gpu,
                     .gpu_uuid = gpu.info.uuid};
    if (p.resolved.profile >= 0) {
      const partitioner::GiProfile& prof = gpu.model.profiles[p.resolved.profile];
      d.mig = MigRecord{.profile = prof.name,
                        .profile_id = prof.nvml_id,
                        .placement = {p.resolved.placement.start, p.resolved.placement.size}};
    }
    std::optional<api::SharingStrategy> strategy;
    if (p.resolved.share) {
      strategy = *p.resolved.share == partitioner::ShareKind::kMps
                     ? api::SharingStrategy::kMps
                     : api::SharingStrategy::kTimeSlicing;
    } else if (p.config && p.config->sharing) {
      strategy = p.config->sharing->strategy;  // claim-internal sharing of an exclusive device
    }
    if (strategy == api::SharingStrategy::kMps) {
      d.sharing = ShareStrategy::kMps;
      api::MpsLimits limits;
      if (p.config && p.config->sharing && p.config->sharing->mps) {
        limits = p.config->sharing->mps->For(d.device, d.gpu_uuid);
      }
      d.active_thread_percentage = limits.active_thread_percentage;
      if (!d.active_thread_percentage) {
        if (auto it = p.result.consumed_capacity.find("compute");
            it != p.result.consumed_capacity.end()) {
          d.active_thread_percentage = static_cast<int>(it->second.Value());
        }
      }
      if (limits.pinned_device_memory_limit) {
        d.pinned_memory_limit_mib = Mebibytes(*limits.pinned_device_memory_limit);
      } else if (auto it = p.result.consumed_capacity.find("memory");
                 it != p.result.consumed_capacity.end()) {
        d.pinned_memory_limit_mib = Mebibytes(it->second);
      }
    } else if (strategy == api::SharingStrategy::kTimeSlicing) {
      d.sharing = ShareStrategy::kTimeSlicing;
      d.time_slice = api::TimeSliceInterval::kDefault;
      if (p.config && p.config->sharing && p.config->sharing->time_slicing &&
          p.config->sharing->time_slicing->interval) {
        d.time_slice = *p.config->sharing->time_slicing->interval;
      }
    }
    // The last line of defence: never hand out what another claim holds.
    const bool shared = SharedDeviceName(d.device);
    for (const CheckpointStore::RecordPtr& o : others) {
      for (const PreparedDevice& od : o->devices) {
        if (Conflict(d, od, shared, SharedDeviceName(od.device))) {
          return absl::FailedPreconditionError(
              StrCat("device ", d.device, " conflicts with ", od.device, " prepared for claim ",
                     o->namespace_, "/", o->name, " (uid ", o->uid, ")"));
        }
        if (d.time_slice && od.time_slice && od.gpu == d.gpu && *od.time_slice != *d.time_slice) {
          return absl::FailedPreconditionError(
              StrCat("GPU ", d.gpu, " runs time-slice interval ", api::ToString(*od.time_slice),
                     " for claim ", o->namespace_, "/", o->name, "; this claim asks for ",
                     api::ToString(*d.time_slice)));
        }
      }
    }
    if (d.mig) PlanMig(others, d);
    record.devices.push_back(std::move(d));
  }
  if (absl::Status s = checkpoint_.Put(record); !s.ok()) return s;
  fault::Reached("prepare.recorded");

  for (std::size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].resolved.profile >= 0) {
      if (absl::Status s = ActuateMig(record, record.devices[i]); !s.ok()) return s;
    }
    if (record.devices[i].sharing != ShareStrategy::kNone) {
      if (absl::Status s = ActuateSharing(record, record.devices[i]); !s.ok()) return s;
      fault::Reached("prepare.shared");
    }
  }
  return absl::OkStatus();
}

absl::Status Preparer::Commit(ClaimRecord& record) {
  for (PreparedDevice& d : record.devices) {
    d.cdi_ids = {cdi_.QualifiedName(record.uid, d.device)};
  }
  // The spec carries the record as prepared, in its journal form; the journal then gets the same
  // line.
  const std::string encoded = EncodePrepared(record);
  if (absl::Status s = WriteCdi(record, encoded); !s.ok()) return s;
  fault::Reached("prepare.cdi-written");
  record.phase = ClaimPhase::kPrepared;
  return checkpoint_.Put(record, encoded);
}

// The MIG half of the intent, decided under the GPU lock: a share device joins the instance other
// claims already run on, an instance nobody prepared (a static layout, or one an admin made) is
// adopted and never destroyed, and otherwise tessera will create it (gi_id -1 until it exists).
void Preparer::PlanMig(const std::vector<CheckpointStore::RecordPtr>& others,
                       PreparedDevice& d) const {
  const Gpu& gpu = *gpus_[d.gpu];
  MigRecord& mig = *d.mig;
  for (const api::MigInstanceInfo& i : gpu.instances) {
    if (i.placement != mig.placement || i.profile != mig.profile) continue;
    mig.gi_id = i.gpu_instance_id;
    mig.ci_id = i.compute_instance_id;
    mig.uuid = i.uuid;
    mig.created_by_tessera = false;
    for (const CheckpointStore::RecordPtr& o : others) {
      for (const PreparedDevice& od : o->devices) {
        if (od.gpu == d.gpu && od.mig && od.mig->gi_id == mig.gi_id) {
          mig.created_by_tessera = od.mig->created_by_tessera;
        }
      }
    }
    return;
  }
  mig.created_by_tessera = true;
  mig.gi_id = -1;
}

absl::Status Preparer::ActuateMig(ClaimRecord& record, PreparedDevice& d) {
  MigRecord& mig = *d.mig;
  if (mig.gi_id >= 0) return absl::OkStatus();  // joined or adopted
  Gpu& gpu = *gpus_[d.gpu];
  absl::StatusOr<api::MigInstanceInfo> created =
      backend_.CreateMigInstance(d.gpu, mig.profile_id, mig.placement);
  if (!created.ok()) {
    // Not created: the record must no longer claim the placement's instance as ours.
    mig.created_by_tessera = false;
    if (NvmlErrorOf(created.status()) == NvmlError::kInsufficientResources) {
      // Ambiguous in NVML: re-read the GPU before deciding anything. An instance made behind our
      // back (an admin's static layout) is adopted like one found at start.
      if (absl::StatusOr<NodeInventory> inv = backend_.Discover(); inv.ok()) {
        gpu.instances = inv->gpus[d.gpu].mig_instances;
        PlanMig(OthersThan(record.uid), d);
        if (mig.gi_id >= 0) return checkpoint_.Put(record);
        mig.created_by_tessera = false;
      }
      (void)checkpoint_.Put(record);
      return absl::FailedPreconditionError(
          StrCat("MIG ", mig.profile, " at memory slice ", mig.placement.start, " on GPU ", d.gpu,
                 " cannot be created (", created.status().message(),
                 "); the GPU's instances were re-read for the next attempt"));
    }
    (void)checkpoint_.Put(record);
    return created.status();
  }
  // Not written down yet: a crash now leaves the intent (created_by_tessera, gi_id -1), and the
  // restarted plugin finds the instance at its placement and destroys it.
  fault::Reached("prepare.mig-created");
  mig.gi_id = created->gpu_instance_id;
  mig.ci_id = created->compute_instance_id;
  mig.uuid = created->uuid;
  api::MigInstanceInfo live = *created;
  live.created_by_tessera = true;
  gpu.instances.push_back(std::move(live));
  return absl::OkStatus();
}

absl::Status Preparer::ActuateSharing(const ClaimRecord& record, PreparedDevice& d) {
  if (d.sharing == ShareStrategy::kTimeSlicing) {
    return backend_.SetTimeSlice(d.gpu, d.time_slice.value_or(api::TimeSliceInterval::kDefault));
  }
  if (mps_ == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("device ", d.device,
               " needs MPS but the plugin runs without an MPS control "
               "binary (--mps-control-binary)"));
  }
  d.mps_device_uuid = d.mig ? d.mig->uuid : d.gpu_uuid;
  absl::StatusOr<MpsDaemon> daemon = mps_->Ensure(d.mps_device_uuid);
  if (!daemon.ok()) return daemon.status();
  (void)record;
  return absl::OkStatus();
}

std::string Preparer::EncodePrepared(ClaimRecord record) const {
  record.phase = ClaimPhase::kPrepared;
  return CheckpointStore::Encode(record, checkpoint_.boot_id());
}

absl::Status Preparer::WriteCdi(const ClaimRecord& record, const std::string& encoded) {
  CdiClaimSpec spec;
  std::vector<std::string> uuids;
  for (const PreparedDevice& d : record.devices) {
    CdiDevice dev{.name = d.device, .edits = {}};
    const Gpu& gpu = *gpus_[d.gpu];
    dev.edits.device_nodes.push_back(nodes_.Gpu(gpu.info.minor_number));
    if (d.mig) {
      absl::StatusOr<std::vector<CdiDeviceNode>> caps =
          nodes_.MigAccess(gpu.info.minor_number, d.mig->gi_id, d.mig->ci_id);
      if (!caps.ok()) return caps.status();
      dev.edits.device_nodes.insert(dev.edits.device_nodes.end(), caps->begin(), caps->end());
    }
    const std::string uuid = d.mig ? d.mig->uuid : d.gpu_uuid;
    uuids.push_back(uuid);
    if (d.sharing == ShareStrategy::kMps && mps_ != nullptr) {
      absl::StatusOr<MpsDaemon> daemon = mps_->Ensure(d.mps_device_uuid);
      if (!daemon.ok()) return daemon.status();
      dev.edits.env.push_back(StrCat("CUDA_MPS_PIPE_DIRECTORY=", options_.mps_container_pipe_dir));
      dev.edits.mounts.push_back({.host_path = daemon->pipe_dir,
                                  .container_path = options_.mps_container_pipe_dir,
                                  .options = {"rbind", "rw"}});
      dev.edits.mounts.push_back(
          {.host_path = daemon->shm_dir, .container_path = "/dev/shm", .options = {"rbind", "rw"}});
      if (d.active_thread_percentage) {
        dev.edits.env.push_back(
            StrCat("CUDA_MPS_ACTIVE_THREAD_PERCENTAGE=", *d.active_thread_percentage));
      }
      if (d.pinned_memory_limit_mib) {
        dev.edits.env.push_back(
            StrCat("CUDA_MPS_PINNED_DEVICE_MEM_LIMIT=0=", *d.pinned_memory_limit_mib, "M"));
      }
    }
    spec.devices.push_back(std::move(dev));
  }
  spec.common.device_nodes = nodes_.Common();
  // void: an NVIDIA container runtime hook on the node must not inject the driver a second time.
  spec.common.env = {StrCat("CUDA_VISIBLE_DEVICES=", StrJoin(uuids, ",")),
                     "NVIDIA_VISIBLE_DEVICES=void"};
  if (options_.driver_files != nullptr) spec.common.mounts = options_.driver_files->Mounts();
  spec.annotations["tessera.dev/claim"] = StrCat(record.namespace_, "/", record.name);
  spec.annotations["tessera.dev/record"] = encoded;
  return cdi_.Write(record.uid, spec);
}

// ---------------------------------------------------------------------------------------------
// Unprepare and release.

std::map<std::string, std::string> Preparer::Unprepare(const std::vector<ClaimRef>& claims) {
  std::map<std::string, std::string> out;
  for (const ClaimRef& ref : claims) {
    if (out.count(ref.uid)) continue;
    std::string error = UnprepareOne(ref);
    if (observer_.on_unprepare) observer_.on_unprepare(ref, error);
    out[ref.uid] = std::move(error);
  }
  return out;
}

std::string Preparer::UnprepareOne(const ClaimRef& ref) {
  std::shared_ptr<std::mutex> claim_mu = ClaimMutex(ref.uid);
  std::lock_guard<std::mutex> claim_lock(*claim_mu);
  std::optional<ClaimRecord> record = checkpoint_.Get(ref.uid);
  if (!record) {
    // Unknown: never prepared here, or already unprepared. A CDI spec left by a lost checkpoint
    // must not outlive the claim.
    std::optional<GpuLocks::Held> node_held;
    if (options_.lock_scope == LockScope::kNode) node_held.emplace(*locks_, LockIds({}));
    if (absl::Status s = cdi_.Remove(ref.uid); !s.ok()) return std::string(s.message());
    return "";
  }
  GpuLocks::Held held(*locks_, LockIds(GpusOf(*record)));
  record->phase = ClaimPhase::kUnpreparing;
  if (absl::Status s = checkpoint_.Put(*record); !s.ok()) return std::string(s.message());
  fault::Reached("unprepare.recorded");
  if (absl::Status s = Release(*record, true); !s.ok()) {
    spdlog::warn("{}: unprepare incomplete: {}", Describe(ref), std::string(s.message()));
    return StrCat(Describe(ref), ": ", s.message());
  }
  if (absl::Status s = checkpoint_.Erase(ref.uid); !s.ok()) return std::string(s.message());
  fault::Reached("unprepare.done");
  spdlog::info("{}: unprepared", Describe(ref));
  return "";
}

absl::Status Preparer::Release(ClaimRecord& record, bool crash_points) {
  auto reached = [&](std::string_view point) {
    if (crash_points) fault::Reached(point);
  };
  if (absl::Status s = cdi_.Remove(record.uid); !s.ok()) return s;
  reached("unprepare.cdi-removed");
  const std::vector<CheckpointStore::RecordPtr> others = OthersThan(record.uid);
  auto used_elsewhere = [&](const std::function<bool(const PreparedDevice&)>& uses) {
    for (const CheckpointStore::RecordPtr& o : others) {
      for (const PreparedDevice& od : o->devices) {
        if (uses(od)) return true;
      }
    }
    return false;
  };
  for (auto it = record.devices.rbegin(); it != record.devices.rend(); ++it) {
    PreparedDevice& d = *it;
    if (d.sharing == ShareStrategy::kMps && !d.mps_device_uuid.empty() && mps_ != nullptr) {
      const std::string uuid = d.mps_device_uuid;
      // A claim still preparing on this GPU may be about to use the daemon (its record gets the
      // daemon's UUID only when it is committed): leave the daemon to that claim.
      const bool preparing_nearby = std::any_of(others.begin(), others.end(), [&](const auto& o) {
        return o->phase == ClaimPhase::kPreparing &&
               std::any_of(o->devices.begin(), o->devices.end(), [&](const PreparedDevice& od) {
                 return od.gpu == d.gpu && od.sharing == ShareStrategy::kMps;
               });
      });
      if (!preparing_nearby &&
          !used_elsewhere([&](const PreparedDevice& od) { return od.mps_device_uuid == uuid; })) {
        if (absl::Status s = mps_->Stop(uuid); !s.ok()) return s;
      }
      d.mps_device_uuid.clear();
      reached("unprepare.shared");
    }
    if (d.time_slice) {
      const int gpu = d.gpu;
      if (!used_elsewhere(
              [&](const PreparedDevice& od) { return od.gpu == gpu && od.time_slice; })) {
        if (absl::Status s = backend_.SetTimeSlice(gpu, api::TimeSliceInterval::kDefault);
            !s.ok()) {
          return s;
        }
      }
      d.time_slice.reset();
      reached("unprepare.shared");
    }
    if (d.mig && d.mig->created_by_tessera) {
      const int gpu_index = d.gpu;
      const MigRecord mig = *d.mig;
      Gpu& gpu = *gpus_[gpu_index];
      const bool shared = used_elsewhere([&](const PreparedDevice& od) {
        return od.gpu == gpu_index && od.mig && od.mig->placement == mig.placement &&
               od.mig->gi_id >= 0;
      });
      if (!shared) {
        int gi = mig.gi_id;
        if (gi < 0) {
          // Created but not recorded (a crash in between): the instance at the placement is ours,
          // because the intent was recorded while the placement was free.
          absl::StatusOr<NodeInventory> inv = backend_.Discover();
          if (!inv.ok()) return inv.status();
          gpu.instances = inv->gpus[gpu_index].mig_instances;
          for (const api::MigInstanceInfo& i : gpu.instances) {
            if (i.placement == mig.placement && i.profile == mig.profile) gi = i.gpu_instance_id;
          }
        }
        if (gi >= 0) {
          absl::Status s = backend_.DestroyMigInstance(gpu_index, gi);
          if (!s.ok() && NvmlErrorOf(s) != NvmlError::kNotFound) {
            return absl::Status(s.code(), StrCat("destroying MIG ", mig.profile, " (GI ", gi,
                                                 ") on GPU ", gpu_index, ": ", s.message()));
          }
          std::erase_if(gpu.instances,
                        [&](const api::MigInstanceInfo& i) { return i.gpu_instance_id == gi; });
          reached("unprepare.mig-destroyed");
        }
      }
    }
    d.mig.reset();
    // With more devices to go, write down what is undone so that a crash does not undo it twice
    // (GI IDs are reused). The last device needs no write: the caller erases the record, and a
    // crash before that finds the instance already gone (NOT_FOUND is success).
    if (std::next(it) != record.devices.rend()) {
      if (absl::Status s = checkpoint_.Put(record); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

// ---------------------------------------------------------------------------------------------
// Start-up and reporting.

absl::StatusOr<ReconcileReport> Preparer::Start() {
  absl::StatusOr<NodeInventory> inv = backend_.Discover();
  if (!inv.ok()) return inv.status();
  driver_version_ = inv->driver_version;
  cuda_driver_version_ = inv->cuda_driver_version;
  for (const api::GpuInfo& info : inv->gpus) {
    auto gpu = std::make_unique<Gpu>();
    gpu->info = info;
    absl::StatusOr<partitioner::GpuModel> model =
        partitioner::ModelFromInventory(info, inv->driver_version);
    if (model.ok()) {
      gpu->model = *std::move(model);
    } else {
      spdlog::warn("GPU {} ({}): {}; only whole-GPU devices can be prepared on it", info.index,
                   info.product, std::string(model.status().message()));
      gpu->model.key = info.model;
      gpu->model.product_name = info.product;
    }
    gpu->instances = info.mig_instances;
    gpus_.push_back(std::move(gpu));
  }
  if (!options_.lock_dir.empty()) ::mkdir(options_.lock_dir.c_str(), 0700);
  locks_ = std::make_unique<GpuLocks>(gpus_, options_.lock_dir);

  ReconcileReport report;
  // Claims whose checkpoint is gone but whose CDI spec says they were prepared.
  absl::StatusOr<std::vector<std::string>> specs = cdi_.ListClaims();
  if (!specs.ok()) return specs.status();
  for (const std::string& uid : *specs) {
    if (checkpoint_.Get(uid)) continue;
    absl::StatusOr<CdiClaimSpec> spec = cdi_.Read(uid);
    std::string boot;
    absl::StatusOr<ClaimRecord> record =
        spec.ok() && spec->annotations.count("tessera.dev/record")
            ? CheckpointStore::Decode(spec->annotations.at("tessera.dev/record"), &boot)
            : absl::StatusOr<ClaimRecord>(absl::DataLossError("no tessera.dev/record"));
    if (record.ok() && boot != checkpoint_.boot_id()) continue;  // another boot: swept below
    if (!record.ok() || record->uid != uid) {
      report.problems.push_back(StrCat("CDI spec of claim ", uid, " cannot be read back (",
                                       record.ok() ? "uid differs" : record.status().message(),
                                       "); it is removed"));
      continue;
    }
    if (absl::Status s = checkpoint_.Put(*record); !s.ok()) return s;
    report.restored.push_back(uid);
  }
  // Half-done claims: prepares roll back, unprepares finish.
  for (ClaimRecord& r : checkpoint_.All()) {
    if (r.phase == ClaimPhase::kPrepared) {
      for (const PreparedDevice& d : r.devices) {
        if (d.mig && d.mig->gi_id >= 0) {
          const auto& live = gpus_[d.gpu]->instances;
          const bool present = std::any_of(live.begin(), live.end(), [&](const auto& i) {
            return i.gpu_instance_id == d.mig->gi_id;
          });
          if (!present) {
            report.problems.push_back(StrCat("claim ", r.namespace_, "/", r.name, ": MIG GI ",
                                             d.mig->gi_id, " on GPU ", d.gpu,
                                             " is gone (reset?); unprepare will skip it"));
          }
        }
        if (d.sharing == ShareStrategy::kMps && mps_ != nullptr && !d.mps_device_uuid.empty()) {
          if (absl::StatusOr<MpsDaemon> daemon = mps_->Ensure(d.mps_device_uuid); !daemon.ok()) {
            report.problems.push_back(StrCat("claim ", r.namespace_, "/", r.name,
                                             ": MPS daemon: ", daemon.status().message()));
          }
        }
      }
      continue;
    }
    const bool preparing = r.phase == ClaimPhase::kPreparing;
    if (absl::Status s = Release(r, false); !s.ok()) {
      report.problems.push_back(StrCat("claim ", r.namespace_, "/", r.name, ": ",
                                       preparing ? "rollback" : "unprepare", ": ", s.message()));
      continue;
    }
    if (absl::Status s = checkpoint_.Erase(r.uid); !s.ok()) return s;
    (preparing ? report.rolled_back : report.finished).push_back(r.uid);
  }
  // What no claim owns any more.
  std::set<std::string> keep;
  std::set<std::string> mps_keep;
  for (const ClaimRecord& r : checkpoint_.All()) {
    keep.insert(r.uid);
    for (const PreparedDevice& d : r.devices) mps_keep.insert(d.mps_device_uuid);
  }
  absl::StatusOr<std::vector<std::string>> swept = cdi_.Sweep(keep);
  if (!swept.ok()) return swept.status();
  report.stray_cdi = *swept;
  if (mps_ != nullptr) {
    for (const MpsDaemon& daemon : mps_->List()) {
      if (mps_keep.count(daemon.device_uuid)) continue;
      if (absl::Status s = mps_->Stop(daemon.device_uuid); !s.ok()) {
        report.problems.push_back(StrCat("stray MPS daemon ", daemon.id, ": ", s.message()));
        continue;
      }
      report.stray_mps.push_back(daemon.id);
    }
  }
  // Prepared claims must have their CDI spec (it may have lived on a tmpfs that was cleared).
  absl::StatusOr<std::vector<std::string>> present = cdi_.ListClaims();
  if (!present.ok()) return present.status();
  for (const ClaimRecord& r : checkpoint_.All()) {
    if (std::find(present->begin(), present->end(), r.uid) != present->end()) continue;
    if (absl::Status s = WriteCdi(r, EncodePrepared(r)); !s.ok()) {
      report.problems.push_back(
          StrCat("claim ", r.namespace_, "/", r.name, ": rewriting its CDI spec: ", s.message()));
    }
  }
  for (const auto& gpu : gpus_) {
    for (const api::MigInstanceInfo& i : gpu->instances) {
      bool owned = false;
      for (const ClaimRecord& r : checkpoint_.All()) {
        for (const PreparedDevice& d : r.devices) {
          owned |= d.gpu == gpu->info.index && d.mig && d.mig->gi_id == i.gpu_instance_id;
        }
      }
      if (!owned) {
        spdlog::info(
            "GPU {}: MIG {} at slice {} (GI {}) belongs to no claim; tessera did not "
            "record creating it and leaves it alone",
            gpu->info.index, i.profile, i.placement.start, i.gpu_instance_id);
      }
    }
  }
  return report;
}

absl::StatusOr<NodeInventory> Preparer::Inventory() {
  absl::StatusOr<NodeInventory> inv = backend_.Discover();
  if (!inv.ok()) return inv.status();
  const std::vector<ClaimRecord> records = checkpoint_.All();
  for (api::GpuInfo& gpu : inv->gpus) {
    for (api::MigInstanceInfo& i : gpu.mig_instances) {
      for (const ClaimRecord& r : records) {
        for (const PreparedDevice& d : r.devices) {
          if (d.gpu == gpu.index && d.mig && d.mig->gi_id == i.gpu_instance_id) {
            i.owner_claim =
                api::ClaimReference{.namespace_ = r.namespace_, .name = r.name, .uid = r.uid};
            i.created_by_tessera = d.mig->created_by_tessera;
          }
        }
      }
    }
    for (const ClaimRecord& r : records) {
      for (const PreparedDevice& d : r.devices) {
        if (d.gpu != gpu.index || d.sharing == ShareStrategy::kNone) continue;
        api::ShareInfo share{.device = d.device,
                             .strategy = d.sharing == ShareStrategy::kMps
                                             ? api::SharingStrategy::kMps
                                             : api::SharingStrategy::kTimeSlicing,
                             .claim = {.namespace_ = r.namespace_, .name = r.name, .uid = r.uid},
                             .active_thread_percentage = d.active_thread_percentage,
                             .pinned_device_memory_limit = std::nullopt};
        if (d.pinned_memory_limit_mib) {
          share.pinned_device_memory_limit = api::Quantity::FromInt64(
              *d.pinned_memory_limit_mib << 20, api::Quantity::Format::kBinarySI);
        }
        gpu.shares.push_back(std::move(share));
      }
    }
  }
  return inv;
}

absl::StatusOr<std::vector<Preparer::DeviceHealth>> Preparer::Health() {
  absl::StatusOr<NodeInventory> inv = backend_.Discover();
  if (!inv.ok()) return inv.status();
  std::vector<DeviceHealth> out;
  std::set<std::string> seen;
  auto add = [&](const std::string& device, int gpu) {
    if (gpu < 0 || gpu >= static_cast<int>(inv->gpus.size()) || !seen.insert(device).second) {
      return;
    }
    const api::GpuInfo& info = inv->gpus[gpu];
    out.push_back({.device = device, .health = info.health, .message = info.health_message});
  };
  for (const api::GpuInfo& gpu : inv->gpus) add(StrCat("gpu-", gpu.index), gpu.index);
  for (const ClaimRecord& r : checkpoint_.All()) {
    for (const PreparedDevice& d : r.devices) add(d.device, d.gpu);
  }
  return out;
}

}  // namespace tessera::plugin
