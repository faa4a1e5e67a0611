#include "tessera/plugin/mps.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "tessera/api/strings.h"
#include "tessera/plugin/files.h"

extern char** environ;

namespace tessera::plugin {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr char kPidFile[] = "nvidia-cuda-mps-control.pid";
constexpr char kControlSocket[] = "control";
constexpr char kDeviceFile[] = "device";
// Output of the last control-binary run (the -d launcher or a "quit" client), for error messages.
constexpr char kCommandOutput[] = "control-command.out";
constexpr char kDaemonName[] = "nvidia-cuda-mps-control";
constexpr std::size_t kMaxUuidLength = 256;
constexpr std::size_t kMaxLabelLength = 63;
constexpr std::size_t kTailBytes = 2048;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsLabelChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

// FNV-1a: tiny, and fixed forever, which matters more here than quality (ids name directories
// that outlive the plugin version that made them).
std::uint32_t Fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

absl::Status ValidateUuid(std::string_view uuid) {
  if (uuid.empty()) return absl::InvalidArgumentError("MPS: empty device UUID");
  if (uuid.size() > kMaxUuidLength) {
    return absl::InvalidArgumentError(StrCat("MPS: device UUID longer than ", kMaxUuidLength));
  }
  for (char c : uuid) {
    // Printable, no space; no ',' because CUDA_VISIBLE_DEVICES would read a list.
    if (c <= ' ' || c > '~' || c == ',') {
      return absl::InvalidArgumentError(StrCat("MPS: malformed device UUID \"", uuid, "\""));
    }
  }
  return absl::OkStatus();
}

// Polls `done` with a short backoff until it holds or `deadline` passes; the last check is made at
// or after the deadline, so a zero timeout still looks once.
bool WaitUntil(Clock::time_point deadline, const std::function<bool()>& done) {
  auto pause = std::chrono::milliseconds(1);
  while (true) {
    if (done()) return true;
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
    pause = std::min(pause * 2, std::chrono::milliseconds(25));
  }
}

std::optional<pid_t> ReadPidFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return std::nullopt;
  long long pid = 0;
  std::size_t digits = 0;
  for (char c : *text) {
    if (c >= '0' && c <= '9') {
      pid = pid * 10 + (c - '0');
      if (++digits > 9) return std::nullopt;
    } else if (c != '\n' && c != ' ' && c != '\r' && c != '\t') {
      return std::nullopt;
    }
  }
  if (pid <= 0) return std::nullopt;
  return static_cast<pid_t>(pid);
}

// Alive and not a zombie: a daemon that exits while the plugin is its reaper (PID 1 of a container,
// or a subreaper) stays in /proc until reaped.
bool Alive(pid_t pid) {
  absl::StatusOr<std::string> stat = ReadWholeFile(StrCat("/proc/", pid, "/stat"));
  if (!stat.ok()) return false;
  const std::size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat->size()) return false;
  const char state = (*stat)[paren + 2];
  return state != 'Z' && state != 'X' && state != 'x';
}

// See "running" in the header. The environment check only rejects: a daemon whose environment
// lacks the variable (or cannot be read) is judged by its command line alone.
bool IsDaemonFor(pid_t pid, const std::string& pipe_dir) {
  if (!Alive(pid)) return false;
  absl::StatusOr<std::string> cmdline = ReadWholeFile(StrCat("/proc/", pid, "/cmdline"));
  if (!cmdline.ok() || cmdline->find(kDaemonName) == std::string::npos) return false;
  absl::StatusOr<std::string> env = ReadWholeFile(StrCat("/proc/", pid, "/environ"));
  if (env.ok()) {
    const std::string key = "CUDA_MPS_PIPE_DIRECTORY=";
    std::size_t start = 0;
    while (start < env->size()) {
      std::size_t end = env->find('\0', start);
      if (end == std::string::npos) end = env->size();
      const std::string_view entry(env->data() + start, end - start);
      if (entry.substr(0, key.size()) == key) return entry.substr(key.size()) == pipe_dir;
      start = end + 1;
    }
  }
  return true;
}

// A daemon normally leads its own process group (it called setsid), and the MPS servers it spawned
// belong to it: signal the group then, only the process otherwise.
void SignalDaemon(pid_t pid, int sig) {
  if (::getpgid(pid) == pid) {
    ::kill(-pid, sig);
  } else {
    ::kill(pid, sig);
  }
}

