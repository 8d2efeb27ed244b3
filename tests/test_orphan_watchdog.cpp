// dist/orphan_watchdog.h: a process whose parent (the MPI daemon that started a rank) dies
// ends itself with one line naming it, instead of running on, orphaned.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "dist/orphan_watchdog.h"

namespace pgkm {
namespace {

using namespace std::chrono_literals;

// Reads `fd` until EOF or `limit`; returns what was read and sets `eof`.
std::string read_until_eof(int fd, std::chrono::milliseconds limit, bool& eof) {
  std::string text;
  const auto end = std::chrono::steady_clock::now() + limit;
  eof = false;
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[512];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      eof = true;
      break;
    }
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

TEST(OrphanWatchdog, EndsTheProcessWhenItsParentIsGone) {
  int err[2], ready[2];
  ASSERT_EQ(::pipe(err), 0);
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t daemon = ::fork();  // stands for orted
  ASSERT_GE(daemon, 0);
  if (daemon == 0) {
    const pid_t rank = ::fork();
    if (rank == 0) {
      ::dup2(err[1], STDERR_FILENO);
      ::close(err[0]);
      ::close(err[1]);
      start_orphan_watchdog("rank 1 on testhost", 20ms);
      const char go = 'x';
      static_cast<void>(::write(ready[1], &go, 1));
      ::sleep(30);  // a watchdog that never fires ends the test by its time limit
      ::_exit(0);
    }
    char go = 0;
    static_cast<void>(::read(ready[0], &go, 1));  // the watchdog knows its parent
    ::_exit(0);                                   // the daemon dies
  }
  ::close(err[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(daemon, &status, 0), daemon);
  const auto start = std::chrono::steady_clock::now();
  bool eof = false;
  const std::string text = read_until_eof(err[0], 10s, eof);  // EOF: the rank has ended
  const auto took = std::chrono::steady_clock::now() - start;
  ::close(err[0]);
  EXPECT_TRUE(eof) << "the orphaned process is still running";
  EXPECT_LT(took, 5s);
  EXPECT_NE(text.find("pgkm: error: rank 1 on testhost: the process that started this rank"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("is gone"), std::string::npos) << text;
}

}  // namespace
}  // namespace pgkm
