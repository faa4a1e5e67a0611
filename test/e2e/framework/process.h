#ifndef TESSERA_TEST_E2E_FRAMEWORK_PROCESS_H_
#define TESSERA_TEST_E2E_FRAMEWORK_PROCESS_H_

// Child processes for the end-to-end suite: the test environment, kubelet simulators and the
// plugins under test. Each child runs in its own process group, gets a signal when the test
// binary dies (PR_SET_PDEATHSIG), and writes stdout and stderr to files the suite can print.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::e2e {

struct ProcessOptions {
  std::vector<std::string> argv;  // argv[0] is the program path
  // Added to (or overriding) the test binary's environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string stdout_path;  // required
  std::string stderr_path;  // empty: same file as stdout
  std::string stdin_path;   // empty: /dev/null
  int death_signal = 15;    // SIGTERM: lets `testenv up` stop its own children
};

class ChildProcess {
 public:
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(ProcessOptions options);

  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  // Stops the process group (SIGTERM, then SIGKILL after 30 s).
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  const ProcessOptions& options() const { return options_; }
  bool Running();
  // The raw wait status once the child has exited.
  std::optional<int> WaitStatus();

  // Waits until a line of stdout contains `needle` and returns that line. Fails when a line
  // starts with `fail_prefix` (if not empty), when the child exits, or at the deadline.
  absl::StatusOr<std::string> WaitForLine(std::string_view needle,
                                          std::chrono::milliseconds timeout,
                                          std::string_view fail_prefix = "");

  // SIGTERM to the process group, SIGKILL after `grace`; returns the wait status.
  int Stop(std::chrono::milliseconds grace = std::chrono::seconds(30));

  // Sends `signal` to the process group now.
  void Signal(int signal);

 private:
  explicit ChildProcess(ProcessOptions options) : options_(std::move(options)) {}
  void Reap(bool block);

  ProcessOptions options_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct CommandResult {
  int exit_code = -1;  // -1: killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;

  bool ok() const { return exit_code == 0; }
  // "exit=N" plus the tail of stderr, for assertion messages.
  std::string Describe() const;
};

// Runs a command to completion with `input` on stdin. Output goes through files in `scratch_dir`.
CommandResult RunCommand(const std::vector<std::string>& argv, std::string_view input,
                         std::chrono::milliseconds timeout, const std::string& scratch_dir,
                         const std::vector<std::pair<std::string, std::string>>& env = {});

// The last `lines` lines of a file, or a note saying why it could not be read.
std::string TailFile(const std::string& path, int lines);

absl::StatusOr<std::string> ReadFile(const std::string& path);
// Writes through a temporary file and rename(2), so readers never see half a file.
absl::Status WriteFileAtomic(const std::string& path, std::string_view contents);

}  // namespace tessera::e2e

#endif  // TESSERA_TEST_E2E_FRAMEWORK_PROCESS_H_
