// A rank whose launcher is gone ends too. Under mpirun each rank's parent is the MPI
// daemon of its node (orted, or mpirun itself on mpirun's node); under srun, slurmstepd.
// When that parent dies (killed, or ended after losing its host's network) the rank is
// re-parented and nobody will ever collect it: it would keep a CPU busy, or wait in a
// collective, forever (issue 14: an orphaned rank still running after the job ended).
//
// The watchdog is a thread that compares getppid() with the parent seen at start every
// `interval`; on a change it removes the registered temporary files (core/signal_cleanup.h),
// prints one line naming this rank and the parent, and _exit(1)s. It calls no MPI and
// takes no lock, so it works whatever the main thread is blocked in.
#pragma once

#include <chrono>
#include <string>

namespace pgkm {

// Starts the watchdog for this process (at most once; later calls do nothing). `where`
// prefixes its message ("rank 1 on node7"). Does nothing when the parent is already init
// (pid 1): such a process was never started by a daemon that could be lost.
void start_orphan_watchdog(const std::string& where,
                           std::chrono::milliseconds interval = std::chrono::seconds(1));

}  // namespace pgkm
