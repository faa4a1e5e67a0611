#ifndef TESSERA_PLUGIN_FILES_H_
#define TESSERA_PLUGIN_FILES_H_

// Crash-safe file writes: the new content goes to a temporary file in the same directory, is
// fsynced, renamed over the target and the directory is fsynced, so a reader (or the plugin after a
// crash or power loss) sees either the old or the new file, never a mix.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
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

// A file of newline-terminated lines that only grows, except when it is rewritten whole; shared by
// the plugin processes of a node (a plugin and its successor during a rolling update). The
// checkpoint's claim journal.
//
// Every operation holds an in-process mutex and an exclusive flock on the file, so lines of
// concurrent writers never interleave and a rewrite never loses a line another process wrote. A
// line goes out in one write(2). A process killed in the middle of one leaves a torn last line
// without its newline: nobody was told it was written, readers ignore it, and the next Write cuts
// it off before appending.
//
// Rewrite replaces the file (temp file, rename). Other processes notice the replaced file when
// they next write (its link count is 0) and reopen the path.
//
// With `sync`, a line is on disk once WaitDurable(ticket) returns, and Rewrite fsyncs the new file
// and the directory. Writers waiting at the same time share one fdatasync (group commit): a flush
// covers every line written before it began. Thread-safe.
class AppendLog {
 public:
  // Opens `path`, creating an empty file (0600) if it does not exist. A Write to an empty file
  // (one deleted behind the log's back included) puts `header` (a line, without its newline) first.
  static absl::StatusOr<std::unique_ptr<AppendLog>> Open(std::string path, bool sync,
                                                         std::string header = "");
  ~AppendLog();
  AppendLog(const AppendLog&) = delete;
  AppendLog& operator=(const AppendLog&) = delete;

  const std::string& path() const { return path_; }
  bool sync() const { return sync_; }

  // Appends `line` (without its newline; it must not contain one). Returns the ticket to wait
  // for (with `sync`) and sets `*size` to the file's size afterwards.
  absl::StatusOr<uint64_t> Write(std::string_view line, uint64_t* size);
  // Returns once every line up to `ticket` is on disk (at once without `sync`).
  absl::Status WaitDurable(uint64_t ticket);

  // Replaces the file with `rewrite(current)`. `current` is the file's content (a torn last line
  // included) when `read` is set or anything but this object's own Writes changed the file since
  // its last Rewrite here; otherwise null, so that a caller who knows what it wrote may rebuild
  // the file from that.
  using Rewriter = std::function<absl::StatusOr<std::string>(const std::string* current)>;
  absl::Status Rewrite(const Rewriter& rewrite, bool read = false);

 private:
  struct Fd;
  AppendLog(std::string path, bool sync, std::string header)
      : path_(std::move(path)), sync_(sync), header_(std::move(header)) {}
  // Takes the flock on the current file (reopening the path after a rewrite by another process)
  // and returns its size.
  absl::StatusOr<uint64_t> LockCurrent() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unlock() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  const bool sync_;
  const std::string header_;
  std::mutex mu_;
  std::shared_ptr<Fd> fd_ ABSL_GUARDED_BY(mu_);
  uint64_t end_ ABSL_GUARDED_BY(mu_) = 0;  // where this object's last write or rewrite ended
  bool own_ ABSL_GUARDED_BY(mu_) = false;  // nothing else changed the file since (see Rewrite)

  // Group commit: tickets are numbered in write order; `durable_` is the highest on disk.
  std::mutex sync_mu_;
  std::condition_variable synced_;
  uint64_t written_ ABSL_GUARDED_BY(sync_mu_) = 0;
  uint64_t durable_ ABSL_GUARDED_BY(sync_mu_) = 0;
  bool flushing_ ABSL_GUARDED_BY(sync_mu_) = false;
};

}  // namespace tessera::plugin

#endif  // TESSERA_PLUGIN_FILES_H_
