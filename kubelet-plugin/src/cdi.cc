#include "tessera/plugin/cdi.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "nlohmann/json.hpp"
#include "tessera/api/json_decode.h"
#include "tessera/api/strings.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using api::DecodeContext;
using api::Json;
using api::ObjectDecoder;
// Rendered with the fields in the order people expect to read them (cdiVersion, kind, ...).
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kExtension = ".json";
// WriteFileAtomically writes "<path>.tmp.<pid>" and renames it; one left behind by a crash ends so.
constexpr std::string_view kTempMarker = ".json.tmp.";
constexpr auto kStaleTempAge = std::chrono::minutes(1);
constexpr size_t kMaxVendorLength = 253;
constexpr size_t kMaxClassLength = 63;
constexpr size_t kMaxClaimUidLength = 128;
constexpr size_t kMaxAnnotationsSize = 256 * 1024;  // CDI's (and Kubernetes') total limit
constexpr uint32_t kMaxFileMode = 07777;
// CDI spec versions in release order. Loaders accept any of them that covers the content.
constexpr std::array<std::string_view, 8> kVersions = {"0.3.0", "0.4.0", "0.5.0", "0.6.0",
                                                       "0.7.0", "0.8.0", "1.0.0", "1.1.0"};
constexpr size_t kV030 = 0, kV050 = 2, kV060 = 3;  // indexes into kVersions
constexpr std::string_view kNameRule =
    "letters, digits, '-', '_' and '.', beginning and ending "
    "with a letter or digit";

bool IsLetter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAlnum(char c) { return IsLetter(c) || (c >= '0' && c <= '9'); }

// Letters and digits at both ends, letters, digits and `inside` between.
bool IsName(std::string_view s, std::string_view inside) {
  if (s.empty() || !IsAlnum(s.front()) || !IsAlnum(s.back())) return false;
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return IsAlnum(c) || inside.find(c) != std::string_view::npos;
  });
}

// CDI's rule for both halves of a kind: a name that begins with a letter.
bool IsVendorOrClass(std::string_view s, size_t max_length) {
  return s.size() <= max_length && IsName(s, "-_.") && IsLetter(s.front());
}

bool IsClaimUid(std::string_view uid) {
  return uid.size() <= kMaxClaimUidLength && IsName(uid, "-");
}

