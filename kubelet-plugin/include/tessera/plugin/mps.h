#ifndef TESSERA_PLUGIN_MPS_H_
#define TESSERA_PLUGIN_MPS_H_

// MPS control daemons, one per physical device (a GPU or a MIG instance, named by its UUID), shared
// by every claim that shares that device. The manager only starts, adopts, checks and stops
// daemons: per-claim limits reach the clients through their CDI environment
// (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE, CUDA_MPS_PINNED_DEVICE_MEM_LIMIT), which can only lower the
// daemon's defaults, so every daemon keeps the defaults (100 %, no memory limit). Which claims use
// a daemon, and so when to stop it, is the caller's bookkeeping.
//
// Layout, under `root_dir` (the directories are the state: nothing is kept in memory, so a new
// manager, e.g. in a restarted plugin, sees exactly what the previous one left):
//
//   <root>/                 0711
//   <root>/<id>/            0711  id = DaemonId(device uuid)
//   <root>/<id>/device            the device UUID, written first (List reads it back)
//   <root>/<id>/pipe/       0755  CUDA_MPS_PIPE_DIRECTORY: the daemon's sockets and its pid file
//   <root>/<id>/log/        0755  CUDA_MPS_LOG_DIRECTORY: control.log, server.log
//   <root>/<id>/shm/        1777  bound on /dev/shm of the clients (and of the daemon, see
//                                 MpsOptions::isolate_shm)
//
// Why these modes: an MPS server runs with the UID of its clients and clients may run as any UID,
// so the pipe and log directories must be reachable by others (searchable parents, readable pipe
// dir; the control socket itself is the daemon's business), and the shared-memory directory is
// world-writable with the sticky bit like /dev/shm itself. Nothing is listable from outside.
// [To check on a GPU node with a non-root client.]
//
// A daemon is "running" when its pid file names a live process (not a zombie) whose command line
// contains "nvidia-cuda-mps-control" and, where its environment is readable, whose
// CUDA_MPS_PIPE_DIRECTORY is this daemon's pipe directory: a recycled pid is never mistaken for a
// daemon, and never signalled.
//
// Survival across plugin restarts: the daemon detaches into its own session, so it outlives the
// plugin process. It does not outlive the plugin's container unless the pod shares the host's PID
// namespace and the daemon escapes the container's cgroup (a runtime kills what is left in both
// when it removes a container); a daemon that died that way is found stale and restarted by Ensure.
//
// Thread safety: every method may be called from any thread. Calls for different devices run in
// parallel; calls for the same device are serialised inside the manager (one process-wide lock per
// device id), but the caller still serialises the decision to stop a daemon with its own claim
// bookkeeping, so that a claim being prepared never joins a daemon that is being stopped.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tessera::plugin {

struct MpsOptions {
  // Path of nvidia-cuda-mps-control (from the driver root on a node; the fake in tests and demos).
  std::string control_binary{};
  // <plugin data dir>/mps. Made absolute: the daemon may change its working directory. Keep it
  // short: the daemon's UNIX sockets live in <root>/<id>/pipe (the id has up to 63 characters,
  // 40 for a GPU or a current MIG UUID), and a socket path has at most 107 bytes. Ensure refuses a
  // pipe directory longer than kMaxPipeDirLength, but other sockets there may have longer names
  // than "control" [unverified: which names the driver uses], so the shorter the better, e.g.
  // /var/lib/tessera/mps (26) rather than /var/lib/kubelet/plugins/gpu.tessera.dev/mps (44).
  std::string root_dir{};
  std::chrono::milliseconds start_timeout{10000};
  std::chrono::milliseconds stop_timeout{10000};
  // "NAME=value" entries added to the environment of every control-binary run (after the plugin's
  // own environment and before the MPS variables, which always win). Tests inject faults with it.
  std::vector<std::string> extra_env{};
  // Start the daemon in a mount namespace of its own in which shm_dir is bound on /dev/shm. MPS
  // servers exchange shared memory with their clients through /dev/shm, and a client container gets
  // shm_dir there, so on a node the daemon (and the servers it spawns, which inherit its namespace)
  // must see the same directory. Needs CAP_SYS_ADMIN. Off for the fake binary.
  bool isolate_shm = false;
};

struct MpsDaemon {
  std::string id{};           // DaemonId(device_uuid)
  std::string device_uuid{};  // CUDA_VISIBLE_DEVICES of the daemon
  std::string pipe_dir{}, log_dir{}, shm_dir{};
  pid_t pid = 0;  // 0 when no daemon is running for this device (List only)
};

class MpsManager {
 public:
  // Longest accepted pipe directory: the 107 bytes of a socket path less "/control", the control
  // socket every daemon creates there. Beyond it, MPS cannot work at all.
  static constexpr std::size_t kMaxPipeDirLength = 99;

  explicit MpsManager(MpsOptions options);
  MpsManager(const MpsManager&) = delete;
  MpsManager& operator=(const MpsManager&) = delete;

  // A DNS label (lower-case letters, digits and '-', at most 63 characters, alphanumeric at both
  // ends) naming the device's daemon: the lower-cased UUID when that is already a label
  // ("GPU-3f2a…" → "gpu-3f2a…", "MIG-9c1e…" → "mig-9c1e…"); otherwise the sanitised, shortened
  // UUID followed by a hash of the original, so that distinct UUIDs get distinct ids
  // ("MIG-GPU-<uuid>/1/0" → "mig-gpu-<uuid>-1-0-<8 hex>"). Stable across versions: it names
  // directories that outlive the plugin.
  static std::string DaemonId(std::string_view device_uuid);

  // The device's running daemon: adopted if one is running (see the file comment), otherwise
  // started after removing whatever a dead one left behind. Starting runs `<control_binary> -d`
  // with CUDA_VISIBLE_DEVICES=<uuid> and the daemon's pipe and log directories in its environment,
  // and waits (at most start_timeout) until the daemon has written its pid file and created its
  // control socket. InvalidArgument for an empty or malformed UUID or a too long pipe directory;
  // otherwise errors name the device, the binary, what failed and the tail of control.log.
  absl::StatusOr<MpsDaemon> Ensure(std::string_view device_uuid);

  // Stops the device's daemon and removes its directories: sends "quit" through
  // `<control_binary>` (stdin "quit\n", same environment), waits for the daemon to exit, and on
  // timeout signals its process group with SIGTERM, then SIGKILL (stop_timeout bounds each step).
  // OK when there is no daemon or only a dead one's leftovers.
  absl::Status Stop(std::string_view device_uuid);

  bool Running(std::string_view device_uuid) const;

  // Every daemon directory under root_dir, running (pid set) or stale (pid 0), sorted by id, for
  // reconciliation at start-up. A directory without a device file (a start cut short before it
  // wrote anything) is skipped; the next Ensure for its device cleans it.
  std::vector<MpsDaemon> List() const;

 private:
  MpsDaemon Layout(std::string_view device_uuid) const;
  std::shared_ptr<std::mutex> DeviceLock(const std::string& id) const;
  absl::StatusOr<MpsDaemon> Start(MpsDaemon daemon);
  absl::Status StopLocked(const MpsDaemon& daemon);
  std::vector<std::string> Environment(const MpsDaemon& daemon) const;

  const MpsOptions options_;
  mutable std::mutex locks_mu_;
  mutable std::map<std::string, std::shared_ptr<std::mutex>> device_locks_
      ABSL_GUARDED_BY(locks_mu_);
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_MPS_H_
