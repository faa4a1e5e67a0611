// What every tessera binary shares on its command line: --version, and --validate FILE... which
// checks YAML or JSON documents (multi-document files included) the way the binary itself would
// read them, printing each normalized document or an error that names the file, document and field.
#ifndef TESSERA_TOOLS_CLI_H_
#define TESSERA_TOOLS_CLI_H_

#include <iosfwd>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace tessera::tools {

// The version string every binary prints.
std::string Version();

// Configures spdlog for a binary: `format` "text" (human) or "json" (one object per line with
// ts, level, logger, msg), `verbosity` 0 = info, 1 = debug, 2+ = trace (as klog's -v). Errors name
// the bad value.
absl::Status ConfigureLogging(const std::string& format, int verbosity, const std::string& name);
// Validates every document of every file. Returns 0 when all are valid, 1 otherwise.
int ValidateFiles(const std::vector<std::string>& paths, std::ostream& out, std::ostream& err);

}  // namespace tessera::tools

#endif  // TESSERA_TOOLS_CLI_H_
