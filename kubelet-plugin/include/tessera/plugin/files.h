#ifndef TESSERA_PLUGIN_FILES_H_
#define TESSERA_PLUGIN_FILES_H_

// Crash-safe file writes: the new content goes to a temporary file in the same directory, is
// fsynced, renamed over the target and the directory is fsynced, so a reader (or the plugin after a
// crash or power loss) sees either the old or the new file, never a mix.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace tessera::plugin {

// `durable` false skips the fsyncs: still atomic for readers and across a crash of the process,
// not across a power loss (for state that does not outlive the machine anyway).
absl::Status WriteFileAtomically(const std::string& path, std::string_view content, int mode = 0600,
                                 bool durable = true);
// fsyncs a directory, so that a rename or unlink in it survives a power loss. Best effort: a
// directory that cannot be opened is left alone.
void SyncDirectory(const std::string& dir);
// NotFound if the file does not exist.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_FILES_H_
