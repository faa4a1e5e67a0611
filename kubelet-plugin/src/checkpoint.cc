#include "tessera/plugin/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>

#include "nlohmann/json.hpp"
#include "spdlog/spdlog.h"
#include "tessera/api/strings.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

using Json = nlohmann::json;
constexpr int kVersion = 1;

// FNV-1a, 64 bit: detects torn and edited files; not a defence against an attacker (who could
// write the file anyway).
std::string Checksum(std::string_view data) { return StrCat("fnv1a64:", Fnv1a64Hex(data)); }

constexpr std::array<std::string_view, 3> kPhaseNames = {"Preparing", "Prepared", "Unpreparing"};
constexpr std::array<std::string_view, 3> kSharingNames = {"None", "MPS", "TimeSlicing"};

template <typename E, std::size_t N>
absl::StatusOr<E> EnumFrom(const std::array<std::string_view, N>& names, const std::string& v,
                           std::string_view field) {
  for (std::size_t i = 0; i < N; ++i) {
    if (names[i] == v) return static_cast<E>(i);
  }
  return absl::DataLossError(StrCat(field, ": unknown value \"", v, "\""));
}

Json ToJson(const PreparedDevice& d) {
  Json j = {{"requests", d.requests},
            {"pool", d.pool},
            {"device", d.device},
            {"gpu", d.gpu},
            {"gpuUUID", d.gpu_uuid},
            {"cdiIDs", d.cdi_ids},
            {"sharing", kSharingNames[static_cast<int>(d.sharing)]}};
  if (d.share_id) j["shareID"] = *d.share_id;
  if (d.mig) {
    j["mig"] = {{"profile", d.mig->profile},
                {"profileID", d.mig->profile_id},
                {"start", d.mig->placement.start},
                {"size", d.mig->placement.size},
                {"giID", d.mig->gi_id},
                {"ciID", d.mig->ci_id},
                {"uuid", d.mig->uuid},
                {"createdByTessera", d.mig->created_by_tessera}};
  }
  if (!d.mps_device_uuid.empty()) j["mpsDeviceUUID"] = d.mps_device_uuid;
  if (d.active_thread_percentage) j["activeThreadPercentage"] = *d.active_thread_percentage;
  if (d.pinned_memory_limit_mib) j["pinnedMemoryLimitMiB"] = *d.pinned_memory_limit_mib;
  if (d.time_slice) j["timeSlice"] = api::ToString(*d.time_slice);
  return j;
}

absl::StatusOr<PreparedDevice> DeviceFromJson(const Json& j) {
  PreparedDevice d;
  d.requests = j.at("requests").get<std::vector<std::string>>();
  d.pool = j.at("pool").get<std::string>();
  d.device = j.at("device").get<std::string>();
  d.gpu = j.at("gpu").get<int>();
  d.gpu_uuid = j.at("gpuUUID").get<std::string>();
  d.cdi_ids = j.at("cdiIDs").get<std::vector<std::string>>();
  absl::StatusOr<ShareStrategy> sharing =
      EnumFrom<ShareStrategy>(kSharingNames, j.at("sharing").get<std::string>(), "sharing");
  if (!sharing.ok()) return sharing.status();
  d.sharing = *sharing;
  if (j.contains("shareID")) d.share_id = j["shareID"].get<std::string>();
  if (j.contains("mig")) {
    const Json& m = j["mig"];
    d.mig = MigRecord{.profile = m.at("profile").get<std::string>(),
                      .profile_id = m.at("profileID").get<int>(),
                      .placement = {m.at("start").get<int32_t>(), m.at("size").get<int32_t>()},
                      .gi_id = m.at("giID").get<int>(),
                      .ci_id = m.at("ciID").get<int>(),
                      .uuid = m.at("uuid").get<std::string>(),
                      .created_by_tessera = m.at("createdByTessera").get<bool>()};
  }
  d.mps_device_uuid = j.value("mpsDeviceUUID", "");
  if (j.contains("activeThreadPercentage"))
    d.active_thread_percentage = j["activeThreadPercentage"].get<int>();
  if (j.contains("pinnedMemoryLimitMiB"))
    d.pinned_memory_limit_mib = j["pinnedMemoryLimitMiB"].get<int64_t>();
  if (j.contains("timeSlice")) {
    absl::StatusOr<api::TimeSliceInterval> ts = EnumFrom<api::TimeSliceInterval>(
        api::kTimeSliceIntervalNames, j["timeSlice"].get<std::string>(), "timeSlice");
    if (!ts.ok()) return ts.status();
    d.time_slice = *ts;
  }
  return d;
}

