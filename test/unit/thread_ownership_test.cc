// The client proxy's thread-ownership checks are real: a method bound to the
// send thread, called from another thread, stops the process with the
// assertion (death tests), and the same call made on the loop's own thread
// passes (so the check is not one that always fails).

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/connection_pool.h>
#include <percore/client_proxy/detail/deadline_queue.h>
#include <percore/client_proxy/detail/event_loop.h>
#include "test/support/run_on_loop.h"

namespace percore::detail {
namespace {

using Clock = std::chrono::steady_clock;

// An EventLoop running on a thread of its own, as a group's send loop does.
class LoopThread {
 public:
  LoopThread() : thread_([this] { loop_.run(owner_); }) {}
  ~LoopThread() {
    loop_.post([this] { loop_.stop(); });
    thread_.join();
  }
  EventLoop& loop() { return loop_; }

  // Runs `task` on the loop thread and waits for it.
  template <typename Task>
  void run_on_loop(Task task) {
    testing::run_on_loop(loop_, std::move(task));
  }

 private:
  struct Owner : EventLoop::Owner {
    void on_event(uint64_t, uint32_t) override {}
  };
  EventLoop loop_;
  Owner owner_;
  std::thread thread_;
};

struct NoListener : ConnectionPool::Listener {
  void on_connection_ready(ClientConnection&) override {}
  void on_connection_releasing(ClientConnection&) override {}
  void on_maintenance_due(ConnectionPool::Clock::time_point) override {}
  void send_health_probe(ClientConnection&, bool) override {}
  void start_tls(ClientConnection&) override {}
  void on_connection_freed(ClientConnection&) override {}
};

class ThreadOwnershipDeathTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if !defined(PERCORE_ENABLE_ASSERTS)
    GTEST_SKIP() << "built with PERCORE_ASSERTS=OFF: the checks are compiled out";
#endif
    // The child re-runs only this test: no threads of the parent to fork.
    GTEST_FLAG_SET(death_test_style, "threadsafe");
  }
};

TEST_F(ThreadOwnershipDeathTest, DeadlineQueueOnItsLoopThreadIsFine) {
  LoopThread send;
  CallTable table(16);
  DeadlineQueue deadlines(send.loop(), table);
  send.run_on_loop([&] {
    const auto now = Clock::now();
    deadlines.add(CallTable::Slot{}, now, now + std::chrono::seconds(1));
  });
  EXPECT_EQ(deadlines.size(), 1u);
}

TEST_F(ThreadOwnershipDeathTest, DeadlineQueueFromAnotherThreadDies) {
  EXPECT_DEATH(
      {
        LoopThread send;
        CallTable table(16);
        DeadlineQueue deadlines(send.loop(), table);
        const auto now = Clock::now();
        deadlines.add(CallTable::Slot{}, now, now + std::chrono::seconds(1));
      },
      "assertion failed: in_loop_thread");
}

TEST_F(ThreadOwnershipDeathTest, ConnectionPoolFromAnotherThreadDies) {
  EXPECT_DEATH(
      {
        LoopThread send;
        LoopThread receive;
        ConnectionRegistry registry(send.loop());
        NoListener listener;
        RouteCounters counters;
        ChannelEventLog events("list://127.0.0.1:1");
        ConnectionPool pool(send.loop(), receive.loop(), ChannelOptions{}, registry, listener,
                            counters, events, 1);
        pool.set_servers({}, nullptr);
      },
      "assertion failed: in_loop_thread");
}

TEST_F(ThreadOwnershipDeathTest, ConnectionRegistryFromAnotherThreadDies) {
  EXPECT_DEATH(
      {
        LoopThread send;
        ConnectionRegistry registry(send.loop());
        registry.next_id();
      },
      "assertion failed: in_loop_thread");
}

TEST_F(ThreadOwnershipDeathTest, EventLoopWatchFromAnotherThreadDies) {
  EXPECT_DEATH(
      {
        LoopThread send;
        send.loop().watch(0, 0, 1);
      },
      "assertion failed: in_loop_thread");
}

}  // namespace
}  // namespace percore::detail
