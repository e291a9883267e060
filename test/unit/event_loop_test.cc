// EventLoop's lent turns (ClientRuntimeOptions::callers_write): a thread
// that queued work runs the parked loop's turn itself; the loop thread is
// woken only when it must be; the role is never held by two threads at once
// and no queued item is lost. And DeadlineQueue: the send thread sleeps
// until the first deadline of a call still pending.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <vector>

#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/deadline_queue.h>
#include <percore/client_proxy/detail/event_loop.h>
#include "test/support/run_on_loop.h"

namespace percore::detail {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// An owner whose work is a counter of queued items; on_turn() takes them
// all. `inside` catches two threads in a turn at once.
class CountingOwner : public EventLoop::Owner {
 public:
  explicit CountingOwner(EventLoop& loop, bool lends) : loop_(loop), lends_(lends) {}

  void queue(uint64_t items) { queued_.fetch_add(items, std::memory_order_release); }

  bool on_turn() override {
    EXPECT_TRUE(loop_.in_loop_thread());
    if (const int ms = arm_in_ms_.exchange(0); ms > 0)
      timer_due_ = Clock::now() + std::chrono::milliseconds(ms);
    EXPECT_EQ(inside_.exchange(true), false) << "two threads hold the loop's role";
    const uint64_t items = queued_.exchange(0, std::memory_order_acquire);
    taken_ += items;  // Plain: only the holder of the role touches it.
    ++turns_;
    if (items > 0 && !loop_.in_lent_turn())
      loop_thread_turns_with_work_.fetch_add(1, std::memory_order_relaxed);
    if (items > 0)
      last_turn_thread_.store(std::this_thread::get_id() == loop_thread_ ? 1 : 2);
    inside_.store(false);
    return items > 0;
  }
  bool has_work() const override { return queued_.load(std::memory_order_acquire) > 0; }
  void on_event(uint64_t, uint32_t) override {}
  Clock::time_point on_timers(Clock::time_point now) override {
    if (timer_due_ <= now) {
      timer_due_ = Clock::time_point::max();
      timers_fired_.fetch_add(1);
    }
    return timer_due_;
  }
  Clock::time_point next_timer() const override { return timer_due_; }
  bool lends_turns() const override { return lends_; }

  void set_loop_thread(std::thread::id id) { loop_thread_ = id; }
  // The next turn arms a timer `ms` from then.
  void arm_timer_in(int ms) { arm_in_ms_.store(ms); }

  uint64_t taken() const { return taken_; }
  // Who took the last items: 1 the loop thread, 2 another.
  std::atomic<int> last_turn_thread_{0};
  std::atomic<uint64_t> loop_thread_turns_with_work_{0};
  std::atomic<int> timers_fired_{0};

 private:
  EventLoop& loop_;
  const bool lends_;
  std::atomic<uint64_t> queued_{0};
  std::atomic<bool> inside_{false};
  std::atomic<int> arm_in_ms_{0};
  uint64_t taken_ = 0;
  uint64_t turns_ = 0;
  std::thread::id loop_thread_;
  Clock::time_point timer_due_ = Clock::time_point::max();
};

class LoopThread {
 public:
  explicit LoopThread(bool lends) : owner_(loop_, lends) {
    std::promise<void> started;
    thread_ = std::thread([this, &started] {
      owner_.set_loop_thread(std::this_thread::get_id());
      started.set_value();
      loop_.run(owner_);
    });
    started.get_future().wait();
  }
  ~LoopThread() {
    loop_.post([this] { loop_.stop(); });
    thread_.join();
  }
  EventLoop& loop() { return loop_; }
  CountingOwner& owner() { return owner_; }

  // Runs `task` on the loop thread and waits for it.
  template <typename Task>
  void run_on_loop(Task task) {
    testing::run_on_loop(loop_, std::move(task));
  }

