#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <random>
#include <utility>

#include "core/errors.h"
#include "core/signal_cleanup.h"

namespace pgkm {
namespace {

// 8 hex digits from the OS's random source: the temporary name must not be guessable,
// or someone could plant a link there (the open below would refuse it, but the run
// would fail).
std::string random_suffix() {
  static thread_local std::random_device device;
  const uint32_t value = device();
  char text[9];
  std::snprintf(text, sizeof text, "%08x", value);
  return text;
}

}  // namespace

AtomicFile::AtomicFile(std::string final_path) : final_path_(std::move(final_path)) {
  // A few tries: a clash with another name is unlikely, never impossible.
  for (int attempt = 0; attempt < 16; ++attempt) {
    temp_path_ = final_path_ + ".tmp-" + random_suffix();
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd_ >= 0) {
      cleanup_slot_ = register_temporary(temp_path_);
      return;
    }
    if (errno != EEXIST) break;
  }
  const int err = errno;
  throw SystemError(
      str_cat(final_path_, ": ", errno_text(err), " (creating a temporary file next to it)"));
}

AtomicFile::AtomicFile(std::string final_path, const Creator& create)
    : final_path_(std::move(final_path)), library_writes_(true) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    temp_path_ = final_path_ + ".tmp-" + random_suffix();
    struct stat st {};
    if (::lstat(temp_path_.c_str(), &st) == 0) continue;  // taken
    if (!create(temp_path_)) continue;
    cleanup_slot_ = register_temporary(temp_path_);
    // Held for the fsync in commit(); O_NOFOLLOW and the type check make sure it is the
    // file the library created, not something put in its place since.
    fd_ = ::open(temp_path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd_ < 0 || ::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      const int err = fd_ < 0 ? errno : EINVAL;
      if (fd_ >= 0) ::close(std::exchange(fd_, -1));
      ::unlink(temp_path_.c_str());
      unregister_temporary(std::exchange(cleanup_slot_, -1));
      throw SystemError(
          str_cat(temp_path_, ": the file just created cannot be opened: ", std::strerror(err)));
    }
    return;
  }
  throw SystemError(str_cat(final_path_,
                            ": cannot create a file next to it: 16 temporary "
                            "names were all taken"));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
  unregister_temporary(cleanup_slot_);
}

void AtomicFile::fail(const char* call, int err) const {
  throw SystemError(str_cat(temp_path_, ": ", errno_text(err), " (", call, ")"));
}

void AtomicFile::write(std::span<const std::byte> data) {
  PGKM_ASSERT(fd_ >= 0 && !committed_ && !library_writes_, "write after commit");
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail("write", n < 0 ? errno : EIO);
    data = data.subspan(static_cast<size_t>(n));
  }
}

void AtomicFile::write(std::string_view text) {
  write(std::as_bytes(std::span(text.data(), text.size())));
}

void AtomicFile::commit() {
  PGKM_ASSERT(fd_ >= 0 && !committed_, "commit called twice");
  if (::fsync(fd_) != 0) fail("fsync", errno);
  if (::close(std::exchange(fd_, -1)) != 0) fail("close", errno);
  if (::rename(temp_path_.c_str(), final_path_.c_str()) != 0) {
    const int err = errno;
    throw SystemError(
        str_cat(final_path_, ": ", errno_text(err), " (renaming ", temp_path_, " to it)"));
  }
  committed_ = true;
  unregister_temporary(std::exchange(cleanup_slot_, -1));
  fsync_directory(parent_directory(final_path_));
}

void remove_stale_temporaries(const std::string& final_path) noexcept {
  const std::filesystem::path final(final_path);
  const std::string prefix = final.filename().string() + ".tmp-";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(parent_directory(final_path), ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + 8 || !name.starts_with(prefix)) continue;
    if (name.find_first_not_of("0123456789abcdef", prefix.size()) != std::string::npos) continue;
    std::error_code type_ec;
    if (!entry.is_regular_file(type_ec) || entry.is_symlink(type_ec)) continue;
    std::filesystem::remove(entry.path(), type_ec);
  }
}

std::string parent_directory(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

void fsync_directory(const std::string& dir) {
  const std::string name = dir.empty() ? "." : dir;
  const int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw SystemError(str_cat(name, ": ", errno_text(err), " (opening the directory)"));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw SystemError(str_cat(name, ": ", errno_text(err), " (fsync of the directory)"));
}

}  // namespace pgkm
