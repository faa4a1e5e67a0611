#include "tessera/plugin/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "tessera/api/strings.h"

namespace tessera::plugin {
namespace {

absl::Status Errno(std::string_view what, const std::string& path) {
  return absl::InternalError(StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  std::size_t written = 0;
  while (written < data.size()) {
    const ssize_t n = ::write(fd, data.data() + written, data.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("write", path);
    written += static_cast<std::size_t>(n);
  }
  return absl::OkStatus();
}

// The first `size` bytes of the open file (fewer if it is shorter).
absl::Status ReadAll(int fd, uint64_t size, std::string* out, const std::string& path) {
  out->resize(size);
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out->data() + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("read", path);
    if (n == 0) break;
    done += static_cast<uint64_t>(n);
  }
  out->resize(done);
  return absl::OkStatus();
}

}  // namespace

absl::Status WriteFileAtomically(const std::string& path, std::string_view content, int mode,
                                 bool durable) {
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  const std::string tmp = StrCat(path, ".tmp.", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("create", tmp);
  if (absl::Status s = WriteAll(fd, content, tmp); !s.ok()) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  if (durable && ::fsync(fd) != 0) {
    const absl::Status s = Errno("fsync", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const absl::Status s = Errno("rename to", path);
    ::unlink(tmp.c_str());
    return s;
  }
  if (durable) SyncDirectory(dir);
  return absl::OkStatus();
}

void SyncDirectory(const std::string& dir) {
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(StrCat(path, " does not exist"));
    return absl::PermissionDeniedError(StrCat("cannot read ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// ---------------------------------------------------------------------------------------------
// AppendLog.

struct AppendLog::Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

absl::StatusOr<std::unique_ptr<AppendLog>> AppendLog::Open(std::string path, bool sync,
                                                           std::string header) {
  std::unique_ptr<AppendLog> log(new AppendLog(std::move(path), sync, std::move(header)));
  std::lock_guard<std::mutex> lock(log->mu_);
  if (absl::StatusOr<uint64_t> size = log->LockCurrent(); !size.ok()) return size.status();
  log->Unlock();
  return log;
}

AppendLog::~AppendLog() = default;

absl::StatusOr<uint64_t> AppendLog::LockCurrent() {
  while (true) {
    if (fd_ == nullptr) {
      auto fd = std::make_shared<Fd>();
      fd->fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
      if (fd->fd < 0) return Errno("open", path_);
      fd_ = std::move(fd);
      own_ = false;
    }
    while (::flock(fd_->fd, LOCK_EX) != 0) {
      if (errno != EINTR) return Errno("lock", path_);
    }
    struct stat st {};
    if (::fstat(fd_->fd, &st) != 0) {
      const absl::Status s = Errno("stat", path_);
      Unlock();
      return s;
    }
    if (st.st_nlink > 0) {
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      if (size != end_) own_ = false;  // another process wrote
      return size;
    }
    // Another process rewrote the file; what this one wrote before is in the new file.
    Unlock();
    fd_.reset();
  }
}

void AppendLog::Unlock() { ::flock(fd_->fd, LOCK_UN); }

absl::StatusOr<uint64_t> AppendLog::Write(std::string_view line, uint64_t* size) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<uint64_t> current = LockCurrent();
  if (!current.ok()) return current.status();
  uint64_t start = *current;
  absl::Status s;
  if (start != end_ && start > 0) {
    // Not where this object left it: a process killed mid-line may have left a torn tail.
    char last = '\n';
    if (::pread(fd_->fd, &last, 1, static_cast<off_t>(start - 1)) != 1) s = Errno("read", path_);
    std::string content;
    if (s.ok() && last != '\n') s = ReadAll(fd_->fd, start, &content, path_);
    if (s.ok() && last != '\n') {
      const std::size_t newline = content.rfind('\n');
      start = newline == std::string::npos ? 0 : newline + 1;
      if (::ftruncate(fd_->fd, static_cast<off_t>(start)) != 0) s = Errno("truncate", path_);
    }
  }
  std::string out;
  if (s.ok()) {
    if (start == 0 && !header_.empty()) out = header_ + '\n';
    out.append(line);
    out.push_back('\n');
    s = WriteAll(fd_->fd, out, path_);
    // A line cut short (disk full) must not stay in front of the next one.
    if (!s.ok()) (void)::ftruncate(fd_->fd, static_cast<off_t>(start));
  }
  uint64_t ticket = 0;
  if (s.ok()) {
    end_ = start + out.size();
    if (size != nullptr) *size = end_;
    std::lock_guard<std::mutex> sync_lock(sync_mu_);
    ticket = ++written_;
  }
  Unlock();
  if (!s.ok()) return s;
  return ticket;
}

absl::Status AppendLog::WaitDurable(uint64_t ticket) {
  if (!sync_) return absl::OkStatus();
  std::unique_lock<std::mutex> lock(sync_mu_);
  while (durable_ < ticket) {
    if (flushing_) {
      synced_.wait(lock);
      continue;
    }
    // Lead a flush for every line written so far; writers arriving meanwhile wait for the next.
    flushing_ = true;
    const uint64_t upto = written_;
    lock.unlock();
    std::shared_ptr<Fd> fd;
    {
      std::lock_guard<std::mutex> file_lock(mu_);
      fd = fd_;
    }
    const int rc = fd != nullptr ? ::fdatasync(fd->fd) : 0;
    const absl::Status s = rc == 0 ? absl::OkStatus() : Errno("fdatasync", path_);
    lock.lock();
    flushing_ = false;
    if (s.ok() && upto > durable_) durable_ = upto;
    synced_.notify_all();
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status AppendLog::Rewrite(const Rewriter& rewrite, bool read) {
  std::lock_guard<std::mutex> lock(mu_);
  absl::StatusOr<uint64_t> size = LockCurrent();
  if (!size.ok()) return size.status();
  read = read || !own_;
  std::string current;
  absl::Status s = read ? ReadAll(fd_->fd, *size, &current, path_) : absl::OkStatus();
  absl::StatusOr<std::string> content =
      s.ok() ? rewrite(read ? &current : nullptr) : absl::StatusOr<std::string>(s);
  if (content.ok()) s = WriteFileAtomically(path_, *content, 0600, sync_);
  if (!content.ok()) s = content.status();
  if (!s.ok()) {
    Unlock();
    return s;
  }
  // Appenders of this process continue in the new file; the old one's lock goes with it.
  auto fd = std::make_shared<Fd>();
  fd->fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CLOEXEC);
  Unlock();
  if (fd->fd < 0) {
    s = Errno("open", path_);
    fd_.reset();
    return s;
  }
  fd_ = std::move(fd);
  end_ = content->size();
  own_ = true;
  std::lock_guard<std::mutex> sync_lock(sync_mu_);
  durable_ = written_;  // every line so far is in the new file, which is on disk (with sync)
  return absl::OkStatus();
}

}  // namespace tessera::plugin
