#include "dist/orphan_watchdog.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <thread>

#include "core/signal_cleanup.h"

namespace pgkm {

void start_orphan_watchdog(const std::string& where, std::chrono::milliseconds interval) {
  static std::atomic<bool> started{false};
  const pid_t parent = ::getppid();
  if (parent <= 1 || started.exchange(true)) return;
  // The message is built now: the thread must not allocate once the process is ending.
  char message[512];
  std::snprintf(message, sizeof message,
                "pgkm: error: %s: the process that started this rank (pid %d, the MPI "
                "daemon) is gone; ending this rank (finished checkpoints are kept for "
                "--resume)\n",
                where.c_str(), static_cast<int>(parent));
  std::thread([parent, interval, text = std::string(message)] {
    for (;;) {
      std::this_thread::sleep_for(interval);
      if (::getppid() == parent) continue;
      remove_registered_temporaries();
      const ssize_t n = ::write(STDERR_FILENO, text.data(), text.size());
      static_cast<void>(n);
      ::_exit(1);
    }
  }).detach();
}

}  // namespace pgkm
