#include <percore/base/detail/gate.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

TEST(GateTest, WaitReturnsAtOnceWhenNothingIsInProgress) {
  Gate gate;
  gate.close_and_wait();
  EXPECT_TRUE(gate.close_and_wait_until(Clock::now()));
}

TEST(GateTest, WaitEndsWhenTheLastPieceLeaves) {
  Gate gate;
  gate.enter();
  gate.enter();
  std::thread worker([&] {
    std::this_thread::sleep_for(milliseconds(50));
    gate.leave();
    std::this_thread::sleep_for(milliseconds(50));
    gate.leave();
  });
  const auto started = Clock::now();
  gate.close_and_wait();
  EXPECT_GE(Clock::now() - started, milliseconds(90));
  EXPECT_EQ(gate.count(), 0);
  worker.join();
}

TEST(GateTest, TimedWaitGivesUpAtTheDeadline) {
  Gate gate;
  gate.enter();
  const auto started = Clock::now();
  EXPECT_FALSE(gate.close_and_wait_until(started + milliseconds(50)));
  EXPECT_GE(Clock::now() - started, milliseconds(50));
  EXPECT_EQ(gate.count(), 1);
  gate.leave();
  EXPECT_TRUE(gate.close_and_wait_until(Clock::now() + milliseconds(50)));
}

TEST(GateTest, LimitRefusesPastIt) {
  Gate gate;
  EXPECT_TRUE(gate.try_enter_below(2));
  EXPECT_TRUE(gate.try_enter_below(2));
  EXPECT_FALSE(gate.try_enter_below(2));
  EXPECT_TRUE(gate.try_enter_below(0));  // No limit.
  EXPECT_EQ(gate.count(), 3);
}

// Many threads entering and leaving while one waits: the wait ends exactly
// when all of them are done, never before.
TEST(GateTest, NoWakeUpIsLostUnderContention) {
  for (int round = 0; round < 50; ++round) {
    Gate gate;
    std::atomic<int> finished{0};
    constexpr int kThreads = 4;
    constexpr int kPieces = 2000;
    for (int i = 0; i < kThreads; ++i)
      gate.enter();  // Each thread's own piece, left at its end.
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        for (int i = 0; i < kPieces; ++i) {
          gate.enter();
          gate.leave();
        }
        finished.fetch_add(1);
        gate.leave();
      });
    }
    gate.close_and_wait();
    EXPECT_EQ(finished.load(), kThreads);
    for (auto& thread : threads)
      thread.join();
  }
}

}  // namespace
}  // namespace percore
