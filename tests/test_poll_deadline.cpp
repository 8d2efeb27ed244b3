// dist/poll_deadline.h: the wait every NCCL call ends with. A fake clock shows that a
// wait for something that never answers ends at its deadline (the peer that died inside
// one node), never sleeps past it, and still sees work that finished at the last moment.
#include <gtest/gtest.h>

#include <chrono>
#include <vector>

#include "dist/poll_deadline.h"

namespace pgkm {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

// Time passes only when the wait sleeps.
class FakeClock final : public WaitClock {
 public:
  TimePoint now() override { return now_; }
  void sleep_for(Duration d) override {
    EXPECT_GT(d.count(), 0) << "a sleep of nothing would spin";
    sleeps.push_back(d);
    now_ += d;
  }
  Duration elapsed() const { return now_ - TimePoint{}; }
  std::vector<Duration> sleeps;

 private:
  TimePoint now_{};
};

TEST(PollDeadline, NeverAnsweringPeerTimesOutAtTheDeadline) {
  FakeClock clock;
  int polls = 0;
  const PollSchedule schedule{milliseconds(300'000), microseconds(10), microseconds(500)};
  const WaitOutcome outcome = poll_until(
      [&] {
        ++polls;
        return PollState::kPending;
      },
      schedule, clock);
  EXPECT_EQ(outcome, WaitOutcome::kTimedOut);
  // Exactly the timeout: the last sleep is cut to end at the deadline.
  EXPECT_EQ(clock.elapsed(), milliseconds(300'000));
  for (const auto& d : clock.sleeps)
    EXPECT_LE(d, microseconds(500));
  // Polled at the deadline too, and about timeout / max_interval times in all.
  EXPECT_EQ(polls, static_cast<int>(clock.sleeps.size()) + 1);
  EXPECT_GE(polls, 300'000'000 / 500);
  EXPECT_LE(polls, 300'000'000 / 500 + 16);
}

TEST(PollDeadline, IntervalsDoubleUpToTheMaximum) {
  FakeClock clock;
  poll_until([] { return PollState::kPending; },
             {milliseconds(1), microseconds(10), microseconds(80)}, clock);
  ASSERT_GE(clock.sleeps.size(), 5u);
  EXPECT_EQ(clock.sleeps[0], microseconds(10));
  EXPECT_EQ(clock.sleeps[1], microseconds(20));
  EXPECT_EQ(clock.sleeps[2], microseconds(40));
  EXPECT_EQ(clock.sleeps[3], microseconds(80));
  EXPECT_EQ(clock.sleeps[4], microseconds(80));
}

TEST(PollDeadline, DoneOrFailedEndsTheWaitAtOnce) {
  for (const PollState last : {PollState::kDone, PollState::kFailed}) {
    FakeClock clock;
    int polls = 0;
    const WaitOutcome outcome =
        poll_until([&] { return ++polls < 4 ? PollState::kPending : last; },
                   {milliseconds(1000), microseconds(10), microseconds(500)}, clock);
    EXPECT_EQ(outcome, last == PollState::kDone ? WaitOutcome::kDone : WaitOutcome::kFailed);
    EXPECT_EQ(polls, 4);
    EXPECT_EQ(clock.sleeps.size(), 3u);
  }
}

TEST(PollDeadline, WorkThatFinishesAtTheDeadlineIsNotATimeout) {
  FakeClock clock;
  const milliseconds timeout(5);
  const WaitOutcome outcome = poll_until(
      [&] { return clock.elapsed() >= timeout ? PollState::kDone : PollState::kPending; },
      {timeout, microseconds(10), microseconds(500)}, clock);
  EXPECT_EQ(outcome, WaitOutcome::kDone);
  EXPECT_EQ(clock.elapsed(), timeout);
}

TEST(PollDeadline, ExceptionsFromThePollPropagate) {
  FakeClock clock;
  EXPECT_THROW(poll_until([]() -> PollState { throw std::runtime_error("query failed"); },
                          {milliseconds(10)}, clock),
               std::runtime_error);
}

// The real clock: a wait for nothing returns after its timeout, not forever.
TEST(PollDeadline, SteadyClockTimesOut) {
  const auto start = std::chrono::steady_clock::now();
  const WaitOutcome outcome =
      poll_until([] { return PollState::kPending; }, {milliseconds(50)}, steady_wait_clock());
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(outcome, WaitOutcome::kTimedOut);
  EXPECT_GE(took, milliseconds(50));
  EXPECT_LT(took, milliseconds(5000));  // generous: the machine may be loaded
}

TEST(PollDeadline, DescribesTimeouts) {
  EXPECT_EQ(describe_timeout(milliseconds(300'000)), "300 s");
  EXPECT_EQ(describe_timeout(milliseconds(250)), "0.25 s");
}

}  // namespace
}  // namespace pgkm
