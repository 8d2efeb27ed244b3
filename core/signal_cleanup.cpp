#include "core/signal_cleanup.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <mutex>

namespace pgkm {
namespace {

// A fixed table: the handler may not allocate or lock. State 0 free, 1 being filled,
// 2 ready (the handler reads ready slots only).
constexpr int kSlots = 256;
constexpr size_t kPathMax = 4096;

struct Slot {
  std::atomic<int> state{0};
  char path[kPathMax];
  const char* begin = nullptr;
  size_t size = 0;
};

Slot g_temporaries[kSlots];
Slot g_mappings[kSlots];

void write_text(const char* text) {
  size_t left = std::strlen(text);
  while (left > 0) {
    const ssize_t n = ::write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<size_t>(n);
  }
}

void remove_temporaries() {
  for (Slot& s : g_temporaries) {
    if (s.state.load(std::memory_order_acquire) == 2) ::unlink(s.path);
  }
}

void on_terminate(int sig) {
  remove_temporaries();
  write_text(sig == SIGINT    ? "pgkm: interrupted (SIGINT)"
             : sig == SIGTERM ? "pgkm: terminated (SIGTERM)"
                              : "pgkm: hung up (SIGHUP)");
  write_text("; temporary files removed, finished checkpoints kept for --resume\n");
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void on_bus_error(int sig, siginfo_t* info, void*) {
  const char* addr = static_cast<const char*>(info->si_addr);
  for (Slot& s : g_mappings) {
    if (s.state.load(std::memory_order_acquire) != 2) continue;
    if (addr >= s.begin && addr < s.begin + s.size) {
      remove_temporaries();
      write_text("pgkm: error: ");
      write_text(s.path);
      write_text(
          ": the file shrank while pgkm was reading it (SIGBUS): another process truncated or "
          "rewrote it; finished checkpoints are kept for --resume\n");
      ::_exit(1);
    }
  }
  ::signal(sig, SIG_DFL);  // not ours: crash as before
  ::raise(sig);
}

void install_if_default(int sig, struct sigaction& action) {
  struct sigaction old {};
  if (::sigaction(sig, nullptr, &old) != 0) return;
  if ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_DFL) {
    ::sigaction(sig, &action, nullptr);
  }
}

void install_handlers() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction term {};
    term.sa_handler = on_terminate;
    sigemptyset(&term.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
      install_if_default(sig, term);
    struct sigaction bus {};
    bus.sa_sigaction = on_bus_error;
    bus.sa_flags = SA_SIGINFO;
    sigemptyset(&bus.sa_mask);
    install_if_default(SIGBUS, bus);
  });
}

int claim(Slot* table, const std::string& path, const void* begin, size_t size) noexcept {
  if (path.size() >= kPathMax) return -1;
  try {
    install_handlers();
  } catch (...) {
    return -1;
  }
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!table[i].state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(table[i].path, path.c_str(), path.size() + 1);
    table[i].begin = static_cast<const char*>(begin);
    table[i].size = size;
    table[i].state.store(2, std::memory_order_release);
    return i;
  }
  return -1;
}

}  // namespace

int register_temporary(const std::string& path) noexcept {
  return claim(g_temporaries, path, nullptr, 0);
}

void unregister_temporary(int slot) noexcept {
  if (slot >= 0 && slot < kSlots) g_temporaries[slot].state.store(0, std::memory_order_release);
}

int register_mapping(const void* begin, size_t size, const std::string& path) noexcept {
  return claim(g_mappings, path, begin, size);
}

void remove_registered_temporaries() noexcept {
  remove_temporaries();
}

void unregister_mapping(int slot) noexcept {
  if (slot >= 0 && slot < kSlots) g_mappings[slot].state.store(0, std::memory_order_release);
}

}  // namespace pgkm
