#include "tessera/plugin/checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "nlohmann/json.hpp"
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

std::string CheckpointStore::Encode(const ClaimRecord& r, const std::string& boot_id) {
  Json devices = Json::array();
  for (const PreparedDevice& d : r.devices) devices.push_back(ToJson(d));
  const Json record = {{"uid", r.uid},
                       {"namespace", r.namespace_},
                       {"name", r.name},
                       {"phase", ToString(r.phase)},
                       {"devices", devices}};
  const std::string payload = record.dump();
  const Json file = {{"version", kVersion},
                     {"bootID", boot_id},
                     {"checksum", Checksum(payload)},
                     {"record", record}};
  return file.dump(1);
}

absl::StatusOr<ClaimRecord> CheckpointStore::Decode(const std::string& text, std::string* boot_id) {
  const Json file = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (file.is_discarded() || !file.is_object()) return absl::DataLossError("not a JSON object");
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

absl::StatusOr<std::unique_ptr<CheckpointStore>> CheckpointStore::Open(
    std::string dir, std::string boot_id, CheckpointLoadReport* report) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  std::unique_ptr<CheckpointStore> store(new CheckpointStore(dir, std::move(boot_id)));
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    return absl::FailedPreconditionError(
        StrCat("checkpoint directory ", dir, ": ", std::strerror(errno)));
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.ends_with(".json")) names.push_back(name);
  }
  ::closedir(d);
  *report = {};
  for (const std::string& name : names) {
    const std::string path = StrCat(dir, "/", name);
    absl::StatusOr<std::string> text = ReadWholeFile(path);
    if (!text.ok()) return text.status();
    std::string file_boot;
    absl::StatusOr<ClaimRecord> record = Decode(*text, &file_boot);
    if (record.ok() && StrCat(record->uid, ".json") != name) {
      record = absl::DataLossError(StrCat("holds claim ", record->uid));
    }
    if (!record.ok()) {
      const std::string aside_dir = StrCat(dir, "/corrupt");
      ::mkdir(aside_dir.c_str(), 0700);
      const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
      const std::string aside = StrCat(aside_dir, "/", name, ".", now);
      if (::rename(path.c_str(), aside.c_str()) != 0) {
        return absl::InternalError(
            StrCat("cannot move corrupt checkpoint ", path, " aside: ", std::strerror(errno)));
      }
      report->corrupt.push_back(StrCat(path, " -> ", aside, ": ", record.status().message()));
      continue;
    }
    if (file_boot != store->boot_id_) {
      ::unlink(path.c_str());
      report->other_boot.push_back(record->uid);
      continue;
    }
    ++report->loaded;
    std::lock_guard<std::mutex> lock(store->mu_);
    store->records_[record->uid] = *std::move(record);
  }
  return store;
}

std::string CheckpointStore::PathOf(const std::string& uid) const {
  return StrCat(dir_, "/", uid, ".json");
}

std::optional<ClaimRecord> CheckpointStore::Get(const std::string& uid) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = records_.find(uid);
  if (it == records_.end()) return std::nullopt;
  return it->second;
}

std::vector<ClaimRecord> CheckpointStore::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ClaimRecord> out;
  out.reserve(records_.size());
  for (const auto& [uid, r] : records_) out.push_back(r);
  return out;
}

absl::Status CheckpointStore::Put(const ClaimRecord& record) {
  if (!SafeUid(record.uid)) {
    return absl::InvalidArgumentError(
        StrCat("claim UID \"", record.uid, "\" is not a Kubernetes UID"));
  }
  if (absl::Status s = WriteFileAtomically(PathOf(record.uid), Encode(record, boot_id_)); !s.ok()) {
    return s;
  }
  std::lock_guard<std::mutex> lock(mu_);
  records_[record.uid] = record;
  return absl::OkStatus();
}

absl::Status CheckpointStore::Erase(const std::string& uid) {
  if (!SafeUid(uid)) return absl::OkStatus();  // never stored
  const std::string path = PathOf(uid);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return absl::InternalError(StrCat("remove ", path, ": ", std::strerror(errno)));
  }
  SyncDirectory(dir_);
  std::lock_guard<std::mutex> lock(mu_);
  records_.erase(uid);
  return absl::OkStatus();
}

std::string ReadBootId(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return "";
  std::string id = *text;
  while (!id.empty() && std::isspace(static_cast<unsigned char>(id.back()))) id.pop_back();
  return id;
}

}  // namespace tessera::plugin
