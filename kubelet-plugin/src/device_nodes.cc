#include "tessera/plugin/device_nodes.h"

#include <charconv>
#include <filesystem>
#include <sstream>

#include "tessera/api/strings.h"
#include "tessera/plugin/files.h"

namespace tessera::plugin {
namespace {

constexpr uint32_t kCapFileMode = 0444;  // DeviceFileMode of the MIG `access` capability files
constexpr int64_t kMaxMajor = 4095;      // MAJORBITS = 12 in the Linux kernel
constexpr int64_t kMaxCapMinor = 1 << 20;

// Whitespace-separated fields of a line.
std::vector<std::string> Fields(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

std::optional<int64_t> ParseNumber(const std::string& text, int64_t max) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0 || value > max) return std::nullopt;
  return value;
}

absl::Status LineError(const std::string& path, int line_no, std::string_view expected,
                       const std::string& line) {
  return absl::InvalidArgumentError(
      StrCat(path, ":", line_no, ": expected ", expected, ", got \"", line, "\""));
}

// Reads a file that may be absent; nullopt when it is.
absl::StatusOr<std::optional<std::string>> ReadOptional(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (absl::IsNotFound(text.status())) return std::optional<std::string>();
  if (!text.ok()) return text.status();
  return std::optional<std::string>(std::move(*text));
}

// The "Character devices:" section of /proc/devices: lines "<major> <name>" up to a blank line or
// the "Block devices:" header.
absl::StatusOr<std::map<std::string, int64_t, std::less<>>> ParseProcDevices(
    const std::string& path, const std::string& text) {
  std::map<std::string, int64_t, std::less<>> majors;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  bool in_char_section = false, seen_char_section = false;
  while (std::getline(in, line)) {
    ++line_no;
    const std::vector<std::string> fields = Fields(line);
    if (line == "Character devices:") {
      in_char_section = seen_char_section = true;
      continue;
    }
    if (fields.empty() || line == "Block devices:") {
      in_char_section = false;
      continue;
    }
    if (!in_char_section) continue;
    std::optional<int64_t> major;
    if (fields.size() == 2) major = ParseNumber(fields[0], kMaxMajor);
    if (!major) return LineError(path, line_no, "\"<major> <name>\"", line);
    majors.emplace(fields[1], *major);  // the first registration of a name wins
  }
  if (!seen_char_section) {
    return absl::InvalidArgumentError(
        StrCat(path, ": no \"Character devices:\" section (not a /proc/devices file?)"));
  }
  return majors;
}

// /proc/driver/nvidia-caps/mig-minors: lines "<capability> <minor>", e.g. "gpu0/gi1/access 12".
absl::StatusOr<std::map<std::string, int64_t>> ParseMigMinors(const std::string& path,
                                                              const std::string& text) {
  std::map<std::string, int64_t> minors;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::vector<std::string> fields = Fields(line);
    if (fields.empty()) continue;
    std::optional<int64_t> minor;
    if (fields.size() == 2) minor = ParseNumber(fields[1], kMaxCapMinor);
    if (!minor) return LineError(path, line_no, "\"<capability> <minor>\"", line);
    if (!minors.emplace(fields[0], *minor).second) {
      return LineError(path, line_no, StrCat("one line per capability (", fields[0], " repeats)"),
                       line);
    }
  }
  return minors;
}

CdiDeviceNode CharNode(std::string path, std::optional<int64_t> major, int64_t minor) {
  CdiDeviceNode node{.path = std::move(path)};
  if (major) {
    node.type = "c";
    node.major = *major;
    node.minor = minor;
  }
  return node;
}

}  // namespace