// Claim UIDs become file names: allow only what a Kubernetes UID can contain.
bool SafeUid(std::string_view uid) {
  if (uid.empty() || uid.size() > 128) return false;
  for (char c : uid) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return true;
}

}  // namespace

std::string_view ToString(ClaimPhase phase) { return kPhaseNames[static_cast<int>(phase)]; }

namespace {

Json RecordJson(const ClaimRecord& r) {
  Json devices = Json::array();
  for (const PreparedDevice& d : r.devices) devices.push_back(ToJson(d));
  return {{"uid", r.uid},
          {"namespace", r.namespace_},
          {"name", r.name},
          {"phase", ToString(r.phase)},
          {"devices", devices}};
}

// {"bootID":…,"checksum":…,"record":…,"version":1} on one line, the record serialised once: the
// checksum covers exactly the bytes Decode gets back from re-serialising the parsed record.
std::string EncodeLine(const ClaimRecord& r, const std::string& boot_id) {
  const std::string payload = RecordJson(r).dump();
  return StrCat(R"({"bootID":)", Json(boot_id).dump(), R"(,"checksum":")", Checksum(payload),
                R"(","record":)", payload, R"(,"version":)", kVersion, "}");
}

absl::StatusOr<ClaimRecord> DecodeJson(const Json& file, std::string* boot_id) {
  if (!file.is_object()) return absl::DataLossError("not a JSON object");
  if (file.value("version", 0) != kVersion) {
    return absl::DataLossError(
        StrCat("version ", file.contains("version") ? file["version"].dump() : "(missing)",
               " is not the supported version ", kVersion));
  }
  if (!file.contains("record") || !file["record"].is_object())
    return absl::DataLossError("no record");
  const Json& record = file["record"];
  const std::string want = file.value("checksum", "");
  const std::string got = Checksum(record.dump());
  if (want != got) {
    return absl::DataLossError(StrCat("checksum ", want.empty() ? "(missing)" : want,
                                      " does not match the record (", got, ")"));
  }
  *boot_id = file.value("bootID", "");
  try {
    ClaimRecord r;
    r.uid = record.at("uid").get<std::string>();
    r.namespace_ = record.at("namespace").get<std::string>();
    r.name = record.at("name").get<std::string>();
    absl::StatusOr<ClaimPhase> phase =
        EnumFrom<ClaimPhase>(kPhaseNames, record.at("phase").get<std::string>(), "phase");
    if (!phase.ok()) return phase.status();
    r.phase = *phase;
    for (const Json& d : record.at("devices")) {
      absl::StatusOr<PreparedDevice> device = DeviceFromJson(d);
      if (!device.ok()) return device.status();
      r.devices.push_back(*std::move(device));
    }
    return r;
  } catch (const Json::exception& e) {
    return absl::DataLossError(StrCat("record: ", e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// The journal, <dir>/claims.log: a header line, then one line per change in the order they
// happened. A put line is the record's file format on one line (the same object the CDI spec's
// tessera.dev/record annotation holds); an erase line names the claim:
//
//   {"journal":"tessera.dev/claims","version":1}
//   {"version":1,"bootID":"…","checksum":"fnv1a64:…","record":{…}}
//   {"version":1,"bootID":"…","checksum":"fnv1a64:…","erase":"<uid>"}

constexpr std::string_view kJournalName = "claims.log";
constexpr std::string_view kJournalKind = "tessera.dev/claims";
constexpr int kJournalVersion = 1;
// Rewritten when it has grown past this and past kCompactFactor times its size after the last
// rewrite: about one rewrite per hundred prepare/unprepare cycles of a busy node.
constexpr uint64_t kCompactMinBytes = 256 * 1024;
constexpr uint64_t kCompactFactor = 4;
// A temporary file this old is a leftover of a killed writer (a live one takes milliseconds).
constexpr auto kStaleTempAge = std::chrono::minutes(1);

std::string JournalHeader() {
  return Json{{"journal", kJournalKind}, {"version", kJournalVersion}}.dump();
}

std::string EraseLine(const std::string& uid, const std::string& boot_id) {
  return Json{{"version", kVersion},
              {"bootID", boot_id},
              {"checksum", Checksum(StrCat("erase:", uid))},
              {"erase", uid}}
      .dump();
}

// The claims a journal holds, replayed line by line.
struct Replayed {
  struct Entry {
    std::optional<ClaimRecord> record;  // nullopt: erased
    std::string boot_id;
  };
  std::map<std::string, Entry> claims;  // every claim the journal mentions
  std::string corrupt;                  // why the journal cannot be trusted; empty: it can
  bool torn_tail = false;               // a last line without its newline (a killed writer)
};

Replayed Replay(std::string_view text) {
  Replayed out;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t newline = text.find('\n', pos);
    if (newline == std::string_view::npos) {
      out.torn_tail = true;  // never acknowledged: its writer died in the middle of it
      break;
    }
    const std::string_view line = text.substr(pos, newline - pos);
    pos = newline + 1;
    ++line_no;
    const Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto fail = [&](std::string_view why) {
      out.corrupt = StrCat("line ", line_no, ": ", why);
      out.claims.clear();
    };
    if (line_no == 1) {
      if (!j.is_object() || j.value("journal", "") != kJournalKind) {
        fail("not a tessera claim journal");
        return out;
      }
      if (j.value("version", 0) != kJournalVersion) {
        fail(StrCat("journal version ", j.contains("version") ? j["version"].dump() : "(missing)",
                    " is not the supported version ", kJournalVersion));
        return out;
      }
      continue;
    }
    if (j.is_object() && j.contains("erase")) {
      const Json& uid = j["erase"];
      if (!uid.is_string() ||
          j.value("checksum", "") != Checksum(StrCat("erase:", uid.get<std::string>()))) {
        fail("erase with a bad checksum");
        return out;
      }
      out.claims[uid.get<std::string>()] = {.record = std::nullopt,
                                            .boot_id = j.value("bootID", "")};
      continue;
    }
    std::string boot;
    absl::StatusOr<ClaimRecord> record =
        j.is_discarded() ? absl::StatusOr<ClaimRecord>(absl::DataLossError("not JSON"))
                         : DecodeJson(j, &boot);
    if (!record.ok()) {
      fail(std::string(record.status().message()));
      return out;
    }
    const std::string uid = record->uid;
    out.claims[uid] = {.record = *std::move(record), .boot_id = std::move(boot)};
  }
  if (line_no == 0 && !text.empty() && !out.torn_tail) out.corrupt = "no header";
  return out;
}

std::string Aside(const std::string& dir, const std::string& name) {
  const std::string aside_dir = StrCat(dir, "/corrupt");
  ::mkdir(aside_dir.c_str(), 0700);
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return StrCat(aside_dir, "/", name, ".", now);
}

// Format 1 kept one file per claim, <uid>.json. Each readable one joins `claims` and overrides the
// journal's entry for its claim: only a plugin of format 1 writes such files, so one that exists
// was written after the journal's line (a plugin of format 1 still running beside this one during
// an upgrade) or is the same record (a migration that was cut short). Unreadable ones are moved
// to corrupt/ as before; temporary files of killed writers are removed. Returns the files to
// delete once the journal holds their records.
absl::StatusOr<std::vector<std::string>> MigrateFiles(
    const std::string& dir, std::map<std::string, Replayed::Entry>* claims,
    CheckpointLoadReport* report) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<std::string> migrated;
  const auto stale_before = std::chrono::system_clock::now() - kStaleTempAge;
  for (const std::string& name : names) {
    const std::string path = StrCat(dir, "/", name);
    if (name.find(".tmp.") != std::string::npos) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 &&
          std::chrono::system_clock::from_time_t(st.st_mtime) < stale_before) {
        ::unlink(path.c_str());
      }
      continue;
    }
    if (name.size() <= 5 || !name.ends_with(".json")) continue;
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) return text.status();
    std::string file_boot;
    absl::StatusOr<ClaimRecord> record = CheckpointStore::Decode(*text, &file_boot);
    if (record.ok() && StrCat(record->uid, ".json") != name) {
      record = absl::DataLossError(StrCat("holds claim ", record->uid));
    }
    if (!record.ok()) {
      const std::string aside = Aside(dir, name);
      if (::rename(path.c_str(), aside.c_str()) != 0) {
        return absl::InternalError(
            StrCat("cannot move corrupt checkpoint ", path, " aside: ", std::strerror(errno)));
      }
      report->corrupt.push_back(StrCat(path, " -> ", aside, ": ", record.status().message()));
      continue;
    }
    const std::string uid = record->uid;
    (*claims)[uid] = {.record = *std::move(record), .boot_id = std::move(file_boot)};
    migrated.push_back(path);
  }
  return migrated;
}

}  // namespace

