#ifndef TESSERA_PLUGIN_CHECKPOINT_H_
#define TESSERA_PLUGIN_CHECKPOINT_H_

// What the plugin has done to the node, per claim, on disk: the plugin's memory across crashes,
// restarts and rolling updates.
//
// One journal per node, <dir>/claims.log (format: checkpoint.cc): a header with the format
// version, then one line per change, in order: the claim's whole record, or its erasure. Each
// record line carries the record's format version, the node's boot ID and a checksum:
//
//   {"version": 1, "bootID": "…", "checksum": "fnv1a64:…", "record": {…}}
//
// A change is one append (AppendLog, files.h): no file is created, renamed or deleted per change,
// which on ext4 cost more CPU than the rest of a prepare. A plugin killed in the middle of an
// append leaves a torn last line that was never acknowledged and is ignored. Concurrent plugin
// processes (a rolling update) append under an flock and never lose each other's lines. The
// journal is rewritten (temp file, rename) at Open and when it has grown to several times its
// live size.
//
// Every step of prepare and unprepare is written before it acts (phase kPreparing/kUnpreparing
// with what it is about to do: the MIG placement before the instance exists) and after (the GI ID
// once it exists, kPrepared once the CDI spec is written), so that a plugin restarting at any point
// can finish or roll back.
//
// Loading (Open): records of another boot are dropped (MIG instances, MPS daemons and
// /var/run/cdi do not survive a reboot) and reported. A journal with a bad header or a bad
// complete line is copied to <dir>/corrupt/ and reported, never silently deleted; its claims are
// then unknown (Preparer::Start restores prepared ones from their CDI specs). Per-claim files of
// format 1 (<dir>/<uid>.json, one file per claim, which earlier versions wrote) are migrated into
// the journal and removed; one that does not parse, has the wrong version or a bad checksum is
// moved to <dir>/corrupt/ as before. An earlier version started on a migrated node finds no
// per-claim files and restores its prepared claims from their CDI specs.
//
// Durability follows from the boot scope. Everything that can lose a write(2) that has returned
// (power loss, a kernel crash, a hard reset) also ends the boot, and the next start drops every
// record of the old boot. So with a known boot ID nothing is fsynced: an fsync would only preserve
// what the next start throws away. With an empty boot ID (unreadable) reboots cannot be told from
// restarts and every change is on disk before Put/Erase return; concurrent changes share their
// fdatasync (group commit).
//
// Thread-safe. Callers serialise writes for one claim.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "tessera/api/crd.h"
#include "tessera/api/gpu_config.h"
#include "tessera/api/quantity.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {

// A MIG instance a prepared device runs in.
struct MigRecord {
  std::string profile{};  // "3g.40gb"
  int profile_id = 0;     // NVML GPU-instance profile ID
  api::Placement placement{};
  int gi_id =
      -1;  // -1: not created yet (the intent is recorded, the instance may or may not exist)
  int ci_id = 0;
  std::string uuid{};
  bool created_by_tessera = false;  // only such instances are ever destroyed
  bool operator==(const MigRecord&) const = default;
};

enum class ShareStrategy { kNone, kMps, kTimeSlicing };

struct PreparedDevice {
  std::vector<std::string> requests{};  // top-level request names the device serves
  std::string pool{};
  std::string device{};  // the allocated device name, e.g. "gpu-3-mig-3g40gb-p4-mps"
  std::optional<std::string> share_id{};
  int gpu = 0;  // GPU index on this node
  std::string gpu_uuid{};
  std::optional<MigRecord> mig{};
  ShareStrategy sharing = ShareStrategy::kNone;
  // MPS: the daemon serves this device (GPU or MIG UUID); the client limits.
  std::string mps_device_uuid{};
  std::optional<int> active_thread_percentage{};
  std::optional<int64_t> pinned_memory_limit_mib{};
  std::optional<api::TimeSliceInterval> time_slice{};
  std::vector<std::string> cdi_ids{};
  bool operator==(const PreparedDevice&) const = default;
};

enum class ClaimPhase { kPreparing, kPrepared, kUnpreparing };
std::string_view ToString(ClaimPhase phase);

struct ClaimRecord {
  std::string uid{};
  std::string namespace_{};
  std::string name{};
  ClaimPhase phase = ClaimPhase::kPreparing;
  std::vector<PreparedDevice> devices{};
  bool operator==(const ClaimRecord&) const = default;
};

struct CheckpointLoadReport {
  int loaded = 0;
  std::vector<std::string> corrupt{};     // where each corrupt file was moved, and why
  std::vector<std::string> other_boot{};  // claim UIDs dropped because the node rebooted
};

class CheckpointStore {
 public:
  // Creates `dir` (0700) if needed, loads every record of boot `boot_id` (migrating per-claim
  // files of format 1) and rewrites the journal with them.
  static absl::StatusOr<std::unique_ptr<CheckpointStore>> Open(std::string dir, std::string boot_id,
                                                               CheckpointLoadReport* report);
  // <dir>/claims.log
  static std::string JournalPath(const std::string& dir);

  const std::string& boot_id() const { return boot_id_; }
  // Whether writes are fsynced: only when the boot ID is unknown (see above).
  bool sync() const { return boot_id_.empty(); }
  std::optional<ClaimRecord> Get(const std::string& uid) const;
  std::vector<ClaimRecord> All() const;
  // The records as they are now, shared rather than copied (a prepare looks at every other claim).
  using RecordPtr = std::shared_ptr<const ClaimRecord>;
  std::vector<RecordPtr> Snapshot() const;
  // Appends the record to the journal and makes it visible to Get/All. `encoded`, if given, must
  // be Encode(record, boot_id()) (a caller that needed it anyway saves the second encoding).
  absl::Status Put(const ClaimRecord& record, std::string encoded = "");
  // Appends the claim's erasure (unknown: a no-op line).
  absl::Status Erase(const std::string& uid);

  // One record in its file format (also a journal line's and the CDI spec annotation's), for the
  // CDI spec, tests and the format-1 files.
  static std::string Encode(const ClaimRecord& record, const std::string& boot_id);
  // DataLoss naming what is wrong; `boot_id` receives the record's boot ID.
  static absl::StatusOr<ClaimRecord> Decode(const std::string& text, std::string* boot_id);

 private:
  CheckpointStore(std::string dir, std::string boot_id)
      : dir_(std::move(dir)), boot_id_(std::move(boot_id)) {}
  // Appends `line` and calls `apply` (which changes records_) under mu_; waits for the disk with
  // sync(); rewrites the journal when it has grown enough.
  absl::Status Append(const std::string& line, const std::function<void()>& apply);
  bool NeedsCompaction() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Compact();

  const std::string dir_;
  const std::string boot_id_;
  std::unique_ptr<AppendLog> log_;
  mutable std::mutex mu_;
  std::map<std::string, RecordPtr> records_ ABSL_GUARDED_BY(mu_);
  uint64_t journal_size_ ABSL_GUARDED_BY(mu_) = 0;    // after this process's last change
  uint64_t compacted_size_ ABSL_GUARDED_BY(mu_) = 0;  // the journal's size after its last rewrite
  // The journal holds claims records_ does not (another plugin process wrote them): compact from
  // the file, not from records_.
  bool foreign_claims_ ABSL_GUARDED_BY(mu_) = false;
};

// The kernel's boot ID (/proc/sys/kernel/random/boot_id), trimmed; empty if it cannot be read.
std::string ReadBootId(const std::string& path = "/proc/sys/kernel/random/boot_id");

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_CHECKPOINT_H_
