#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace percore {

// Counts work in progress and lets one thread wait until none is left, as
// Seastar's gate: enter() and leave() around each piece of work (any
// thread; an atomic add, and on leave a check that is a single branch until
// someone waits), close_and_wait() or close_and_wait_until() to wait for the
// count to reach zero without polling. Entering after close() is allowed
// (work that was already on its way); the wait ends whenever the count is
// zero.
//
// Owns: the count. Threads: any; one waiter at a time.
class Gate {
 public:
  Gate() = default;
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  void enter() { count_.fetch_add(1, std::memory_order_relaxed); }
  // enter() unless `limit` pieces are in progress already (limit 0: no
  // limit); false when refused.
  bool try_enter_below(int64_t limit) {
    int64_t seen = count_.load(std::memory_order_relaxed);
    while (limit == 0 || (seen & ~kWaiting) < limit) {
      if (count_.compare_exchange_weak(seen, seen + 1, std::memory_order_relaxed))
        return true;
    }
    return false;
  }
  void leave() {
    // No waiter: one compare-and-swap. With one (kWaiting, set under the
    // lock), the count drops under the lock: the waiter sees zero only once
    // this leave is done with the gate, so it may destroy it at once.
    int64_t seen = count_.load(std::memory_order_relaxed);
    while ((seen & kWaiting) == 0) {
      if (count_.compare_exchange_weak(seen, seen - 1, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
    std::lock_guard lock(mutex_);
    if (count_.fetch_sub(1, std::memory_order_acq_rel) == (kWaiting | 1))
      drained_.notify_all();
  }
  int64_t count() const { return count_.load(std::memory_order_acquire) & ~kWaiting; }

  // Waits until the count is zero.
  void close_and_wait() { close_and_wait_until(std::chrono::steady_clock::time_point::max()); }
  // Waits until the count is zero or `deadline` passes; true if zero.
  bool close_and_wait_until(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    count_.fetch_or(kWaiting, std::memory_order_acq_rel);
    const auto empty = [this] { return count() == 0; };
    bool done;
    if (deadline == std::chrono::steady_clock::time_point::max()) {
      drained_.wait(lock, empty);
      done = true;
    } else {
      done = drained_.wait_until(lock, deadline, empty);
    }
    count_.fetch_and(~kWaiting, std::memory_order_acq_rel);
    return done;
  }

 private:
  static constexpr int64_t kWaiting = int64_t{1} << 62;

  std::atomic<int64_t> count_{0};
  std::mutex mutex_;
  std::condition_variable drained_;
};

}  // namespace percore