absl::StatusOr<DeviceNodes> DeviceNodes::Load(const std::string& host_root) {
  const std::filesystem::path root(host_root.empty() ? "/" : host_root);
  DeviceNodes nodes;

  const std::string devices_path = (root / "proc/devices").string();
  absl::StatusOr<std::optional<std::string>> devices = ReadOptional(devices_path);
  if (!devices.ok()) return devices.status();
  if (devices->has_value()) {
    absl::StatusOr<std::map<std::string, int64_t, std::less<>>> majors =
        ParseProcDevices(devices_path, **devices);
    if (!majors.ok()) return majors.status();
    nodes.char_majors_ = std::move(*majors);
  }

  const std::string minors_path = (root / "proc/driver/nvidia-caps/mig-minors").string();
  absl::StatusOr<std::optional<std::string>> minors = ReadOptional(minors_path);
  if (!minors.ok()) return minors.status();
  if (minors->has_value()) {
    absl::StatusOr<std::map<std::string, int64_t>> parsed = ParseMigMinors(minors_path, **minors);
    if (!parsed.ok()) return parsed.status();
    nodes.mig_minors_ = std::move(*parsed);
  }
  return nodes;
}

std::optional<int64_t> DeviceNodes::CharMajor(std::string_view name) const {
  const auto it = char_majors_.find(name);
  if (it == char_majors_.end()) return std::nullopt;
  return it->second;
}

std::vector<CdiDeviceNode> DeviceNodes::Common() const {
  const std::optional<int64_t> uvm = CharMajor("nvidia-uvm");
  return {
      CharNode("/dev/nvidiactl", kNvidiaMajor, 255),
      CharNode("/dev/nvidia-uvm", uvm, 0),
      CharNode("/dev/nvidia-uvm-tools", uvm, 1),
  };
}

CdiDeviceNode DeviceNodes::Gpu(int minor) const {
  return CharNode(StrCat("/dev/nvidia", minor), kNvidiaMajor, minor);
}

absl::StatusOr<int64_t> DeviceNodes::CapMinor(const std::string& cap, int64_t closed_form) const {
  if (!mig_minors_) return closed_form;
  const auto it = mig_minors_->find(cap);
  if (it == mig_minors_->end()) {
    return absl::NotFoundError(StrCat("capability ", cap, " is not listed in mig-minors"));
  }
  return it->second;
}

absl::StatusOr<std::vector<CdiDeviceNode>> DeviceNodes::MigAccess(int gpu_minor, int gi,
                                                                  int ci) const {
  if (gpu_minor < 0 || gpu_minor > kMaxGpuMinor) {
    return absl::InvalidArgumentError(
        StrCat("GPU minor ", gpu_minor, " is out of range (allowed: 0..", kMaxGpuMinor, ")"));
  }
  if (gi < 0 || gi > kMaxGpuInstanceId) {
    return absl::InvalidArgumentError(
        StrCat("GPU instance ID ", gi, " is out of range (allowed: 0..", kMaxGpuInstanceId, ")"));
  }
  if (ci < 0 || ci > kMaxComputeInstanceId) {
    return absl::InvalidArgumentError(StrCat(
        "compute instance ID ", ci, " is out of range (allowed: 0..", kMaxComputeInstanceId, ")"));
  }
  const std::string gi_cap = StrCat("gpu", gpu_minor, "/gi", gi, "/access");
  const std::string ci_cap = StrCat("gpu", gpu_minor, "/gi", gi, "/ci", ci, "/access");
  const int64_t base = 135 * int64_t{gpu_minor} + 9 * int64_t{gi};
  absl::StatusOr<int64_t> gi_minor = CapMinor(gi_cap, 3 + base);
  if (!gi_minor.ok()) return gi_minor.status();
  absl::StatusOr<int64_t> ci_minor = CapMinor(ci_cap, 4 + base + ci);
  if (!ci_minor.ok()) return ci_minor.status();

  const std::optional<int64_t> major = CharMajor("nvidia-caps");
  std::vector<CdiDeviceNode> nodes;
  for (const int64_t minor : {*gi_minor, *ci_minor}) {
    CdiDeviceNode node = CharNode(StrCat("/dev/nvidia-caps/nvidia-cap", minor), major, minor);
    // The type is known even without the major; the runtime checks it against the host node.
    node.type = "c";
    node.file_mode = kCapFileMode;
    nodes.push_back(std::move(node));
  }
  return nodes;
}

}  // namespace tessera::plugin
