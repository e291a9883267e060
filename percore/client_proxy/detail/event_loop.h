#pragma once

#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>

#include <percore/client_proxy/detail/event_notifier.h>
#include <percore/proto/detail/assert.h>

namespace percore::detail {

// One thread's event loop, as muduo's EventLoop: an epoll poller, a wake-up
// descriptor that is written only when the loop is parked (EventNotifier),
// a queue of tasks other threads post, and a timer the owner drives. The
// send and the receive thread of a group each run one.
//
// A turn: run the posted tasks, let the owner do the work its own queues
// hold (on_turn), run its timers, and park in epoll_wait when nothing was
// done (after spinning up to spin_us, and after a last look at the queues
// with the parked flag raised, so a wake-up is never lost).
//
// Owns: the epoll descriptor, the notifier and the task queue.
// Threads: post() and in_loop_thread() from any thread; run() is the loop
// thread's body; everything else on the loop thread only (checked).
class EventLoop {
 public:
  using Clock = std::chrono::steady_clock;
  using Task = std::function<void()>;

  // What the loop's thread does besides tasks. Called on the loop thread.
  class Owner {
   public:
    virtual ~Owner() = default;
    // Work from the owner's own queues; true if there was any.
    virtual bool on_turn() { return false; }
    // Whether such work waits (checked before parking).
    virtual bool has_work() const { return false; }
    // An event on a descriptor watched with `tag` (never 0).
    virtual void on_event(uint64_t tag, uint32_t events) = 0;
    // Time-driven work due at `now`; returns when it is next due
    // (time_point::max(): nothing scheduled).
    virtual Clock::time_point on_timers(Clock::time_point now) {
      (void)now;
      return Clock::time_point::max();
    }
  };

  // `spin_us`: how long a loop with nothing to do polls its queues before
  // it parks (0: parks at once).
  explicit EventLoop(int spin_us = 0);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // The loop thread's body: turns until stop(). Binds the loop to the
  // calling thread.
  void run(Owner& owner);
  // Ends run() after the current turn. Loop thread.
  void stop();

  // Runs `task` on the loop thread, after the tasks posted before it. Any
  // thread; wakes the loop if it is parked.
  void post(Task task);
  // Wakes the loop if it is parked (work was queued for on_turn()). Any
  // thread.
  void wake() { notifier_.notify(); }

  // One thread-local load and a compare: cheap enough for the accessors
  // that check every per-call access to thread-owned state.
  bool in_loop_thread() const { return current_ == this; }
  // Whether the calling thread runs any EventLoop (of any group or runtime).
  static bool in_any_loop_thread() { return current_ != nullptr; }
  void assert_in_loop_thread() const { PERCORE_ASSERT(in_loop_thread()); }

  // Descriptor watches (epoll), loop thread only. `tag` identifies the
  // descriptor to Owner::on_event; 0 is reserved.
  void watch(int fd, uint32_t events, uint64_t tag);
  void unwatch(int fd);

  // Wake-ups that needed a system call (tests, benchmarks).
  uint64_t wakeups_signalled() const { return notifier_.wakeups_signalled(); }

  // Runs the tasks posted so far; true if there were any. The loop runs them
  // at the start of every turn; an owner also calls it before work that a
  // task posted earlier must precede (a call made after its Channel's route
  // was posted). Loop thread.
  bool run_tasks();

 private:
  void park(Owner& owner, Clock::time_point next_timer);

  const int spin_us_;
  int epoll_fd_ = -1;
  EventNotifier notifier_;
  moodycamel::ConcurrentQueue<Task> tasks_;
  // Tasks posted and not yet run: a turn with none (nearly every turn) skips
  // the queue, whose empty dequeue looks at every producer.
  std::atomic<uint64_t> queued_tasks_{0};
  bool stopped_ = false;
  // The loop the calling thread runs, if any. constinit: every user sees
  // there is no dynamic initialization, so access is a plain TLS load.
  static inline constinit thread_local const EventLoop* current_ = nullptr;
};

}  // namespace percore::detail
