#ifndef TESSERA_PLUGIN_CHECKPOINT_H_
#define TESSERA_PLUGIN_CHECKPOINT_H_

// What the plugin has done to the node, per claim, on disk: the plugin's memory across crashes,
// restarts and rolling updates.
//
// One file per claim, <dir>/<claim uid>.json, written crash-safely (temp file, fsync, rename,
// fsync of the directory) so claims on different GPUs never wait for each other's writes. Each file
// carries a format version, the node's boot ID and a checksum of its record:
//
//   {"version": 1, "bootID": "…", "checksum": "fnv1a64:…", "record": {…}}
//
// Every step of prepare and unprepare is written before it acts (phase kPreparing/kUnpreparing
// with what it is about to do: the MIG placement before the instance exists) and after (the GI ID
// once it exists, kPrepared once the CDI spec is written), so that a plugin restarting at any point
// can finish or roll back.
//
// Loading: a file of another boot is dropped (MIG instances, MPS daemons and /var/run/cdi do not
// survive a reboot) and reported; a file that does not parse, has the wrong version or a bad
// checksum is moved aside to <dir>/corrupt/ and reported, never silently deleted.
//
// Thread-safe. Callers serialise writes for one claim.

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
  // Creates `dir` (0700) if needed and loads every record of boot `boot_id`.
  static absl::StatusOr<std::unique_ptr<CheckpointStore>> Open(std::string dir, std::string boot_id,
                                                               CheckpointLoadReport* report);

  const std::string& boot_id() const { return boot_id_; }
  std::optional<ClaimRecord> Get(const std::string& uid) const;
  std::vector<ClaimRecord> All() const;
  // Writes the record to disk, then makes it visible to Get/All.
  absl::Status Put(const ClaimRecord& record);
  // Removes the claim's file (absent: OK).
  absl::Status Erase(const std::string& uid);

  // The file format, exposed for tests and for the fault-injection crash tests.
  static std::string Encode(const ClaimRecord& record, const std::string& boot_id);
  // DataLoss naming what is wrong; `boot_id` receives the file's boot ID.
  static absl::StatusOr<ClaimRecord> Decode(const std::string& text, std::string* boot_id);

 private:
  CheckpointStore(std::string dir, std::string boot_id)
      : dir_(std::move(dir)), boot_id_(std::move(boot_id)) {}
  std::string PathOf(const std::string& uid) const;

  const std::string dir_;
  const std::string boot_id_;
  mutable std::mutex mu_;
  std::map<std::string, ClaimRecord> records_ ABSL_GUARDED_BY(mu_);
};

// The kernel's boot ID (/proc/sys/kernel/random/boot_id), trimmed; empty if it cannot be read.
std::string ReadBootId(const std::string& path = "/proc/sys/kernel/random/boot_id");

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_CHECKPOINT_H_