std::string CheckpointStore::Encode(const ClaimRecord& r, const std::string& boot_id) {
  return EncodeLine(r, boot_id);
}

absl::StatusOr<ClaimRecord> CheckpointStore::Decode(const std::string& text, std::string* boot_id) {
  const Json file = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (file.is_discarded()) return absl::DataLossError("not a JSON object");
  return DecodeJson(file, boot_id);
}

std::string CheckpointStore::JournalPath(const std::string& dir) {
  return StrCat(dir, "/", kJournalName);
}

absl::StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(
    std::string dir, std::string boot_id, CheckpointLoadReport* report) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  *report = {};
  std::unique_ptr<CheckpointStore> store(new CheckpointStore(dir, std::move(boot_id)));
  absl::StatusOr<std::unique_ptr<AppendLog>> log =
      AppendLog::Open(JournalPath(dir), store->sync(), JournalHeader());
  if (!log.ok()) return log.status();
  store->log_ = *std::move(log);

  // Under the journal's lock, so that a plugin still running beside this one (rolling update)
  // neither writes in between nor loses a line: read the journal and the per-claim files of
  // format 1 (migration), keep this boot's claims, write them back as a fresh journal.
  std::vector<std::string> migrated;
  std::map<std::string, ClaimRecord> live;
  uint64_t journal_size = 0;
  absl::Status rewritten =
      store->log_->Rewrite([&](const std::string* current) -> absl::StatusOr<std::string> {
        const Replayed journal = Replay(current != nullptr ? *current : "");
        if (!journal.corrupt.empty()) {
          const std::string aside = Aside(dir, std::string(kJournalName));
          if (absl::Status s = WriteFileAtomically(aside, *current, 0600, store->sync()); !s.ok()) {
            return s;
          }
          report->corrupt.push_back(StrCat(JournalPath(dir), " -> ", aside, ": ", journal.corrupt));
        }
        std::map<std::string, Replayed::Entry> claims = journal.claims;
        absl::StatusOr<std::vector<std::string>> files = MigrateFiles(dir, &claims, report);
        if (!files.ok()) return files.status();
        migrated = *std::move(files);
        std::string out = StrCat(JournalHeader(), "\n");
        for (auto& [uid, entry] : claims) {
          if (!entry.record) continue;
          if (entry.boot_id != store->boot_id_) {
            report->other_boot.push_back(uid);
            continue;
          }
          out += EncodeLine(*entry.record, store->boot_id_);
          out += '\n';
          live[uid] = *std::move(entry.record);
        }
        journal_size = out.size();
        return out;
      });
  if (!rewritten.ok()) return rewritten;
  // The journal holds them now (on disk with sync()); the files of format 1 can go.
  for (const std::string& path : migrated) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return absl::InternalError(
          StrCat("remove migrated checkpoint ", path, ": ", std::strerror(errno)));
    }
  }
  if (!migrated.empty() && store->sync()) SyncDirectory(dir);
  report->loaded = static_cast<int>(live.size());
  std::lock_guard<std::mutex> lock(store->mu_);
  for (auto& [uid, record] : live) {
    store->records_[uid] = std::make_shared<const ClaimRecord>(std::move(record));
  }
  store->compacted_size_ = journal_size;
  store->journal_size_ = journal_size;
  return store;
}

