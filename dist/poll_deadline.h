// Waiting with a deadline for what only polling can observe: an NCCL communicator's
// state (ncclCommGetAsyncError), a CUDA stream (cudaStreamQuery). A collective whose peer
// died inside one node (P2P, NVLink, shared memory) is never reported as failed, so a
// wait without a deadline spins forever; this one gives up (docs/CONVENTIONS.md #7).
//
// Kept free of CUDA and NCCL so that its timeout path is tested on any machine with a
// clock that a test controls (tests/test_poll_deadline.cpp).
#pragma once

#include <chrono>
#include <functional>
#include <string>

namespace pgkm {

// What one poll saw.
enum class PollState {
  kPending,  // not finished yet: poll again
  kDone,     // finished successfully
  kFailed,   // finished with an error (the poll keeps its text)
};

// How poll_until ended.
enum class WaitOutcome { kDone, kFailed, kTimedOut };

// The time a wait reads and how it sleeps between polls; tests pass a fake.
class WaitClock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~WaitClock() = default;
  virtual TimePoint now() = 0;
  virtual void sleep_for(Duration d) = 0;
};

// std::chrono::steady_clock and std::this_thread::sleep_for.
WaitClock& steady_wait_clock();

struct PollSchedule {
  // Give up once this much time has passed since the wait began; must be > 0.
  std::chrono::milliseconds timeout{300'000};
  // Sleep between polls: starts at `first_interval` and doubles up to `max_interval`,
  // so short collectives return quickly and long ones cost little CPU.
  std::chrono::microseconds first_interval{10};
  std::chrono::microseconds max_interval{500};
};

// Calls `poll` until it returns kDone or kFailed, or until `schedule.timeout` has passed
// (kTimedOut). `poll` runs at least once, and once more at the deadline, so work that
// finished while this thread slept is not reported as timed out. Never sleeps past the
// deadline. Exceptions from `poll` propagate.
WaitOutcome poll_until(const std::function<PollState()>& poll, const PollSchedule& schedule,
                       WaitClock& clock = steady_wait_clock());

// "300 s" / "0.25 s": a timeout as an error message states it.
std::string describe_timeout(std::chrono::milliseconds timeout);

}  // namespace pgkm
