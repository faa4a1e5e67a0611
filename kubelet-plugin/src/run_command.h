#ifndef TESSERA_PLUGIN_RUN_COMMAND_H_
#define TESSERA_PLUGIN_RUN_COMMAND_H_

// Running a driver tool (nvidia-smi) with a bounded wait: no shell, no PATH search, stdin from
// /dev/null, stdout and stderr captured together. posix_spawn, so it is safe in a process with
// threads.

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::plugin {

struct CommandResult {
  bool timed_out = false;  // killed with SIGKILL after the timeout
  int exit_code = -1;      // when it exited
  int signal = 0;          // when a signal ended it
  std::string output{};    // stdout and stderr as they came, at most 64 KiB
};

// Runs argv[0] (a path) with the arguments that follow. `environment` entries ("NAME=value")
// replace or extend this process's environment. An error only when the command cannot be started;
// how it ended is in the result.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::vector<std::string>& environment,
                                         std::chrono::milliseconds timeout);

// The command line for messages, arguments quoted where a shell would need it.
std::string CommandLine(const std::vector<std::string>& argv);

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_RUN_COMMAND_H_