std::optional<ClaimRecord> CheckpointStore::Get(const std::string& uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(uid);
  if (it == records_.end()) return std::nullopt;
  return *it->second;
}

std::vector<ClaimRecord> CheckpointStore::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ClaimRecord> out;
  out.reserve(records_.size());
  for (const auto& [uid, r] : records_) out.push_back(*r);
  return out;
}

std::vector<CheckpointStore::RecordPtr> CheckpointStore::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<RecordPtr> out;
  out.reserve(records_.size());
  for (const auto& [uid, r] : records_) out.push_back(r);
  return out;
}

absl::Status CheckpointStore::Put(const ClaimRecord& record, std::string encoded) {
  if (!SafeUid(record.uid)) {
    return absl::InvalidArgumentError(
        StrCat("claim UID \"", record.uid, "\" is not a Kubernetes UID"));
  }
  const std::string line = encoded.empty() ? EncodeLine(record, boot_id_) : std::move(encoded);
  auto shared = std::make_shared<const ClaimRecord>(record);
  return Append(line, [&] { records_[record.uid] = std::move(shared); });
}

absl::Status CheckpointStore::Erase(const std::string& uid) {
  if (!SafeUid(uid)) return absl::OkStatus();  // never stored
  // Written even for a claim this process does not hold: a plugin beside it may have put it.
  return Append(EraseLine(uid, boot_id_), [&] { records_.erase(uid); });
}

