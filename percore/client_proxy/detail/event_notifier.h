#pragma once

#include <atomic>

namespace percore::detail {

// Wakes a thread that sleeps in epoll_wait, without a system call when it is
// awake. The sleeper says it is about to park (prepare_to_park), checks its
// queues once more, and only then waits; a producer writes the eventfd only
// if it sees the sleeper parked. A seq_cst fence on each side orders "item
// queued" against "parked flag read", so a wake-up is never lost: either the
// sleeper sees the item, or the producer sees the flag.
//
// Owns: the eventfd. Threads: notify() from any thread; the rest from the
// owning (sleeping) thread only.
class EventNotifier {
 public:
  EventNotifier();
  ~EventNotifier();
  EventNotifier(const EventNotifier&) = delete;
  EventNotifier& operator=(const EventNotifier&) = delete;

  // The descriptor to register in the owner's epoll set (EPOLLIN).
  int fd() const { return fd_; }

  // Producer side, after queueing work.
  void notify();

  // Owner side: announce parking, then re-check the queues; if they hold
  // work call cancel_park(), else epoll_wait and then consume().
  void prepare_to_park();
  void cancel_park();
  // After epoll reported fd() readable, or after waking for any reason.
  void consume();

  // Wake-ups that needed a system call (for tests and benchmarks).
  uint64_t wakeups_signalled() const { return signalled_.load(std::memory_order_relaxed); }

 private:
  int fd_;
  std::atomic<bool> parked_{false};
  std::atomic<uint64_t> signalled_{0};
};

}  // namespace percore::detail
