#include "tessera/plugin/driver_files.h"

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <string_view>

#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

constexpr int kMaxSymlinks = 40;  // Linux's MAXSYMLINKS: more is treated as a loop

#if defined(__aarch64__)
constexpr char kMultiarch[] = "aarch64-linux-gnu";
#else
constexpr char kMultiarch[] = "x86_64-linux-gnu";
#endif

// Sonames libcuda.so.1 loads, or that tools in the container use, whose version is fixed.
constexpr std::string_view kCuda = "libcuda.so.1";
constexpr std::string_view kLibraries[] = {
    kCuda,
    "libnvidia-ml.so.1",
    "libnvidia-ptxjitcompiler.so.1",
    "libnvidia-nvvm.so.4",
    "libcudadebugger.so.1",
    "libnvidia-allocator.so.1",
};
// Sonames that end in the driver version (libnvidia-gpucomp.so.550.54.15).
constexpr std::string_view kVersionedLibraries[] = {
    "libnvidia-gpucomp.so.",
    "libnvidia-pkcs11.so.",
    "libnvidia-pkcs11-openssl3.so.",
};
constexpr std::string_view kBinaries[] = {
    "nvidia-smi",
    "nvidia-debugdump",
    "nvidia-persistenced",
    "nvidia-cuda-mps-control",
    "nvidia-cuda-mps-server",
};

// The driver's files must not be changed from a container, nor act as devices or setuid programs
// there; rprivate keeps mount events of the container and the host apart.
const std::vector<std::string>& MountOptions() {
  static const std::vector<std::string> options = {"ro", "nosuid", "nodev", "rbind", "rprivate"};
  return options;
}

// "/" -> "", "/a/b/" -> "/a/b": what a path relative to the root is appended to.
std::string Prefix(std::string_view root) {
  while (!root.empty() && root.back() == '/') root.remove_suffix(1);
  return std::string(root);
}

std::vector<std::string> Components(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

// `name` in the resolved directory `dir` ("/" or "/usr/lib64").
std::string Child(std::string_view dir, std::string_view name) {
  return StrCat(dir == "/" ? "" : dir, "/", name);
}

std::string Absolute(const std::vector<std::string>& parts) {
  return parts.empty() ? "/" : StrCat("/", StrJoin(parts, "/"));
}

absl::StatusOr<std::string> ReadLink(const std::string& path) {
  std::string target(PATH_MAX, '\0');
  const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
  if (n < 0) return absl::FailedPreconditionError(StrCat("readlink ", path, ": ", strerror(errno)));
  target.resize(static_cast<size_t>(n));
  return target;
}

// "550.54.15": digits and at least one dot, beginning and ending with a digit (so the "1" of
// libcuda.so.1 is not taken for a driver version).
bool IsVersion(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.back() == '.' || s.find('.') == s.npos) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); });
}

// The version in the name a library resolves to: "libcuda.so.550.54.15" -> "550.54.15".
std::string VersionOf(std::string_view resolved, std::string_view stem) {
  const size_t slash = resolved.rfind('/');
  const std::string_view name = resolved.substr(slash == std::string_view::npos ? 0 : slash + 1);
  if (!name.starts_with(stem)) return "";
  const std::string_view version = name.substr(stem.size());
  return IsVersion(version) ? std::string(version) : "";
}

// One scan of one driver root.
class Scanner {
 public:
  Scanner(std::string root, std::string host_prefix, DriverFileSet& out)
      : root_(std::move(root)),
        prefix_(Prefix(root_)),
        host_prefix_(std::move(host_prefix)),
        out_(out) {}

  // Resolves each directory once; those that are absent or not directories are dropped.
  std::vector<std::pair<std::string, std::string>> ExistingDirs(
      const std::vector<std::string>& dirs) const {
    std::vector<std::pair<std::string, std::string>> found;
    for (const std::string& dir : dirs) {
      absl::StatusOr<std::string> resolved = ResolveInRoot(root_, StrCat("/", dir));
      if (resolved.ok() && IsKind(*resolved, S_IFDIR)) found.emplace_back(dir, *resolved);
    }
    return found;
  }

