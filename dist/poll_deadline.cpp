#include "dist/poll_deadline.h"

#include <algorithm>
#include <thread>

#include "core/errors.h"

namespace pgkm {
namespace {

class SteadyWaitClock final : public WaitClock {
 public:
  TimePoint now() override { return std::chrono::steady_clock::now(); }
  void sleep_for(Duration d) override { std::this_thread::sleep_for(d); }
};

}  // namespace

WaitClock& steady_wait_clock() {
  static SteadyWaitClock clock;
  return clock;
}

WaitOutcome poll_until(const std::function<PollState()>& poll, const PollSchedule& schedule,
                       WaitClock& clock) {
  PGKM_ASSERT(schedule.timeout.count() > 0, "poll_until: timeout ", schedule.timeout.count(),
              " ms must be positive");
  PGKM_ASSERT(
      schedule.first_interval.count() > 0 && schedule.max_interval >= schedule.first_interval,
      "poll_until: bad poll intervals");
  const WaitClock::TimePoint deadline = clock.now() + schedule.timeout;
  WaitClock::Duration interval = schedule.first_interval;
  for (;;) {
    // Read the clock before polling: a poll that reports "pending" after the deadline
    // was read has had all of its time.
    const WaitClock::TimePoint now = clock.now();
    const PollState state = poll();
    if (state == PollState::kDone) return WaitOutcome::kDone;
    if (state == PollState::kFailed) return WaitOutcome::kFailed;
    if (now >= deadline) return WaitOutcome::kTimedOut;
    clock.sleep_for(std::min(interval, deadline - now));
    interval = std::min<WaitClock::Duration>(interval * 2, schedule.max_interval);
  }
}

std::string describe_timeout(std::chrono::milliseconds timeout) {
  if (timeout.count() % 1000 == 0) return str_cat(timeout.count() / 1000, " s");
  return str_cat(static_cast<double>(timeout.count()) / 1000.0, " s");
}

}  // namespace pgkm
