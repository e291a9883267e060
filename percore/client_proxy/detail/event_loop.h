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
// Lent turns (brpc's "the caller writes when uncontended"): while the loop
// thread is parked in epoll_wait, another thread may take the loop's role
// for one on_turn() (run_turn_here_or_wake), so that the work it has just
// queued is done without waking the loop thread: one thread wake-up and
// two system calls fewer per call at low load. The role is one atomic
// (Role): the loop thread holds it except while parked, takes it back when
// epoll_wait returns (waiting out a lent turn, which is short), and a lent
// turn wakes it only when it must (a timer now due sooner than the park's
// timeout, a posted task, a stop). While a thread holds the role,
// in_loop_thread() is true on it.
//
// Batching comes first: a receive thread running inline callbacks for a
// batch of replies holds a BatchScope for its own group's send loop, and
// the calls they make wait for the scope's end, where one turn writes them
// all (one sendmsg per connection, as the send thread's turns do). Only
// there: an inline callback may not block (a synchronous call from it fails
// at once), so nothing waits on a held-back call, and the group's send loop
// outlives its receive thread. Callback threads run user code that may
// block (a synchronous call from a queued callback is allowed), so they
// never lend: they wake the send thread, which batches what they queue.
// Under load the loop thread is rarely parked, so it keeps batching too.
//
// Owns: the epoll descriptor, the notifier and the task queue.
// Threads: post(), wake(), run_turn_here_or_wake() and in_loop_thread()
// from any thread; run() is the loop thread's body; everything else by the
// holder of the loop's role (the loop thread, or a lent turn; checked).
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
    // When on_timers() is next due, without running it (after a lent turn:
    // a sooner time than the parked loop's timeout wakes it).
    virtual Clock::time_point next_timer() const { return Clock::time_point::max(); }
    // Whether another thread may run on_turn() while the loop is parked.
    virtual bool lends_turns() const { return false; }
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
  // Work was queued for on_turn(): runs that turn on the calling thread if
  // the loop is parked and its owner lends turns, else wakes the loop. Any
  // thread; a thread already in a lent turn, and the loop's own thread,
  // only wake it.
  void run_turn_here_or_wake();
  // Holds back this thread's run_turn_here_or_wake() calls for `loop` (null:
  // none) until the scope ends, then makes one. Only for a loop that
  // outlives the scope, on a thread that cannot block while it holds one
  // (a receive thread, for its group's send loop). A scope inside another
  // one holds nothing back of its own.
  class BatchScope {
   public:
    explicit BatchScope(EventLoop* loop);
    ~BatchScope();
    BatchScope(const BatchScope&) = delete;
    BatchScope& operator=(const BatchScope&) = delete;

   private:
    bool outermost_ = false;
  };
  // The loop whose thread's BatchScopes hold back calls for `send_loop`
  // (a group's receive loop, for its send loop). Before run().
  void batch_calls_for(EventLoop& send_loop) { batch_for_ = &send_loop; }
  // The calling thread never runs a lent turn: run_turn_here_or_wake()
  // only wakes (a callback thread, whose user code may block).
  static void never_lend_on_this_thread() { never_lend_ = true; }

  // Turns run by other threads (tests, benchmarks).
  uint64_t lent_turns() const { return lent_turns_.load(std::memory_order_relaxed); }

  // Two thread-local loads and compares: cheap enough for the accessors
  // that check every per-call access to thread-owned state.
  bool in_loop_thread() const { return current_ == this || lent_ == this; }
  // Whether the calling thread runs a lent turn of this loop (not its own
  // thread).
  bool in_lent_turn() const { return lent_ == this; }
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
  // was posted). Loop thread; none in a lent turn (run_turn_here_or_wake
  // lends none while tasks wait).
  bool run_tasks();

 private:
  void park(Owner& owner, Clock::time_point next_timer);
  // The loop thread, after epoll_wait: kParked -> kRunning, waiting while a
  // lent turn holds the role.
  void take_back_role();
  // run_turn_here_or_wake(), at once.
  void lend_or_wake_now();

  // Who holds the loop's role.
  enum class Role : uint8_t {
    kNotRunning,  // Before run() and after it: nothing is lent.
    kRunning,     // The loop thread works.
    kParked,      // The loop thread waits in epoll_wait: the role is free.
    kLent,        // Another thread runs a turn.
  };

  const int spin_us_;
  int epoll_fd_ = -1;
  EventNotifier notifier_;
  moodycamel::ConcurrentQueue<Task> tasks_;
  // Tasks posted and not yet run: a turn with none (nearly every turn) skips
  // the queue, whose empty dequeue looks at every producer.
  std::atomic<uint64_t> queued_tasks_{0};
  bool stopped_ = false;
  std::atomic<Role> role_{Role::kNotRunning};
  Owner* owner_ = nullptr;  // Set by run() before the role is first freed.
  // When the parked loop wakes by itself (its epoll_wait timeout). Written
  // before the role is freed, read by the lent turn that takes it.
  Clock::time_point parked_until_ = Clock::time_point::max();
  std::atomic<uint64_t> lent_turns_{0};
  EventLoop* batch_for_ = nullptr;  // batch_calls_for()
  // The loop the calling thread runs, if any. constinit: every user sees
  // there is no dynamic initialization, so access is a plain TLS load.
  static inline constinit thread_local const EventLoop* current_ = nullptr;
  // The loop whose turn the calling thread runs for it, if any.
  static inline constinit thread_local const EventLoop* lent_ = nullptr;
  // BatchScope: the loop it holds calls back for on this thread, and
  // whether one was held back.
  static inline constinit thread_local EventLoop* batch_loop_ = nullptr;
  static inline constinit thread_local bool batch_held_ = false;
  static inline constinit thread_local bool never_lend_ = false;
};

}  // namespace percore::detail