// A lowercase DNS-1123 subdomain, the prefix of a Kubernetes annotation key.
bool IsDnsSubdomain(std::string_view s) {
  if (s.empty() || s.size() > kMaxVendorLength) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = s.find('.', start);
    const std::string_view label = s.substr(start, dot - start);
    if (!IsName(label, "-") || label.size() > 63) return false;
    if (std::any_of(label.begin(), label.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return false;
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A Kubernetes qualified name: [prefix/]name.
bool IsAnnotationKey(std::string_view key) {
  const size_t slash = key.find('/');
  const std::string_view name = slash == std::string_view::npos ? key : key.substr(slash + 1);
  if (slash != std::string_view::npos && !IsDnsSubdomain(key.substr(0, slash))) return false;
  return name.size() <= 63 && IsName(name, "-_.");
}

bool IsAbsolute(std::string_view path) { return !path.empty() && path.front() == '/'; }

std::string Quoted(std::string_view s) { return StrCat("\"", s, "\""); }

// ---- Validation: what a CDI loader would reject, reported with the JSON path of the field. ----

absl::Status ValidateNode(const DecodeContext& c, const CdiDeviceNode& n) {
  if (!IsAbsolute(n.path)) {
    return c.Field("path").Error(StrCat(Quoted(n.path), " is not an absolute path"));
  }
  if (!n.host_path.empty() && !IsAbsolute(n.host_path)) {
    return c.Field("hostPath").Error(StrCat(Quoted(n.host_path), " is not an absolute path"));
  }
  if (!n.type.empty() && n.type != "c" && n.type != "b" && n.type != "u" && n.type != "p") {
    return c.Field("type").Error(StrCat(Quoted(n.type), " is not a device type (c, b, u, p)"));
  }
  // A runtime ignores a minor without a major, and takes both from the host node when the major
  // is missing: a half-given number would silently be replaced.
  if ((n.major < 0) != (n.minor < 0)) {
    return c.Error(StrCat("major ", n.major, " and minor ", n.minor,
                          " must be given together (or both left out)"));
  }
  if (n.file_mode && *n.file_mode > kMaxFileMode) {
    return c.Field("fileMode")
        .Error(StrCat(*n.file_mode, " is not a file mode (allowed: up to 07777 octal, 4095)"));
  }
  if (n.permissions.find_first_not_of("rwm") != std::string::npos) {
    return c.Field("permissions")
        .Error(StrCat(Quoted(n.permissions), " is not cgroup access (letters of \"rwm\")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateEdits(const DecodeContext& c, const CdiEdits& edits) {
  for (size_t i = 0; i < edits.env.size(); ++i) {
    const size_t eq = edits.env[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      return c.Field("env").Index(i).Error(
          StrCat(Quoted(edits.env[i]), " is not of the form NAME=value"));
    }
  }
  for (size_t i = 0; i < edits.device_nodes.size(); ++i) {
    const absl::Status s = ValidateNode(c.Field("deviceNodes").Index(i), edits.device_nodes[i]);
    if (!s.ok()) return s;
  }
  for (size_t i = 0; i < edits.mounts.size(); ++i) {
    const DecodeContext m = c.Field("mounts").Index(i);
    const CdiMount& mount = edits.mounts[i];
    if (!IsAbsolute(mount.host_path)) {
      return m.Field("hostPath").Error(StrCat(Quoted(mount.host_path), " is not an absolute path"));
    }
    if (!IsAbsolute(mount.container_path)) {
      return m.Field("containerPath")
          .Error(StrCat(Quoted(mount.container_path), " is not an absolute path"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateKind(std::string_view kind) {
  const DecodeContext c = DecodeContext().Field("kind");
  const size_t slash = kind.find('/');
  if (slash == std::string_view::npos ||
      !IsVendorOrClass(kind.substr(0, slash), kMaxVendorLength) ||
      !IsVendorOrClass(kind.substr(slash + 1), kMaxClassLength)) {
    return c.Error(StrCat(Quoted(kind),
                          " is not a CDI kind (vendor/class, each of letters, digits, '-', '_' "
                          "and '.', beginning with a letter and ending with a letter or digit; "
                          "class at most 63 characters)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateClaimUid(std::string_view uid) {
  if (IsClaimUid(uid)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      StrCat("claim UID ", Quoted(uid),
             " cannot name a CDI spec (allowed: letters, digits and '-', beginning and ending with "
             "a letter or digit, at most ",
             kMaxClaimUidLength, " characters)"));
}

absl::Status ValidateSpec(std::string_view uid, const CdiClaimSpec& spec) {
  const DecodeContext root;
  if (spec.devices.empty()) return root.Field("devices").Error("a spec needs at least one device");
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    const DecodeContext c = root.Field("devices").Index(i);
    const CdiDevice& device = spec.devices[i];
    if (device.name.empty() || !IsName(StrCat(uid, "-", device.name), "-_.")) {
      return c.Field("name").Error(
          StrCat(Quoted(device.name), " is not a CDI device name (", kNameRule, ")"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (spec.devices[j].name == device.name) {
        return c.Field("name").Error(StrCat(Quoted(device.name), " repeats devices[", j, "]"));
      }
    }
    if (device.edits.empty()) {
      return c.Field("containerEdits").Error("is empty (CDI rejects a device without edits)");
    }
    if (absl::Status s = ValidateEdits(c.Field("containerEdits"), device.edits); !s.ok()) return s;
  }
  if (absl::Status s = ValidateEdits(root.Field("containerEdits"), spec.common); !s.ok()) return s;
  size_t annotations_size = 0;
  for (const auto& [key, value] : spec.annotations) {
    if (!IsAnnotationKey(key)) {
      return root.Field("annotations")
          .Error(StrCat(Quoted(key), " is not an annotation key ([prefix/]name)"));
    }
    annotations_size += key.size() + value.size();
  }
  if (annotations_size > kMaxAnnotationsSize) {
    return root.Field("annotations")
        .Error(StrCat("total size ", annotations_size, " exceeds ", kMaxAnnotationsSize, " bytes"));
  }
  return absl::OkStatus();
}

// Index into kVersions of the lowest version that supports the content, following the CDI
// reference library's rules for the fields tessera writes.
size_t RequiredVersion(std::string_view kind, std::string_view uid, const CdiClaimSpec& spec) {
  const std::string_view cls = kind.substr(kind.find('/') + 1);
  if (!spec.annotations.empty() || cls.find('.') != std::string_view::npos) return kV060;
  // Device names are "<uid>-<device>": they all begin with the UID's first character.
  if (!uid.empty() && !IsLetter(uid.front())) return kV050;
  auto has_host_path = [](const CdiEdits& e) {
    return std::any_of(e.device_nodes.begin(), e.device_nodes.end(), [](const CdiDeviceNode& n) {
      return !n.host_path.empty() && n.host_path != n.path;
    });
  };
  if (has_host_path(spec.common) ||
      std::any_of(spec.devices.begin(), spec.devices.end(),
                  [&](const CdiDevice& d) { return has_host_path(d.edits); })) {
    return kV050;
  }
  return kV030;
}

// ---- Rendering ----

OrderedJson EditsJson(const CdiEdits& edits) {
  OrderedJson out = OrderedJson::object();
  if (!edits.env.empty()) out["env"] = edits.env;
  if (!edits.device_nodes.empty()) {
    OrderedJson& nodes = out["deviceNodes"] = OrderedJson::array();
    for (const CdiDeviceNode& n : edits.device_nodes) {
      OrderedJson node = OrderedJson::object();
      node["path"] = n.path;
      if (!n.host_path.empty() && n.host_path != n.path) node["hostPath"] = n.host_path;
      if (!n.type.empty()) node["type"] = n.type;
      if (n.major >= 0) node["major"] = n.major;
      if (n.minor >= 0) node["minor"] = n.minor;
      if (n.file_mode) node["fileMode"] = *n.file_mode;
      if (!n.permissions.empty()) node["permissions"] = n.permissions;
      nodes.push_back(std::move(node));
    }
  }
  if (!edits.mounts.empty()) {
    OrderedJson& mounts = out["mounts"] = OrderedJson::array();
    for (const CdiMount& m : edits.mounts) {
      OrderedJson mount = OrderedJson::object();
      mount["hostPath"] = m.host_path;
      mount["containerPath"] = m.container_path;
      if (!m.options.empty()) mount["options"] = m.options;
      mounts.push_back(std::move(mount));
    }
  }
  return out;
}

std::string Render(std::string_view kind, std::string_view uid, const CdiClaimSpec& spec) {
  OrderedJson out = OrderedJson::object();
  out["cdiVersion"] = kVersions[RequiredVersion(kind, uid, spec)];
  out["kind"] = kind;
  if (!spec.annotations.empty()) out["annotations"] = spec.annotations;
  OrderedJson& devices = out["devices"] = OrderedJson::array();
  for (const CdiDevice& d : spec.devices) {
    OrderedJson device = OrderedJson::object();
    device["name"] = StrCat(uid, "-", d.name);
    device["containerEdits"] = EditsJson(d.edits);
    devices.push_back(std::move(device));
  }
  if (!spec.common.empty()) out["containerEdits"] = EditsJson(spec.common);
  return out.dump(2) + "\n";
}

// ---- Decoding (strict: the file is ours, so anything unexpected is damage) ----

template <typename T, typename Fn>
auto ListField(std::vector<T>* out, Fn decode_one) {
  return [out, decode_one](const DecodeContext& c, const Json& v) -> absl::Status {
    if (!v.is_array()) return c.Error(StrCat("expected a list, got ", api::Describe(v)));
    for (size_t i = 0; i < v.size(); ++i) {
      T item{};
      if (absl::Status s = decode_one(c.Index(i), v[i], &item); !s.ok()) return s;
      out->push_back(std::move(item));
    }
    return absl::OkStatus();
  };
}

auto NonNegativeField(int64_t* out) {
  return [out](const DecodeContext& c, const Json& v) {
    absl::Status s = api::Decode(c, v, out);
    if (s.ok() && *out < 0) return c.Error(StrCat(*out, " is negative"));
    return s;
  };
}

absl::Status DecodeNode(const DecodeContext& c, const Json& in, CdiDeviceNode* out) {
  ObjectDecoder d(c, in);
  d.Required("path", &out->path);
  d.Optional("hostPath", &out->host_path);
  d.Optional("type", &out->type);
  d.OptionalWith("major", NonNegativeField(&out->major));
  d.OptionalWith("minor", NonNegativeField(&out->minor));
  d.OptionalWith("fileMode", [&](const DecodeContext& f, const Json& v) {
    int64_t mode = 0;
    if (absl::Status s = NonNegativeField(&mode)(f, v); !s.ok()) return s;
    if (mode > kMaxFileMode) return f.Error(StrCat(mode, " is not a file mode"));
    out->file_mode = static_cast<uint32_t>(mode);
    return absl::OkStatus();
  });
  d.Optional("permissions", &out->permissions);
  if (out->host_path == out->path) out->host_path.clear();
  return d.Finish();
}

absl::Status DecodeMount(const DecodeContext& c, const Json& in, CdiMount* out) {
  ObjectDecoder d(c, in);
  d.Required("hostPath", &out->host_path);
  d.Required("containerPath", &out->container_path);
  d.Optional("options", &out->options);
  return d.Finish();
}

absl::Status DecodeEdits(const DecodeContext& c, const Json& in, CdiEdits* out) {
  ObjectDecoder d(c, in);
  d.Optional("env", &out->env);
  d.OptionalWith("deviceNodes", ListField(&out->device_nodes, DecodeNode));
  d.OptionalWith("mounts", ListField(&out->mounts, DecodeMount));
  return d.Finish();
}

// The name as written (with the claim prefix); the caller strips it.
absl::Status DecodeDevice(const DecodeContext& c, const Json& in, CdiDevice* out) {
  ObjectDecoder d(c, in);
  d.Required("name", &out->name);
  d.RequiredWith("containerEdits", [&](const DecodeContext& e, const Json& v) {
    return DecodeEdits(e, v, &out->edits);
  });
  return d.Finish();
}

// Parses a spec file's text; `version` and `kind` are what the file declares.
absl::Status DecodeSpec(const std::string& text, std::string* version, std::string* kind,
                        CdiClaimSpec* out) {
  absl::StatusOr<Json> json = api::ParseJson(text);
  if (!json.ok()) return json.status();
  ObjectDecoder d(DecodeContext(api::UnknownFields::kReject), *json);
  d.Required("cdiVersion", version);
  d.Required("kind", kind);
  d.Optional("annotations", &out->annotations);
  d.RequiredWith("devices", ListField(&out->devices, DecodeDevice));
  d.OptionalWith("containerEdits", [&](const DecodeContext& e, const Json& v) {
    return DecodeEdits(e, v, &out->common);
  });
  return d.Finish();
}

// ---- Files ----

// Creates `dir` and its missing parents with mode 0755 (before the umask).
absl::Status MakeDirs(const std::string& dir) {
  fs::path partial;
  for (const fs::path& part : fs::path(dir)) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::InternalError(
          StrCat("create directory ", partial.string(), ": ", std::strerror(errno)));
    }
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::FailedPreconditionError(StrCat(dir, " is not a directory"));
  }
  return absl::OkStatus();
}

// The claim UID in a file name "<prefix><uid><suffix>", if it is one.
std::optional<std::string> UidIn(std::string_view name, std::string_view prefix,
                                 std::string_view suffix) {
  if (name.size() <= prefix.size() + suffix.size() || !name.starts_with(prefix) ||
      !name.ends_with(suffix)) {
    return std::nullopt;
  }
  const std::string_view uid =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (!IsClaimUid(uid)) return std::nullopt;
  return std::string(uid);
}

// Whether `name` is "<prefix><uid>.json.tmp.<pid>".
bool IsTempFileName(std::string_view name, std::string_view prefix) {
  const size_t marker = name.rfind(kTempMarker);
  if (marker == std::string_view::npos) return false;
  const std::string_view pid = name.substr(marker + kTempMarker.size());
  if (pid.empty() ||
      !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return UidIn(name.substr(0, marker), prefix, "").has_value();
}

absl::Status RemoveFile(const fs::path& path) {
  std::error_code ec;
  fs::remove(path, ec);  // false without error when absent
  if (ec) return absl::InternalError(StrCat("remove ", path.string(), ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

CdiWriter::CdiWriter(std::string root, std::string kind)
    : root_(std::move(root)), kind_(std::move(kind)) {
  std::string prefix = kind_;
  if (const size_t slash = prefix.find('/'); slash != std::string::npos) prefix[slash] = '-';
  file_prefix_ = StrCat(prefix, "_");
}

std::string CdiWriter::SpecPath(std::string_view claim_uid) const {
  return (fs::path(root_) / StrCat(file_prefix_, claim_uid, kExtension)).string();
}

std::string CdiWriter::QualifiedName(std::string_view claim_uid, std::string_view device) const {
  return StrCat(kind_, "=", claim_uid, "-", device);
}

absl::Status CdiWriter::Write(std::string_view claim_uid, const CdiClaimSpec& spec) {
  if (absl::Status s = ValidateKind(kind_); !s.ok()) return s;
  if (absl::Status s = ValidateClaimUid(claim_uid); !s.ok()) return s;
  if (absl::Status s = ValidateSpec(claim_uid, spec); !s.ok()) {
    return absl::InvalidArgumentError(
        StrCat("CDI spec of claim ", claim_uid, ": ", std::string(s.message())));
  }
  const std::string text = Render(kind_, claim_uid, spec);
  if (absl::Status s = MakeDirs(root_); !s.ok()) return s;
  const std::string path = SpecPath(claim_uid);
  // A repeated Prepare rewrites the same spec; leaving the file alone spares the runtime a reload.
  if (absl::StatusOr<std::string> old = ReadWholeFile(path); old.ok() && *old == text) {
    return absl::OkStatus();
  }
  return WriteFileAtomically(path, text, 0644, sync_);
}

absl::Status CdiWriter::Remove(std::string_view claim_uid) {
  if (absl::Status s = ValidateClaimUid(claim_uid); !s.ok()) return s;
  return RemoveFile(SpecPath(claim_uid));
}

absl::StatusOr<std::vector<std::string>> CdiWriter::ListClaims() const {
  std::vector<std::string> uids;
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec == std::errc::no_such_file_or_directory) return uids;
  if (ec) return absl::InternalError(StrCat("list ", root_, ": ", ec.message()));
  for (const fs::directory_entry& entry : it) {
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    if (std::optional<std::string> uid =
            UidIn(entry.path().filename().string(), file_prefix_, kExtension)) {
      uids.push_back(std::move(*uid));
    }
  }
  std::sort(uids.begin(), uids.end());
  return uids;
}

absl::StatusOr<CdiClaimSpec> CdiWriter::Read(std::string_view claim_uid) const {
  if (absl::Status s = ValidateClaimUid(claim_uid); !s.ok()) return s;
  const std::string path = SpecPath(claim_uid);
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return text.status();
  auto damaged = [&](std::string_view what) {
    return absl::DataLossError(StrCat("CDI spec ", path, ": ", what));
  };

  std::string version, kind;
  CdiClaimSpec spec;
  if (absl::Status s = DecodeSpec(*text, &version, &kind, &spec); !s.ok()) {
    return damaged(std::string(s.message()));
  }
  if (kind != kind_) return damaged(StrCat("kind ", Quoted(kind), " is not ", Quoted(kind_)));
  const std::string prefix = StrCat(claim_uid, "-");
  for (size_t i = 0; i < spec.devices.size(); ++i) {
    std::string& name = spec.devices[i].name;
    if (!name.starts_with(prefix)) {
      return damaged(
          StrCat("devices[", i, "].name: ", Quoted(name), " does not begin with ", Quoted(prefix)));
    }
    name.erase(0, prefix.size());
  }
  if (absl::Status s = ValidateSpec(claim_uid, spec); !s.ok()) {
    return damaged(std::string(s.message()));
  }
  const auto declared = std::find(kVersions.begin(), kVersions.end(), version);
  if (declared == kVersions.end()) {
    return damaged(StrCat("cdiVersion ", Quoted(version), " is not a CDI version"));
  }
  const size_t required = RequiredVersion(kind_, claim_uid, spec);
  if (static_cast<size_t>(declared - kVersions.begin()) < required) {
    return damaged(StrCat("cdiVersion ", Quoted(version), " is below ", Quoted(kVersions[required]),
                          " that its content needs"));
  }
  return spec;
}

absl::StatusOr<std::vector<std::string>> CdiWriter::Sweep(const std::set<std::string>& keep) {
  std::vector<std::string> removed;
  std::error_code ec;
  fs::directory_iterator it(root_, ec);
  if (ec == std::errc::no_such_file_or_directory) return removed;
  if (ec) return absl::InternalError(StrCat("list ", root_, ": ", ec.message()));
  const fs::file_time_type stale_before = fs::file_time_type::clock::now() - kStaleTempAge;
  absl::Status first_error;
  for (const fs::directory_entry& entry : it) {
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec)) continue;
    const std::string name = entry.path().filename().string();
    if (std::optional<std::string> uid = UidIn(name, file_prefix_, kExtension)) {
      if (keep.contains(*uid)) continue;
      if (absl::Status s = RemoveFile(entry.path()); !s.ok()) {
        first_error.Update(s);
      } else {
        removed.push_back(std::move(*uid));
      }
    } else if (IsTempFileName(name, file_prefix_)) {
      std::error_code time_ec;
      const fs::file_time_type mtime = entry.last_write_time(time_ec);
      if (!time_ec && mtime < stale_before) first_error.Update(RemoveFile(entry.path()));
    }
  }
  if (!first_error.ok()) return first_error;
  std::sort(removed.begin(), removed.end());
  return removed;
}

}  // namespace tessera::plugin