// Reaps `pid` if it is a child of this process (see Alive); a no-op otherwise.
void ReapIfChild(pid_t pid) { ::waitpid(pid, nullptr, WNOHANG); }

std::string Tail(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return "(none)";
  std::string tail = *text;
  if (tail.size() > kTailBytes) {
    tail = tail.substr(tail.size() - kTailBytes);
    const std::size_t newline = tail.find('\n');
    if (newline != std::string::npos) tail = tail.substr(newline + 1);
  }
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  return tail.empty() ? "(empty)" : tail;
}

absl::Status MakeDir(const std::string& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
    return absl::InternalError(StrCat("mkdir ", path, ": ", std::strerror(errno)));
  }
  // chmod, because mkdir's mode went through the umask.
  if (::chmod(path.c_str(), mode) != 0) {
    return absl::InternalError(StrCat("chmod ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return absl::InternalError(StrCat("remove ", path, ": ", ec.message()));
  return absl::OkStatus();
}

// Closes a descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

struct Command {
  std::string binary{};
  std::vector<std::string> args{};  // after argv[0]
  std::vector<std::string> env{};
  std::string stdin_text{};    // empty: /dev/null
  std::string output_path{};   // stdout and stderr
  std::string bind_shm_dir{};  // non-empty: new mount namespace with this on /dev/shm
};

// What the child reports through the error pipe when it fails before exec.
struct ChildFailure {
  int stage = 0;  // index into kStages
  int error = 0;  // errno
};
constexpr const char* kStages[] = {"exec", "unshare mount namespace", "make / a slave mount",
                                   "bind-mount /dev/shm"};

[[noreturn]] void ChildFail(int error_fd, int stage) {
  const ChildFailure failure{.stage = stage, .error = errno};
  [[maybe_unused]] const ssize_t n = ::write(error_fd, &failure, sizeof(failure));
  ::_exit(127);
}

// Between fork and exec: only async-signal-safe calls (the plugin is multi-threaded).
[[noreturn]] void RunChild(const Command& command, char* const argv[], char* const envp[],
                           int stdin_fd, int output_fd, int error_fd) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction default_action {};
  default_action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) ::sigaction(sig, &default_action, nullptr);
  ::dup2(stdin_fd, STDIN_FILENO);
  ::dup2(output_fd, STDOUT_FILENO);
  ::dup2(output_fd, STDERR_FILENO);
  // Nothing else of the plugin (gRPC sockets, other children's pipes) may leak into a daemon that
  // lives for days. The pipe to the parent is close-on-exec already.
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 65536; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  if (!command.bind_shm_dir.empty()) {
    if (::unshare(CLONE_NEWNS) != 0) ChildFail(error_fd, 1);
    // Slave: node mounts still propagate in, the /dev/shm bind does not leak out.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) ChildFail(error_fd, 2);
    if (::mount(command.bind_shm_dir.c_str(), "/dev/shm", nullptr, MS_BIND, nullptr) != 0) {
      ChildFail(error_fd, 3);
    }
  }
  ::execve(command.binary.c_str(), argv, envp);
  ChildFail(error_fd, 0);
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Runs `command` to completion (no shell) and returns its exit status, 128 + signal when a signal
// ended it. DeadlineExceeded (and the child killed) when it runs past `timeout`.
absl::StatusOr<int> Run(Command command, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv_strings{command.binary};
  argv_strings.insert(argv_strings.end(), command.args.begin(), command.args.end());
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(command.env);

  Fd output(::open(command.output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (output.get() < 0) {
    return absl::InternalError(StrCat("open ", command.output_path, ": ", std::strerror(errno)));
  }
  int stdin_fds[2] = {-1, -1};
  if (command.stdin_text.empty()) {
    stdin_fds[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  } else if (::pipe2(stdin_fds, O_CLOEXEC) != 0) {
    stdin_fds[0] = -1;
  }
  Fd stdin_read(stdin_fds[0]);
  Fd stdin_write(stdin_fds[1]);
  if (stdin_read.get() < 0) {
    return absl::InternalError(StrCat("stdin for the child: ", std::strerror(errno)));
  }
  // Written before the child exists: a few bytes fit the pipe buffer, and a child that dies early
  // cannot raise SIGPIPE in the plugin.
  if (stdin_write.get() >= 0) {
    if (::write(stdin_write.get(), command.stdin_text.data(), command.stdin_text.size()) !=
        static_cast<ssize_t>(command.stdin_text.size())) {
      return absl::InternalError(StrCat("write stdin: ", std::strerror(errno)));
    }
    stdin_write.Reset();
  }
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
  Fd error_read(error_pipe[0]);
  Fd error_write(error_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0) return absl::InternalError(StrCat("fork: ", std::strerror(errno)));
  if (pid == 0) {
    RunChild(command, argv.data(), envp.data(), stdin_read.get(), output.get(), error_write.get());
  }
  error_write.Reset();
  ChildFailure failure;
  ssize_t n;
  do {
    n = ::read(error_read.get(), &failure, sizeof(failure));
  } while (n < 0 && errno == EINTR);

  int status = 0;
  const bool exited =
      WaitUntil(Clock::now() + timeout, [&] { return ::waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
    return absl::DeadlineExceededError(StrCat("still running after ", timeout.count(), " ms"));
  }
  if (n == static_cast<ssize_t>(sizeof(failure))) {
    const int stage = failure.stage >= 0 && failure.stage < 4 ? failure.stage : 0;
    return absl::InternalError(StrCat(kStages[stage], ": ", std::strerror(failure.error)));
  }
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

}  // namespace

MpsManager::MpsManager(MpsOptions options)
    : options_([&] {
        if (!options.root_dir.empty()) {
          std::error_code ec;
          const fs::path absolute = fs::absolute(options.root_dir, ec);
          if (!ec) options.root_dir = absolute.lexically_normal().string();
          while (options.root_dir.size() > 1 && options.root_dir.back() == '/') {
            options.root_dir.pop_back();
          }
        }
        return std::move(options);
      }()) {}

std::string MpsManager::DaemonId(std::string_view device_uuid) {
  const std::string lower = Lower(device_uuid);
  std::string label;
  for (char c : lower) {
    if (IsLabelChar(c)) {
      label.push_back(c);
    } else if (!label.empty() && label.back() != '-') {
      label.push_back('-');
    }
  }
  while (!label.empty() && label.back() == '-') label.pop_back();
  if (label == lower && label.size() <= kMaxLabelLength) return label;

  char hash[9];
  std::snprintf(hash, sizeof(hash), "%08x", static_cast<unsigned>(Fnv1a(device_uuid)));
  label.resize(std::min(label.size(), kMaxLabelLength - 9));
  while (!label.empty() && label.back() == '-') label.pop_back();
  return label.empty() ? std::string(hash) : StrCat(label, "-", hash);
}

MpsDaemon MpsManager::Layout(std::string_view device_uuid) const {
  MpsDaemon d;
  d.id = DaemonId(device_uuid);
  d.device_uuid = std::string(device_uuid);
  const std::string dir = StrCat(options_.root_dir, "/", d.id);
  d.pipe_dir = dir + "/pipe";
  d.log_dir = dir + "/log";
  d.shm_dir = dir + "/shm";
  return d;
}

std::shared_ptr<std::mutex> MpsManager::DeviceLock(const std::string& id) const {
  std::lock_guard<std::mutex> lock(locks_mu_);
  std::shared_ptr<std::mutex>& mu = device_locks_[id];
  if (mu == nullptr) mu = std::make_shared<std::mutex>();
  return mu;
}

std::vector<std::string> MpsManager::Environment(const MpsDaemon& daemon) const {
  // The daemon starts with MPS's defaults whatever the plugin's own environment says: inherited
  // CUDA_MPS_* and CUDA_VISIBLE_DEVICES are dropped.
  auto overridden = [&](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    if (name.substr(0, 9) == "CUDA_MPS_" || name == "CUDA_VISIBLE_DEVICES") return true;
    for (const std::string& extra : options_.extra_env) {
      if (std::string_view(extra).substr(0, extra.find('=')) == name) return true;
    }
    return false;
  };
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) env.emplace_back(*e);
  }
  env.insert(env.end(), options_.extra_env.begin(), options_.extra_env.end());
  env.push_back(StrCat("CUDA_VISIBLE_DEVICES=", daemon.device_uuid));
  env.push_back(StrCat("CUDA_MPS_PIPE_DIRECTORY=", daemon.pipe_dir));
  env.push_back(StrCat("CUDA_MPS_LOG_DIRECTORY=", daemon.log_dir));
  return env;
}

absl::StatusOr<MpsDaemon> MpsManager::Ensure(std::string_view device_uuid) {
  if (absl::Status s = ValidateUuid(device_uuid); !s.ok()) return s;
  if (options_.root_dir.empty() || options_.root_dir[0] != '/') {
    return absl::InvalidArgumentError("MPS: no root directory configured");
  }
  MpsDaemon daemon = Layout(device_uuid);
  if (daemon.pipe_dir.size() > kMaxPipeDirLength) {
    return absl::InvalidArgumentError(
        StrCat("MPS: pipe directory ", daemon.pipe_dir, " is longer than ", kMaxPipeDirLength,
               " characters (UNIX socket paths are limited); use a shorter MPS root directory"));
  }
  std::shared_ptr<std::mutex> mu = DeviceLock(daemon.id);
  std::lock_guard<std::mutex> lock(*mu);

  const std::string dir = StrCat(options_.root_dir, "/", daemon.id);
  if (fs::exists(dir)) {
    absl::StatusOr<std::string> owner = ReadWholeFile(StrCat(dir, "/", kDeviceFile));
    if (owner.ok() && *owner != daemon.device_uuid) {
      return absl::FailedPreconditionError(
          StrCat("MPS: ", dir, " belongs to device ", *owner, ", not ", daemon.device_uuid));
    }
    const std::optional<pid_t> pid = ReadPidFile(StrCat(daemon.pipe_dir, "/", kPidFile));
    if (pid && IsDaemonFor(*pid, daemon.pipe_dir) &&
        fs::exists(StrCat(daemon.pipe_dir, "/", kControlSocket))) {
      daemon.pid = *pid;
      return daemon;
    }
    // Dead, foreign, or alive without its control socket (useless to clients): start afresh.
    if (absl::Status s = StopLocked(daemon); !s.ok()) return s;
  }
  return Start(std::move(daemon));
}

absl::StatusOr<MpsDaemon> MpsManager::Start(MpsDaemon daemon) {
  const std::string dir = StrCat(options_.root_dir, "/", daemon.id);
  auto fail = [&](const std::string& what) {
    std::string message =
        StrCat("MPS control daemon for ", daemon.device_uuid, " (", options_.control_binary,
               " -d): ", what, "; control.log: ", Tail(StrCat(daemon.log_dir, "/control.log")));
    // Do not leave a half-started daemon behind: the next Ensure would adopt or fight it.
    if (std::optional<pid_t> pid = ReadPidFile(StrCat(daemon.pipe_dir, "/", kPidFile));
        pid && IsDaemonFor(*pid, daemon.pipe_dir)) {
      SignalDaemon(*pid, SIGKILL);
    }
    RemoveTree(dir).IgnoreError();
    return absl::InternalError(message);
  };

  std::error_code ec;
  fs::create_directories(options_.root_dir, ec);
  if (ec) return fail(StrCat("create ", options_.root_dir, ": ", ec.message()));
  for (const auto& [path, mode] :
       {std::pair<std::string, mode_t>{options_.root_dir, 0711}, {dir, 0711}}) {
    if (absl::Status s = MakeDir(path, mode); !s.ok()) return fail(std::string(s.message()));
  }
  // First, so that List can name the device of any directory that holds more than this file.
  if (absl::Status s = WriteFileAtomically(StrCat(dir, "/", kDeviceFile), daemon.device_uuid, 0644);
      !s.ok()) {
    return fail(std::string(s.message()));
  }
  for (const auto& [path, mode] : {std::pair<std::string, mode_t>{daemon.pipe_dir, 0755},
                                   {daemon.log_dir, 0755},
                                   {daemon.shm_dir, 01777}}) {
    if (absl::Status s = MakeDir(path, mode); !s.ok()) return fail(std::string(s.message()));
  }

  const Clock::time_point deadline = Clock::now() + options_.start_timeout;
  const std::string output_path = StrCat(dir, "/", kCommandOutput);
  absl::StatusOr<int> exit_code =
      Run(Command{.binary = options_.control_binary,
                  .args = {"-d"},
                  .env = Environment(daemon),
                  .output_path = output_path,
                  .bind_shm_dir = options_.isolate_shm ? daemon.shm_dir : std::string()},
          options_.start_timeout);
  if (!exit_code.ok()) return fail(std::string(exit_code.status().message()));
  if (*exit_code != 0) {
    return fail(StrCat("exited with status ", *exit_code, ": ", Tail(output_path)));
  }
  const std::string pid_file = StrCat(daemon.pipe_dir, "/", kPidFile);
  const std::string control = StrCat(daemon.pipe_dir, "/", kControlSocket);
  const bool ready = WaitUntil(deadline, [&] {
    const std::optional<pid_t> pid = ReadPidFile(pid_file);
    if (!pid || !fs::exists(control) || !IsDaemonFor(*pid, daemon.pipe_dir)) return false;
    daemon.pid = *pid;
    return true;
  });
  if (!ready) {
    return fail(StrCat("no running daemon (pid file and control socket in ", daemon.pipe_dir,
                       ") after ", options_.start_timeout.count(), " ms"));
  }
  return daemon;
}

absl::Status MpsManager::Stop(std::string_view device_uuid) {
  if (absl::Status s = ValidateUuid(device_uuid); !s.ok()) return s;
  const MpsDaemon daemon = Layout(device_uuid);
  std::shared_ptr<std::mutex> mu = DeviceLock(daemon.id);
  std::lock_guard<std::mutex> lock(*mu);
  if (!fs::exists(StrCat(options_.root_dir, "/", daemon.id))) return absl::OkStatus();
  return StopLocked(daemon);
}

absl::Status MpsManager::StopLocked(const MpsDaemon& daemon) {
  const std::string dir = StrCat(options_.root_dir, "/", daemon.id);
  const pid_t pid = ReadPidFile(StrCat(daemon.pipe_dir, "/", kPidFile)).value_or(0);
  if (pid > 0 && IsDaemonFor(pid, daemon.pipe_dir)) {
    auto gone = [&] {
      ReapIfChild(pid);
      return !IsDaemonFor(pid, daemon.pipe_dir);
    };
    // The quit client's own failure does not matter: whether the daemon exits does.
    Run(Command{.binary = options_.control_binary,
                .env = Environment(daemon),
                .stdin_text = "quit\n",
                .output_path = StrCat(dir, "/", kCommandOutput)},
        options_.stop_timeout)
        .IgnoreError();
    bool stopped = WaitUntil(Clock::now() + options_.stop_timeout, gone);
    for (int sig : {SIGTERM, SIGKILL}) {
      if (stopped) break;
      SignalDaemon(pid, sig);
      stopped = WaitUntil(Clock::now() + options_.stop_timeout, gone);
    }
    if (!stopped) {
      return absl::InternalError(StrCat("MPS control daemon for ", daemon.device_uuid, " (pid ",
                                        pid, ") survived quit, SIGTERM and SIGKILL"));
    }
  }
  if (absl::Status s = RemoveTree(dir); !s.ok()) {
    return absl::InternalError(
        StrCat("MPS daemon for ", daemon.device_uuid, ": ", std::string(s.message())));
  }
  return absl::OkStatus();
}

bool MpsManager::Running(std::string_view device_uuid) const {
  if (!ValidateUuid(device_uuid).ok()) return false;
  const MpsDaemon daemon = Layout(device_uuid);
  const std::optional<pid_t> pid = ReadPidFile(StrCat(daemon.pipe_dir, "/", kPidFile));
  return pid && IsDaemonFor(*pid, daemon.pipe_dir);
}

std::vector<MpsDaemon> MpsManager::List() const {
  std::vector<MpsDaemon> out;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(options_.root_dir, ec)) {
    if (!entry.is_directory(ec)) continue;
    absl::StatusOr<std::string> uuid = ReadWholeFile((entry.path() / kDeviceFile).string());
    if (!uuid.ok() || !ValidateUuid(*uuid).ok()) continue;
    MpsDaemon daemon = Layout(*uuid);
    if (daemon.id != entry.path().filename().string()) continue;
    const std::optional<pid_t> pid = ReadPidFile(StrCat(daemon.pipe_dir, "/", kPidFile));
    if (pid && IsDaemonFor(*pid, daemon.pipe_dir)) daemon.pid = *pid;
    out.push_back(std::move(daemon));
  }
  std::sort(out.begin(), out.end(),
            [](const MpsDaemon& a, const MpsDaemon& b) { return a.id < b.id; });
  return out;
}

}  // namespace tessera::plugin