  // Waits (bounded) until the loop thread is parked: an empty turn is lent
  // only then (an owner that lends).
  void wait_until_parked() {
    for (int i = 0; i < 5000; ++i) {
      const uint64_t lent = loop_.lent_turns();
      loop_.run_turn_here_or_wake();
      if (loop_.lent_turns() > lent)
        return;
      std::this_thread::sleep_for(1ms);
    }
    FAIL() << "the loop never parked";
  }

 private:
  EventLoop loop_;
  CountingOwner owner_;
  std::thread thread_;
};

TEST(EventLoopLentTurnTest, AParkedLoopLendsItsTurnToTheThreadThatQueuedWork) {
  LoopThread loop(/*lends=*/true);
  loop.wait_until_parked();
  const uint64_t wakeups = loop.loop().wakeups_signalled();
  const uint64_t lent = loop.loop().lent_turns();
  for (int i = 0; i < 100; ++i) {
    loop.owner().queue(1);
    loop.loop().run_turn_here_or_wake();
    EXPECT_EQ(loop.owner().last_turn_thread_.load(), 2) << "turn " << i;
  }
  EXPECT_EQ(loop.loop().lent_turns() - lent, 100u);
  // Nobody had to wake the loop thread for them.
  EXPECT_EQ(loop.loop().wakeups_signalled(), wakeups);
  EXPECT_EQ(loop.owner().loop_thread_turns_with_work_.load(), 0u);
  loop.run_on_loop([&] { EXPECT_EQ(loop.owner().taken(), 100u); });
}

TEST(EventLoopLentTurnTest, AnOwnerThatDoesNotLendIsWoken) {
  LoopThread loop(/*lends=*/false);
  std::this_thread::sleep_for(20ms);  // Parked or not, it is woken or sees the work.
  loop.owner().queue(1);
  loop.loop().run_turn_here_or_wake();
  for (int i = 0; i < 5000 && loop.owner().last_turn_thread_.load() != 1; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(loop.loop().lent_turns(), 0u);
  EXPECT_GE(loop.loop().wakeups_signalled(), 1u);
  loop.run_on_loop([&] { EXPECT_EQ(loop.owner().taken(), 1u); });
}

TEST(EventLoopLentTurnTest, PostedTasksKeepTheTurnOnTheLoopThread) {
  LoopThread loop(/*lends=*/true);
  loop.wait_until_parked();
  const uint64_t lent = loop.loop().lent_turns();
  // The loop thread is busy in a task (not parked): nothing is lent, and
  // the work waits for it.
  std::atomic<bool> release{false};
  std::atomic<bool> inside{false};
  loop.loop().post([&] {
    inside.store(true);
    while (!release.load())
      std::this_thread::yield();
  });
  for (int i = 0; i < 5000 && !inside.load(); ++i)
    std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(inside.load());
  loop.owner().queue(1);
  loop.loop().run_turn_here_or_wake();
  EXPECT_EQ(loop.loop().lent_turns(), lent);
  release.store(true);
  for (int i = 0; i < 5000 && loop.owner().last_turn_thread_.load() == 0; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(loop.owner().last_turn_thread_.load(), 1);
  loop.run_on_loop([&] { EXPECT_EQ(loop.owner().taken(), 1u); });
}

TEST(EventLoopLentTurnTest, ALentTurnThatArmsASoonerTimerWakesTheLoop) {
  LoopThread loop(/*lends=*/true);
  loop.wait_until_parked();  // Parked with no timer: epoll_wait without a timeout.
  const uint64_t wakeups = loop.loop().wakeups_signalled();
  const uint64_t lent = loop.loop().lent_turns();
  // The lent turn arms a timer 10 ms away. Only the loop thread runs
  // timers, and it sleeps without a timeout: it must be woken.
  loop.owner().arm_timer_in(10);
  loop.owner().queue(1);
  loop.loop().run_turn_here_or_wake();
  ASSERT_EQ(loop.loop().lent_turns(), lent + 1);
  EXPECT_EQ(loop.loop().wakeups_signalled(), wakeups + 1);
  for (int i = 0; i < 5000 && loop.owner().timers_fired_.load() == 0; ++i)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(loop.owner().timers_fired_.load(), 1);
}

TEST(EventLoopLentTurnTest, ALentTurnThatArmsNoTimerLeavesTheLoopAsleep) {
  LoopThread loop(/*lends=*/true);
  loop.wait_until_parked();
  const uint64_t wakeups = loop.loop().wakeups_signalled();
  loop.owner().queue(1);
  loop.loop().run_turn_here_or_wake();
  EXPECT_EQ(loop.loop().wakeups_signalled(), wakeups);
}

TEST(EventLoopLentTurnTest, ABatchScopeWritesItsCallsInOneTurnAtItsEnd) {
  LoopThread loop(/*lends=*/true);
  loop.wait_until_parked();
  const uint64_t lent = loop.loop().lent_turns();
  const uint64_t wakeups = loop.loop().wakeups_signalled();
  {
    EventLoop::BatchScope batch(&loop.loop());
    {
      EventLoop::BatchScope nested(&loop.loop());
      loop.owner().queue(1);
      loop.loop().run_turn_here_or_wake();
    }
    // The nested scope's end is not the batch's.
    EXPECT_EQ(loop.loop().lent_turns(), lent);
    for (int i = 0; i < 2; ++i) {
      loop.owner().queue(1);
      loop.loop().run_turn_here_or_wake();
    }
    EXPECT_EQ(loop.loop().lent_turns(), lent);
    EXPECT_EQ(loop.owner().last_turn_thread_.load(), 0) << "a call was written before the end";
  }
  // One turn took all three, here, and nobody woke the loop thread.
  EXPECT_EQ(loop.loop().lent_turns(), lent + 1);
  EXPECT_EQ(loop.owner().last_turn_thread_.load(), 2);
  EXPECT_EQ(loop.loop().wakeups_signalled(), wakeups);
  loop.run_on_loop([&] { EXPECT_EQ(loop.owner().taken(), 3u); });
}

TEST(EventLoopLentTurnTest, ABatchScopeHoldsBackOnlyTheLoopItNames) {
  LoopThread named(/*lends=*/true);
  LoopThread other(/*lends=*/true);
  named.wait_until_parked();
  other.wait_until_parked();
  const uint64_t lent = other.loop().lent_turns();
  {
    EventLoop::BatchScope batch(&named.loop());
    other.owner().queue(1);
    other.loop().run_turn_here_or_wake();
    // Written at once: the scope is not for that loop (which may not
    // outlive it, or whose answer the caller may wait for).
    EXPECT_EQ(other.loop().lent_turns(), lent + 1);
    EXPECT_EQ(other.owner().last_turn_thread_.load(), 2);
  }
}

TEST(EventLoopLentTurnTest, ManyCallersAndTheLoopThreadNeverShareTheRoleAndLoseNothing) {
  LoopThread loop(/*lends=*/true);
  constexpr int kThreads = 4;
  constexpr int kItems = 20000;
  std::vector<std::thread> callers;
  for (int t = 0; t < kThreads; ++t) {
    callers.emplace_back([&] {
      for (int i = 0; i < kItems; ++i) {
        loop.owner().queue(1);
        loop.loop().run_turn_here_or_wake();
        if (i % 64 == 0)
          std::this_thread::yield();
      }
    });
  }
  for (std::thread& caller : callers)
    caller.join();
  // Every item was taken by some turn, lent or not; the loop thread's next
  // turn sees whatever a wake-up left for it.
  for (int i = 0; i < 1000; ++i) {
    uint64_t taken = 0;
    loop.run_on_loop([&] { taken = loop.owner().taken(); });
    if (taken == uint64_t{kThreads} * kItems)
      break;
    std::this_thread::sleep_for(2ms);
  }
  loop.run_on_loop([&] { EXPECT_EQ(loop.owner().taken(), uint64_t{kThreads} * kItems); });
  EXPECT_GT(loop.loop().lent_turns(), 0u);
}

// `count` calls made pending in `table`, as a calling thread publishes them.
std::vector<CallTable::Slot> publish_calls(CallTable& table, int count) {
  std::vector<CallTable::Slot> slots;
  for (int i = 0; i < count; ++i) {
    const std::optional<CallTable::Slot> slot = table.acquire();
    if (!slot) {
      ADD_FAILURE() << "the call table is full";
      break;
    }
    table.publish(*slot);
    slots.push_back(*slot);
  }
  return slots;
}

// Calls of several timeout lengths (one queue each): an answered call at
// the front of any of them is not what the send thread sleeps until.
TEST(DeadlineQueueTest, TheNextDeadlineIsThatOfACallStillPending) {
  LoopThread send(/*lends=*/false);
  CallTable table(16);
  DeadlineQueue deadlines(send.loop(), table);
  const Clock::time_point now = Clock::now();
  const std::vector<CallTable::Slot> slots = publish_calls(table, 3);
  ASSERT_EQ(slots.size(), 3u);
  send.run_on_loop([&] {
    for (int i = 0; i < 3; ++i)
      deadlines.add(slots[i], now, now + std::chrono::seconds(10 + i));
    EXPECT_EQ(deadlines.expire_due(now, [](CallTable::Slot, int64_t) { FAIL(); }),
              now + std::chrono::seconds(10));
  });
  // The first two are answered long before their deadlines.
  ASSERT_TRUE(table.try_complete(slots[0]));
  ASSERT_TRUE(table.try_complete(slots[1]));
  send.run_on_loop([&] {
    int expired = 0;
    const Clock::time_point next =
        deadlines.expire_due(now + 1ms, [&](CallTable::Slot, int64_t) { ++expired; });
    EXPECT_EQ(expired, 0);
    // Not 10 s (an answered call's): the send thread sleeps until the third.
    EXPECT_EQ(next, now + std::chrono::seconds(12));
    EXPECT_EQ(deadlines.next_due(), now + std::chrono::seconds(12));
    EXPECT_EQ(deadlines.size(), 1u);
    // The third is still pending: it expires at its deadline, once.
    EXPECT_EQ(deadlines.expire_due(now + std::chrono::seconds(12),
                                   [&](CallTable::Slot slot, int64_t timeout_ms) {
                                     EXPECT_EQ(slot.index, slots[2].index);
                                     EXPECT_EQ(timeout_ms, 12000);
                                     ++expired;
                                   }),
              Clock::time_point::max());
    EXPECT_EQ(expired, 1);
  });
}

// One timeout for every call (the usual case): answered calls leave the
// queue as they reach its front, so it holds about the calls in flight.
TEST(DeadlineQueueTest, AnsweredCallsLeaveTheFrontWithoutWaitingForTheirDeadline) {
  LoopThread send(/*lends=*/false);
  CallTable table(64);
  DeadlineQueue deadlines(send.loop(), table);
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < 1000; ++i) {
    const std::vector<CallTable::Slot> published = publish_calls(table, 1);
    ASSERT_EQ(published.size(), 1u);
    const CallTable::Slot slot = published[0];
    const Clock::time_point now = start + std::chrono::microseconds(i);
    send.run_on_loop([&] {
      deadlines.add(slot, now, now + std::chrono::seconds(1));
      EXPECT_EQ(deadlines.expire_due(now, [](CallTable::Slot, int64_t) { FAIL(); }),
                now + std::chrono::seconds(1));
    });
    // One call in flight at a time.
    ASSERT_TRUE(table.try_complete(slot));
    table.release(slot);
  }
  send.run_on_loop([&] {
    EXPECT_EQ(deadlines.expire_due(start + std::chrono::milliseconds(2),
                                   [](CallTable::Slot, int64_t) { FAIL(); }),
              Clock::time_point::max());
    EXPECT_EQ(deadlines.size(), 0u);
  });
}

}  // namespace
}  // namespace percore::detail
