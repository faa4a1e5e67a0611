#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/status/status.h"
#include "tessera/api/strings.h"

extern char** environ;

namespace tessera::e2e {
namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoMessage(std::string_view what) { return StrCat(what, ": ", std::strerror(errno)); }

// argv and envp as the C arrays execve wants; built before fork so the child only execs.
struct ExecArgs {
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

ExecArgs BuildExecArgs(const std::vector<std::string>& argv,
                       const std::vector<std::pair<std::string, std::string>>& env) {
  ExecArgs out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const auto& [key, value] : env) {
      if (entry.size() > key.size() && entry.substr(0, key.size()) == key &&
          entry[key.size()] == '=') {
        overridden = true;
      }
    }
    if (!overridden) out.env_storage.emplace_back(entry);
  }
  for (const auto& [key, value] : env) out.env_storage.push_back(StrCat(key, "=", value));
  for (const auto& a : argv) out.argv.push_back(const_cast<char*>(a.c_str()));
  out.argv.push_back(nullptr);
  for (auto& e : out.env_storage) out.envp.push_back(e.data());
  out.envp.push_back(nullptr);
  return out;
}

// Forks and execs. In the child only async-signal-safe calls happen before execve.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv,
                            const std::vector<std::pair<std::string, std::string>>& env,
                            const std::string& stdin_path, const std::string& stdout_path,
                            const std::string& stderr_path, int death_signal) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  ExecArgs args = BuildExecArgs(argv, env);
  int in = open(stdin_path.empty() ? "/dev/null" : stdin_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return absl::InternalError(ErrnoMessage(StrCat("open ", stdin_path)));
  int out = open(stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return absl::InternalError(ErrnoMessage(StrCat("open ", stdout_path)));
  }
  int err = stderr_path.empty()
                ? dup(out)
                : open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (err < 0) {
    close(in);
    close(out);
    return absl::InternalError(ErrnoMessage(StrCat("open ", stderr_path)));
  }
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, death_signal);
    if (getppid() != parent) _exit(127);  // the parent died before prctl took effect
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(args.argv[0], args.argv.data(), args.envp.data());
    _exit(127);
  }
  close(in);
  close(out);
  close(err);
  if (pid < 0) return absl::InternalError(ErrnoMessage("fork"));
  setpgid(pid, pid);  // also from the parent, so the group exists before we signal it
  return pid;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return StrCat("exit=", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return StrCat("signal=", WTERMSIG(status));
  return StrCat("status=", status);
}

}  // namespace

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(ProcessOptions options) {
  if (options.stdout_path.empty()) return absl::InvalidArgumentError("stdout_path is required");
  std::unique_ptr<ChildProcess> child(new ChildProcess(std::move(options)));
  const ProcessOptions& o = child->options_;
  absl::StatusOr<pid_t> pid =
      Spawn(o.argv, o.env, o.stdin_path, o.stdout_path, o.stderr_path, o.death_signal);
  if (!pid.ok()) return pid.status();
  child->pid_ = *pid;
  return child;
}

ChildProcess::~ChildProcess() { Stop(); }

void ChildProcess::Reap(bool block) {
  if (status_.has_value() || pid_ <= 0) return;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid_) status_ = status;
}

bool ChildProcess::Running() {
  Reap(false);
  return pid_ > 0 && !status_.has_value();
}

std::optional<int> ChildProcess::WaitStatus() {
  Reap(false);
  return status_;
}

void ChildProcess::Signal(int signal) {
  if (pid_ > 0) kill(-pid_, signal);
}

int ChildProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return -1;
  if (Running()) {
    Signal(SIGTERM);
    const auto deadline = Clock::now() + grace;
    while (Running() && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (Running()) {
      Signal(SIGKILL);
      Reap(true);
    }
  }
  // Whatever the child left in its group goes too.
  kill(-pid_, SIGKILL);
  return status_.value_or(-1);
}

absl::StatusOr<std::string> ChildProcess::WaitForLine(std::string_view needle,
                                                      std::chrono::milliseconds timeout,
                                                      std::string_view fail_prefix) {
  const auto deadline = Clock::now() + timeout;
  std::size_t offset = 0;
  std::string pending;
  while (true) {
    std::ifstream in(options_.stdout_path, std::ios::binary);
    if (in) {
      in.seekg(static_cast<std::streamoff>(offset));
      std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      offset += chunk.size();
      pending += chunk;
      std::size_t newline;
      while ((newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        if (line.find(needle) != std::string::npos) return line;
        if (!fail_prefix.empty() && line.rfind(fail_prefix, 0) == 0) {
          return absl::FailedPreconditionError(StrCat(options_.argv[0], ": ", line));
        }
      }
    }
    if (!Running()) {
      return absl::FailedPreconditionError(StrCat(options_.argv[0], " ended (",
                                                  DescribeWaitStatus(*status_),
                                                  ") before printing \"", needle, "\""));
    }
    if (Clock::now() >= deadline) {
      return absl::DeadlineExceededError(StrCat(options_.argv[0], " did not print \"", needle,
                                                "\" within ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::string CommandResult::Describe() const {
  std::string tail = err.size() > 2000 ? err.substr(err.size() - 2000) : err;
  return StrCat(timed_out ? "timed out, " : "", "exit=", exit_code, "; stderr: ", tail);
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::string_view input,
                         std::chrono::milliseconds timeout, const std::string& scratch_dir,
                         const std::vector<std::pair<std::string, std::string>>& env) {
  static std::atomic<int> counter{0};
  const std::string base = StrCat(scratch_dir, "/cmd-", getpid(), "-", counter++);
  CommandResult result;
  std::string in_path = base + ".in", out_path = base + ".out", err_path = base + ".err";
  if (absl::Status s = WriteFileAtomic(in_path, input); !s.ok()) {
    result.err = s.ToString();
    return result;
  }
  absl::StatusOr<pid_t> pid = Spawn(argv, env, in_path, out_path, err_path, SIGKILL);
  if (!pid.ok()) {
    result.err = pid.status().ToString();
    return result;
  }
  const auto deadline = Clock::now() + timeout;
  int status = 0;
  while (true) {
    pid_t r = waitpid(*pid, &status, WNOHANG);
    if (r == *pid) break;
    if (Clock::now() >= deadline) {
      kill(-*pid, SIGKILL);
      waitpid(*pid, &status, 0);
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = ReadFile(out_path).value_or("");
  result.err = ReadFile(err_path).value_or("");
  for (const auto& p : {in_path, out_path, err_path}) unlink(p.c_str());
  return result;
}

std::string TailFile(const std::string& path, int lines) {
  std::ifstream in(path);
  if (!in) return StrCat("(cannot read ", path, ")");
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(std::move(line));
    if (static_cast<int>(last.size()) > lines) last.pop_front();
  }
  std::ostringstream out;
  for (const auto& l : last) out << "    " << l << "\n";
  return out.str();
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(ErrnoMessage(StrCat("open ", path)));
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

absl::Status WriteFileAtomic(const std::string& path, std::string_view contents) {
  const std::string tmp = StrCat(path, ".tmp.", getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(ErrnoMessage(StrCat("create ", tmp)));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    if (!out) return absl::InternalError(ErrnoMessage(StrCat("write ", tmp)));
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(ErrnoMessage(StrCat("rename ", tmp, " to ", path)));
  }
  return absl::OkStatus();
}

}  // namespace tessera::e2e
