// Checks on the files a run reads and writes, made before anything is written:
//
//   - an input that is not a regular file (a FIFO, a device such as /dev/zero, a
//     directory) is refused at once, naming the path, and reading never blocks on it;
//   - no output is the same file as an input or another output (compared by device and
//     inode, so "a.h5", "./a.h5" and a link to it are one file);
//   - an output is claimed with a lock before anything is removed or written, so a second
//     run on the same output is refused instead of deleting the first one's files.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace pgkm {

// Throws InputError(path, "<what> is a FIFO, expected a regular file") unless `path` is
// a regular file (symbolic links followed). A missing file is reported as such.
void require_regular_file(const std::string& path, const std::string& what);

// The whole content of the regular file `path`, read without ever blocking: the file is
// opened with O_NONBLOCK and refused unless it is a regular file, and reading stops with
// an InputError beyond `max_bytes`. `what` names the file in messages ("config").
std::string read_regular_file(const std::string& path, const std::string& what, size_t max_bytes);

// One file a command reads or writes, named as the user named it: `role` is the option or
// argument ("--out", "--report", "the model", "the config").
struct NamedPath {
  std::string role;
  std::string path;
};

// Throws UsageError naming both paths when an output is the same file as an input, or two
// outputs are the same file. An output that does not exist yet is identified by its
// directory's device and inode and its file name.
void check_output_clashes(const std::vector<NamedPath>& outputs,
                          const std::vector<NamedPath>& inputs);

// An exclusive claim on an output path: flock() on "<path>.lock", taken without waiting.
// A second claim, in this process or another, fails with a SystemError saying another run
// is writing the output. The lock file is removed when the claim is released (a claimant
// that raced with the removal notices the inode changed and takes the new file).
class OutputLock {
 public:
  explicit OutputLock(const std::string& output);
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;

  const std::string& path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace pgkm
