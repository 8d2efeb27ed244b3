#include "io/mmap_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/errors.h"
#include "core/file_checks.h"
#include "core/signal_cleanup.h"

namespace pgkm::io {
namespace {

// Closes the descriptor on every path out of the constructor; the mapping outlives it.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

MappedFile::MappedFile(std::string path) : path_(std::move(path)) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; the type check below
  // refuses it. The flag does not affect reading a regular file.
  FdGuard fd(::open(path_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    const int err = errno;
    // A missing or unreadable file is something the user can fix; anything else is not.
    if (err == ENOENT || err == EACCES || err == ENOTDIR || err == ELOOP || err == ENAMETOOLONG)
      throw InputError(path_, str_cat("cannot open: ", std::strerror(err)));
    throw SystemError(str_cat(path_, ": open failed: ", std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    throw SystemError(str_cat(path_, ": fstat failed: ", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) {
    require_regular_file(path_, "the file");  // names what it is (a FIFO, a directory, ...)
    throw InputError(path_, "not a regular file");
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ == 0) return;
  void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd.get(), 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    size_ = 0;
    throw SystemError(
        str_cat(path_, ": mmap of ", st.st_size, " bytes failed: ", std::strerror(err)));
  }
  data_ = p;
  bus_slot_ = register_mapping(p, size_, path_);
}

MappedFile::~MappedFile() {
  release();
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      bus_slot_(std::exchange(other.bus_slot_, -1)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    bus_slot_ = std::exchange(other.bus_slot_, -1);
  }
  return *this;
}

void MappedFile::release() noexcept {
  unregister_mapping(std::exchange(bus_slot_, -1));
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace pgkm::io