absl::Status CheckpointStore::Append(const std::string& line, const std::function<void()>& apply) {
  uint64_t ticket = 0;
  uint64_t size = 0;
  bool compact = false;
  {
    // The line and the map change together, so that a rewrite from the map (Compact) never
    // misses a line that is already in the file.
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<uint64_t> written = log_->Write(line, &size);
    if (!written.ok()) return written.status();
    ticket = *written;
    apply();
    journal_size_ = size;
    compact = NeedsCompaction();
  }
  // Outside the lock: writers of other claims share the flush.
  if (absl::Status s = log_->WaitDurable(ticket); !s.ok()) return s;
  if (compact) {
    // The change is in the journal either way; a journal that could not be rewritten is only
    // longer than it needs to be.
    if (absl::Status s = Compact(); !s.ok()) {
      spdlog::warn("checkpoint: {} (tried again after the journal grows further)",
                   std::string(s.message()));
    }
  }
  return absl::OkStatus();
}

bool CheckpointStore::NeedsCompaction() const {
  return journal_size_ > kCompactMinBytes && journal_size_ > kCompactFactor * compacted_size_;
}

absl::Status CheckpointStore::Compact() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!NeedsCompaction()) return absl::OkStatus();  // another writer just did it
  uint64_t size = 0;
  absl::Status s = log_->Rewrite(
      [&](const std::string* current) -> absl::StatusOr<std::string> {
        std::string out = StrCat(JournalHeader(), "\n");
        if (current == nullptr) {
          // Only this process wrote since the journal was last read: the map is its content.
          for (const auto& [uid, r] : records_) {
            out += EncodeLine(*r, boot_id_);
            out += '\n';
          }
        } else {
          // Another plugin process wrote too: keep the claims of both, from the file.
          const Replayed journal = Replay(*current);
          if (!journal.corrupt.empty()) {
            return absl::DataLossError(
                StrCat("claim journal ", log_->path(), ": ", journal.corrupt, "; not compacted"));
          }
          std::size_t live = 0;
          bool foreign = false;
          for (const auto& [uid, entry] : journal.claims) {
            if (!entry.record) continue;
            ++live;
            auto mine = records_.find(uid);
            foreign |= mine == records_.end() || !(*mine->second == *entry.record);
            out += EncodeLine(*entry.record, entry.boot_id);
            out += '\n';
          }
          foreign_claims_ = foreign || live != records_.size();
        }
        size = out.size();
        return out;
      },
      /*read=*/foreign_claims_);
  // After a failure, wait for the journal to grow as much again before the next attempt.
  compacted_size_ = s.ok() ? size : journal_size_;
  if (s.ok()) journal_size_ = size;
  return s;
}

std::string ReadBootId(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return "";
  std::string id = *text;
  while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
  return id;
}

}  // namespace tessera::plugin
