// Read-only memory map of a whole file.
//
// Mapping instead of reading means a tensor's bytes are paged in only when they are
// touched, so opening a 100 GB checkpoint to quantize a few layers costs a few layers.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace pgkm::io {

// RAII owner of a PROT_READ, MAP_PRIVATE mapping of the whole file at `path`.
// Move-only; the mapping is released by the destructor. A zero-length file gives an
// empty span and no mapping (mmap rejects length 0). The file is opened without blocking
// (a FIFO is refused, never waited on), and the mapping is registered with
// core/signal_cleanup.h: if another process truncates the file while pgkm reads it, the
// SIGBUS becomes one error line naming the file and exit 1 instead of a crash.
class MappedFile {
 public:
  // Maps `path`. Throws InputError (context: path) when the file is missing, not a
  // regular file or not readable, and SystemError when fstat/mmap fail; both carry the
  // errno text.
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The whole file, [file size] bytes; valid while this object lives.
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(data_), size_}; }
  const std::string& path() const { return path_; }

 private:
  void release() noexcept;

  std::string path_;
  void* data_ = nullptr;
  size_t size_ = 0;
  int bus_slot_ = -1;  // core/signal_cleanup.h: a SIGBUS in the mapping is a clear error
};

}  // namespace pgkm::io
