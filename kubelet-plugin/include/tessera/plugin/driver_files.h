#ifndef TESSERA_PLUGIN_DRIVER_FILES_H_
#define TESSERA_PLUGIN_DRIVER_FILES_H_

// The NVIDIA driver's user-space files that a CUDA container needs (libcuda.so.1 and the libraries
// it loads, nvidia-smi and friends, the GSP firmware), found under the driver root and turned into
// read-only CDI bind mounts. Without them a workload only runs if its image carries a libcuda that
// matches the node's kernel driver.
//
// Two views of one directory: the driver root as this process sees it (`driver_root`: "/" on a
// bare host, "/driver-root" in the chart's plugin container) is where files are looked up;
// the same directory as the host sees it (`host_driver_root`: "/" or "/run/nvidia/driver") is
// what the mounts' host paths name, because the container runtime that applies the CDI spec runs
// on the host.
//
// What is looked for, the first hit per name in the directory order of LibraryDirs() and
// BinaryDirs():
//   libraries   libcuda.so.1 (a warning when missing, not an error), libnvidia-ml.so.1,
//               libnvidia-ptxjitcompiler.so.1, libnvidia-nvvm.so.4, libcudadebugger.so.1,
//               libnvidia-allocator.so.1, and the libraries whose soname carries the driver
//               version: libnvidia-gpucomp, libnvidia-pkcs11, libnvidia-pkcs11-openssl3
//               (.so.<version>)
//   binaries    nvidia-smi, nvidia-debugdump, nvidia-persistenced, nvidia-cuda-mps-control,
//               nvidia-cuda-mps-server
//   firmware    lib/firmware/nvidia/<version>/*.bin (GSP)
// The driver version is read from the name libcuda.so.1 links to (libcuda.so.<version>); without
// it the versioned libraries and the firmware are skipped with a warning.
//
// Each file is resolved inside the driver root: symlinks are followed as if the driver root were
// "/" (an absolute target is relative to the driver root, ".." stops at it), so a driver
// container's links never point into this process's own filesystem. The mount's source is the
// resolved file (libcuda.so.<version>); its destination is the path the name was found under
// (/usr/lib/x86_64-linux-gnu/libcuda.so.1), so the container's loader finds the soname without a
// symlink or an ldconfig run inside the container.

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "tessera/plugin/cdi.h"

namespace tessera::plugin {

struct DriverFilesOptions {
  std::string driver_root = "/";   // absolute, as this process sees it
  std::string host_driver_root{};  // absolute, as the host sees it; empty: driver_root
};

// What one discovery found.
struct DriverFileSet {
  std::string driver_version{};  // "550.54.15"; empty when unknown
  // One read-only bind mount per file, in discovery order (libraries in the order listed above,
  // binaries, firmware by name), options {"ro", "nosuid", "nodev", "rbind", "rprivate"}.
  std::vector<CdiMount> mounts{};
  // "<path in the driver root>: <why>" for names that exist but cannot be used (a dangling
  // symlink, a link loop, not a regular file).
  std::vector<std::string> skipped{};
  // What a CUDA workload will likely miss, in words (no libcuda.so.1, unknown driver version).
  std::vector<std::string> warnings{};

  bool operator==(const DriverFileSet&) const = default;
};

// Library directories relative to the driver root, in search order: this machine's multiarch
// directory first (usr/lib/x86_64-linux-gnu or usr/lib/aarch64-linux-gnu; a library of another
// architecture could not be loaded anyway), then usr/lib64, usr/lib, and the same under lib.
const std::vector<std::string>& LibraryDirs();
// usr/bin, bin.
const std::vector<std::string>& BinaryDirs();

// Scans the driver root (a few dozen lstat calls and one directory listing). InvalidArgument for
// a relative driver_root or host_driver_root, NotFound when driver_root is not a directory. A
// driver root without any NVIDIA file is an empty set with a warning, not an error.
absl::StatusOr<DriverFileSet> DiscoverDriverFiles(const DriverFilesOptions& options);

// Resolves `path` (absolute, relative to `root`) inside `root` as described above and returns the
// resolved path, absolute and relative to `root` ("/usr/lib64/libcuda.so.550.54.15"). NotFound
// when a component is missing (a dangling symlink included), FailedPrecondition for more than 40
// symlinks (a loop) or a non-directory in the middle; messages name the path inside the root.
absl::StatusOr<std::string> ResolveInRoot(const std::string& root, const std::string& path);

// The discovered set, shared by prepare calls (which only copy it) and refreshed on demand.
// Thread-safe.
class DriverFiles {
 public:
  explicit DriverFiles(DriverFilesOptions options);

  // Scans again and, on success, replaces the current set; on failure the previous set stays.
  absl::StatusOr<std::shared_ptr<const DriverFileSet>> Refresh();
  // The current set; empty before the first successful Refresh(). Never null.
  std::shared_ptr<const DriverFileSet> Current() const;
  // The current set's mounts (what a claim's CDI spec gets). No file system access.
  std::vector<CdiMount> Mounts() const;

  const DriverFilesOptions& options() const { return options_; }

 private:
  const DriverFilesOptions options_;
  mutable std::mutex mu_;
  std::shared_ptr<const DriverFileSet> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_DRIVER_FILES_H_
