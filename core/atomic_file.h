// The one way pgkm writes a file: it appears at its final path complete, or not at all.
//
// The content goes to a temporary file created next to the final path under a fresh,
// unpredictable name ("<final>.tmp-XXXXXXXX"), exclusively and without following a
// symbolic link, so nothing that already sits at a predictable name (another run's
// file, a planted symlink) is ever opened or overwritten. commit() makes the content
// durable (fsync), renames it over the final path and fsyncs the directory, so the new
// name survives a crash. The temporary name is registered with core/signal_cleanup.h,
// so Ctrl-C or SIGTERM removes it too. Every writer in pgkm (archive, checkpoints, report,
// safetensors) goes through this class.
#pragma once

#include <cstddef>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace pgkm {

class AtomicFile {
 public:
  // Creates the temporary file (mode 0666 less the umask). Throws SystemError naming
  // the final path when the directory does not allow it.
  explicit AtomicFile(std::string final_path);
  // For a library that creates its file by name (HDF5's H5Fcreate): `create(temp_path)`
  // must create the file exclusively (O_CREAT | O_EXCL: it fails when anything, even a
  // dangling symbolic link, sits at the name) and return false when the name is taken;
  // it throws for any other failure. The content is then written by the library, which
  // closes the file before commit(); write() is not available.
  using Creator = std::function<bool(const std::string& temp_path)>;
  AtomicFile(std::string final_path, const Creator& create);
  // Removes the temporary file unless commit() succeeded; never throws.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  const std::string& final_path() const { return final_path_; }
  // Where the content is being written; a library that opens files by name (HDF5)
  // writes here.
  const std::string& temp_path() const { return temp_path_; }

  // Appends bytes to the temporary file. Throws SystemError (ENOSPC, EIO, ...).
  void write(std::span<const std::byte> data);
  void write(std::string_view text);

  // fsync, close, rename over final_path, fsync the directory. Throws SystemError; on
  // failure the temporary file is removed and final_path is left as it was (if the
  // rename happened but the directory sync failed, the new file stays: it is complete).
  void commit();

 private:
  [[noreturn]] void fail(const char* call, int err) const;

  std::string final_path_;
  std::string temp_path_;
  int fd_ = -1;
  int cleanup_slot_ = -1;  // core/signal_cleanup.h: removed if a signal ends the process
  bool library_writes_ = false;
  bool committed_ = false;
};

// Removes the temporary files that AtomicFile writers for `final_path` left behind when
// their process was killed (names "<final>.tmp-" + 8 hex digits, regular files only).
// Call only while no other writer of final_path can be running. Never throws.
void remove_stale_temporaries(const std::string& final_path) noexcept;

// fsyncs directory `dir` ("" means "."), making the entries created in it durable.
// Throws SystemError.
void fsync_directory(const std::string& dir);

// The directory part of `path` ("." when it has none).
std::string parent_directory(const std::string& path);

}  // namespace pgkm
