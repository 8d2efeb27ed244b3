// What pgkm does when a signal ends it. A signal skips every destructor, so the cleanup
// they would have done is done here, with async-signal-safe calls only:
//
//   SIGINT, SIGTERM, SIGHUP  remove every registered temporary file (the archive being
//                            written, a checkpoint part in progress), print one line,
//                            then die of the same signal. Finished checkpoints stay, so
//                            `--resume` continues (docs/ARCHIVE.md).
//   SIGBUS                   inside a registered mapping means the file was truncated by
//                            another process while pgkm read it: the same cleanup, one line
//                            "pgkm: error: PATH: the file shrank ... (SIGBUS)", exit 1.
//
// The handlers are installed the first time something is registered, and only for
// signals whose disposition is still the default (a host program's handlers are kept).
#pragma once

#include <cstddef>
#include <string>

namespace pgkm {

// Registers a temporary file to remove if a signal ends the process. Returns a slot to
// pass to unregister_temporary, or -1 when the table is full (the file then stays behind
// as after kill -9; the next run removes it). Never throws.
int register_temporary(const std::string& path) noexcept;
void unregister_temporary(int slot) noexcept;

// Registers [begin, begin + size) as a read-only mapping of `path`. Returns a slot or -1.
int register_mapping(const void* begin, size_t size, const std::string& path) noexcept;
void unregister_mapping(int slot) noexcept;
// Removes every registered temporary file now (async-signal-safe), for a process about to
// _exit without unwinding (dist/orphan_watchdog.h).
void remove_registered_temporaries() noexcept;

}  // namespace pgkm
