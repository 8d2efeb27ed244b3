#include "core/file_checks.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/errors.h"

namespace pgkm {
namespace {

const char* kind_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

[[noreturn]] void refuse(const std::string& path, const std::string& what, mode_t mode) {
  throw InputError(path, str_cat(what, " is ", kind_name(mode), ", expected a regular file"));
}

[[noreturn]] void open_failed(const std::string& path, const std::string& what, int err) {
  throw InputError(path, str_cat("cannot open the ", what, ": ", std::strerror(err)));
}

// Device and inode of a file, or of its directory plus its name when it does not exist.
struct Identity {
  dev_t dev = 0;
  ino_t ino = 0;
  std::string name;  // empty when the file exists
  bool operator==(const Identity&) const = default;
};

std::optional<Identity> identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return Identity{st.st_dev, st.st_ino, ""};
  const std::filesystem::path p(path);
  const std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
  if (::stat(dir.c_str(), &st) != 0) return std::nullopt;  // the write will say why
  return Identity{st.st_dev, st.st_ino, p.filename().string()};
}

}  // namespace

void require_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) open_failed(path, what, errno);
  if (!S_ISREG(st.st_mode)) refuse(path, what, st.st_mode);
}

std::string read_regular_file(const std::string& path, const std::string& what, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) open_failed(path, what, errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) open_failed(path, what, errno);
  if (!S_ISREG(st.st_mode)) refuse(path, what, st.st_mode);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    throw InputError(path, str_cat("the ", what, " is ", st.st_size, " bytes, more than the ",
                                   max_bytes, " this pgkm reads"));
  }
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      throw InputError(path, str_cat("cannot read the ", what, ": ", std::strerror(err)));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > max_bytes) {
      throw InputError(path, str_cat("the ", what, " grew beyond ", max_bytes, " bytes"));
    }
  }
  return text;
}

void check_output_clashes(const std::vector<NamedPath>& outputs,
                          const std::vector<NamedPath>& inputs) {
  std::vector<std::pair<const NamedPath*, Identity>> seen;
  for (const NamedPath& in : inputs) {
    if (in.path.empty()) continue;
    if (const auto id = identity(in.path)) seen.emplace_back(&in, *id);
  }
  for (const NamedPath& out : outputs) {
    if (out.path.empty()) continue;
    const auto id = identity(out.path);
    if (!id) continue;
    for (const auto& [other, other_id] : seen) {
      if (other_id == *id) {
        throw UsageError(
            out.path, str_cat(out.role, " '", out.path, "' is the same file as ", other->role, " '",
                              other->path, "'; choose another output path"));
      }
    }
    seen.emplace_back(&out, *id);
  }
}

OutputLock::OutputLock(const std::string& output) : lock_path_(output + ".lock") {
  // Retried when the file we locked was removed by the previous holder in the meantime:
  // the lock must be on the file that is at lock_path_ now.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int err = errno;
      throw SystemError(str_cat(lock_path_, ": cannot create the lock file for ", output, ": ",
                                std::strerror(err)));
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK) {
        throw SystemError(str_cat(output, ": another pgkm run is writing this output (", lock_path_,
                                  " is locked); wait for it or choose another --out"));
      }
      throw SystemError(str_cat(lock_path_, ": flock failed: ", std::strerror(err)));
    }
    struct stat held {
    }, now{};
    if (::fstat(fd, &held) == 0 && ::lstat(lock_path_.c_str(), &now) == 0 &&
        held.st_dev == now.st_dev && held.st_ino == now.st_ino) {
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw SystemError(str_cat(lock_path_, ": the lock file keeps being replaced"));
}

OutputLock::~OutputLock() {
  if (fd_ < 0) return;
  ::unlink(lock_path_.c_str());  // still held: nobody else owns this file
  ::close(fd_);
}

}  // namespace pgkm