  // Mounts the first `name` in `dirs` (pairs of the directory as searched and resolved) that
  // resolves to a regular file, at "/<dir>/<name>". Returns the resolved path, nullopt if none.
  std::optional<std::string> MountFirst(
      const std::vector<std::pair<std::string, std::string>>& dirs, std::string_view name) {
    for (const auto& [dir, resolved_dir] : dirs) {
      std::optional<std::string> resolved =
          Resolve(StrCat("/", dir, "/", name), Child(resolved_dir, name));
      if (resolved) return resolved;
    }
    return std::nullopt;
  }

  void MountFirmware(const std::string& version) {
    const std::string dir = StrCat("/lib/firmware/nvidia/", version);
    absl::StatusOr<std::string> resolved_dir = ResolveInRoot(root_, dir);
    if (!resolved_dir.ok() || !IsKind(*resolved_dir, S_IFDIR)) return;  // pre-GSP drivers have none
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry :
         std::filesystem::directory_iterator(StrCat(prefix_, *resolved_dir), ec)) {
      const std::string name = entry.path().filename().string();
      if (name.ends_with(".bin")) names.push_back(name);
    }
    if (ec) {
      out_.skipped.push_back(StrCat(dir, ": ", ec.message()));
      return;
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      (void)Resolve(StrCat(dir, "/", name), Child(*resolved_dir, name));
    }
  }

 private:
  bool IsKind(const std::string& resolved, mode_t kind) const {
    struct stat st {};
    return ::lstat(StrCat(prefix_, resolved).c_str(), &st) == 0 && (st.st_mode & S_IFMT) == kind;
  }

  // `entry` is where the name was looked for (the container path), `in_resolved_dir` the same
  // name in the resolved directory (no symlink before the last component, so lstat is safe).
  // Absent: nullopt, silently. Present but unusable: nullopt, with the reason in `skipped`.
  std::optional<std::string> Resolve(const std::string& entry, const std::string& in_resolved_dir) {
    struct stat st {};
    if (::lstat(StrCat(prefix_, in_resolved_dir).c_str(), &st) != 0) return std::nullopt;
    absl::StatusOr<std::string> resolved = ResolveInRoot(root_, in_resolved_dir);
    if (!resolved.ok()) {
      out_.skipped.push_back(StrCat(entry, ": ", resolved.status().message()));
      return std::nullopt;
    }
    if (!IsKind(*resolved, S_IFREG)) {
      out_.skipped.push_back(StrCat(entry, ": ", *resolved, " is not a regular file"));
      return std::nullopt;
    }
    out_.mounts.push_back({.host_path = StrCat(host_prefix_, *resolved),
                           .container_path = entry,
                           .options = MountOptions()});
    return *std::move(resolved);
  }

  const std::string root_;
  const std::string prefix_;
  const std::string host_prefix_;
  DriverFileSet& out_;
};

}  // namespace

const std::vector<std::string>& LibraryDirs() {
  static const std::vector<std::string> dirs = {
      StrCat("usr/lib/", kMultiarch), "usr/lib64", "usr/lib",
      StrCat("lib/", kMultiarch),     "lib64",     "lib",
  };
  return dirs;
}

const std::vector<std::string>& BinaryDirs() {
  static const std::vector<std::string> dirs = {"usr/bin", "bin"};
  return dirs;
}

