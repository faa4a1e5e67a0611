// What every tessera binary shares on its command line: --version, and --validate FILE... which
// checks YAML or JSON documents (multi-document files included) the way the binary itself would
// read them, printing each normalized document or an error that names the file, document and field.
#ifndef TESSERA_TOOLS_CLI_H_
#define TESSERA_TOOLS_CLI_H_

#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace CLI {
class App;
}  // namespace CLI

namespace tessera::tools {

// The version string every binary prints.
std::string Version();

// Configures spdlog for a binary: `format` "text" (human) or "json" (one object per line with
// ts, level, logger, msg), `verbosity` 0 = info, 1 = debug, 2+ = trace (as klog's -v). Errors name
// the bad value.
absl::Status ConfigureLogging(const std::string& format, int verbosity, const std::string& name);
// Validates every document of every file. Returns 0 when all are valid, 1 otherwise.
int ValidateFiles(const std::vector<std::string>& paths, std::ostream& out, std::ostream& err);

// The flags every tessera binary shares; the values set before AddCommonFlags are the defaults.
struct CommonFlags {
  bool version = false;
  std::vector<std::string> validate{};
  std::string metrics_address{};  // "[host]:port", "0": off
  std::string health_address{};
  std::string log_format = "text";
  int verbosity = 0;
};
// --version, --validate FILE..., --metrics-address, --health-address, --log-format, -v (the last
// four also TESSERA_METRICS_ADDRESS, TESSERA_HEALTH_ADDRESS, TESSERA_LOG_FORMAT,
// TESSERA_LOG_VERBOSITY).
void AddCommonFlags(CLI::App& app, CommonFlags& flags);
// What --version or --validate asks for, done: the exit code, or nullopt when neither was given.
std::optional<int> RunInfoFlags(const CommonFlags& flags, std::string_view binary);

// SIGTERM and SIGINT stop a binary. Block them first thing in main, before any thread starts, so
// that every thread inherits the mask; then WaitForStopSignal (on any one thread) returns the
// signal that arrived.
void BlockStopSignals();
int WaitForStopSignal();

}  // namespace tessera::tools

#endif  // TESSERA_TOOLS_CLI_H_