absl::StatusOr<std::string> ResolveInRoot(const std::string& root, const std::string& path) {
  const std::string prefix = Prefix(root);
  std::deque<std::string> pending;
  for (std::string& part : Components(path)) pending.push_back(std::move(part));
  std::vector<std::string> done;  // resolved components: no symlink among them
  int links = 0;
  while (!pending.empty()) {
    std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == ".") continue;
    if (part == "..") {  // like "/..": the root is its own parent
      if (!done.empty()) done.pop_back();
      continue;
    }
    done.push_back(std::move(part));
    const std::string inside = Absolute(done);
    struct stat st {};
    if (::lstat(StrCat(prefix, inside).c_str(), &st) != 0) {
      const int err = errno;
      if (err == ENOENT) {
        std::vector<std::string> wanted = done;  // the whole path being looked up, not just
        wanted.insert(wanted.end(), pending.begin(), pending.end());  // its first missing part
        return absl::NotFoundError(
            StrCat(links > 0 ? "dangling symlink: " : "", Absolute(wanted), " does not exist"));
      }
      return absl::FailedPreconditionError(StrCat(inside, ": ", strerror(err)));
    }
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxSymlinks) {
        return absl::FailedPreconditionError(
            StrCat(path, ": more than ", kMaxSymlinks, " symbolic links (a loop)"));
      }
      absl::StatusOr<std::string> target = ReadLink(StrCat(prefix, inside));
      if (!target.ok()) return target.status();
      done.pop_back();
      if (target->starts_with('/')) done.clear();  // absolute: from the driver root
      std::vector<std::string> parts = Components(*target);
      pending.insert(pending.begin(), parts.begin(), parts.end());
      continue;
    }
    if (!pending.empty() && !S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(StrCat(inside, " is not a directory"));
    }
  }
  return Absolute(done);
}

absl::StatusOr<DriverFileSet> DiscoverDriverFiles(const DriverFilesOptions& options) {
  const std::string& host_root =
      options.host_driver_root.empty() ? options.driver_root : options.host_driver_root;
  if (!options.driver_root.starts_with('/')) {
    return absl::InvalidArgumentError(
        StrCat("driver root \"", options.driver_root, "\" is not an absolute path"));
  }
  if (!host_root.starts_with('/')) {
    return absl::InvalidArgumentError(
        StrCat("host driver root \"", host_root, "\" is not an absolute path"));
  }
  struct stat st {};
  if (::stat(options.driver_root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(StrCat("driver root ", options.driver_root, " is not a directory"));
  }

  DriverFileSet set;
  Scanner scan(options.driver_root, Prefix(host_root), set);
  const auto lib_dirs = scan.ExistingDirs(LibraryDirs());
  std::optional<std::string> cuda;
  std::optional<std::string> nvml;
  for (std::string_view name : kLibraries) {
    std::optional<std::string> found = scan.MountFirst(lib_dirs, name);
    if (name == kCuda) cuda = found;
    if (name == "libnvidia-ml.so.1") nvml = found;
  }
  if (cuda) set.driver_version = VersionOf(*cuda, "libcuda.so.");
  if (set.driver_version.empty() && nvml) set.driver_version = VersionOf(*nvml, "libnvidia-ml.so.");

  if (!cuda) {
    set.warnings.push_back(StrCat("no ", kCuda, " under ", options.driver_root, " (looked in ",
                                  StrJoin(LibraryDirs(), ", "),
                                  "): workloads need the driver's libraries in their image"));
  }
  if (set.driver_version.empty()) {
    if (cuda || nvml) {
      set.warnings.push_back(StrCat("driver version unknown (", cuda ? *cuda : *nvml,
                                    " is not named <library>.so.<version>): versioned libraries "
                                    "and GSP firmware are not mounted"));
    }
  } else {
    for (std::string_view stem : kVersionedLibraries) {
      (void)scan.MountFirst(lib_dirs, StrCat(stem, set.driver_version));
    }
  }

  const auto bin_dirs = scan.ExistingDirs(BinaryDirs());
  for (std::string_view name : kBinaries) (void)scan.MountFirst(bin_dirs, name);
  if (!set.driver_version.empty()) scan.MountFirmware(set.driver_version);
  return set;
}

DriverFiles::DriverFiles(DriverFilesOptions options)
    : options_(std::move(options)), current_(std::make_shared<const DriverFileSet>()) {}

absl::StatusOr<std::shared_ptr<const DriverFileSet>> DriverFiles::Refresh() {
  absl::StatusOr<DriverFileSet> found = DiscoverDriverFiles(options_);
  if (!found.ok()) return found.status();
  auto set = std::make_shared<const DriverFileSet>(*std::move(found));
  std::lock_guard<std::mutex> lock(mu_);
  current_ = set;
  return set;
}

std::shared_ptr<const DriverFileSet> DriverFiles::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

std::vector<CdiMount> DriverFiles::Mounts() const { return Current()->mounts; }

}  // namespace tessera::plugin
