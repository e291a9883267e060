#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>

#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/event_loop.h>

namespace percore::detail {

// The deadlines of one group's calls. Calls with the same timeout arrive in
// deadline order, so one FIFO queue per timeout length keeps the earliest at
// its front: adding and expiring are O(1). Entries of calls that ended early
// leave once they reach the front (every turn looks at each queue's front:
// there is one per timeout length in use, usually one), so the send thread
// sleeps until the first deadline of a call still pending, not of one long
// answered; entries behind a pending one stay until it leaves,
// and once they outnumber the calls that can be pending (twice the table,
// plus 1,024), a compaction drops them: the queues are bounded by the
// in-flight limit at amortized O(1) per call.
//
// Owns: the queues. Threads: the send thread only (checked).
class DeadlineQueue {
 public:
  using Clock = std::chrono::steady_clock;

  DeadlineQueue(const EventLoop& send_loop, const CallTable& table)
      : loop_(send_loop), table_(table) {}

  // Adds the deadline of a call that started at `started`.
  void add(CallTable::Slot slot, Clock::time_point started, Clock::time_point deadline);

  // The earliest deadline queued (time_point::max(): none); it may belong
  // to a call that ended early.
  Clock::time_point next_due() const { return next_due_; }

  // Calls `expire(slot, timeout_ms)` for each entry due at `now` whose call
  // is still pending; returns the next deadline (time_point::max(): none).
  template <typename Expire>
  Clock::time_point expire_due(Clock::time_point now, Expire&& expire) {
    loop_.assert_in_loop_thread();
    Clock::time_point next = Clock::time_point::max();
    for (auto queue = queues_.begin(); queue != queues_.end();) {
      std::deque<Entry>& entries = queue->second;
      while (!entries.empty()) {
        const Entry& front = entries.front();
        const bool pending = table_.is_pending(front.slot);
        if (pending && front.deadline > now)
          break;
        const CallTable::Slot slot = front.slot;
        entries.pop_front();
        --entries_;
        if (pending)
          expire(slot, queue->first);
      }
      if (entries.empty()) {
        // The queue calls last went to stays (the next call would make it
        // again); others go, so lengths used once do not pile up.
        queue = &entries == last_queue_ ? std::next(queue) : queues_.erase(queue);
      } else {
        next = std::min(next, entries.front().deadline);
        ++queue;
      }
    }
    next_due_ = next;
    return next;
  }

  size_t size() const { return entries_; }

 private:
  struct Entry {
    Clock::time_point deadline;
    CallTable::Slot slot;
  };

  void compact();

  const EventLoop& loop_;
  const CallTable& table_;
  // By timeout length in milliseconds.
  std::map<int64_t, std::deque<Entry>> queues_;
  size_t entries_ = 0;  // Over all the queues.
  Clock::time_point next_due_ = Clock::time_point::max();
  // The queue of the last add (calls mostly share one timeout): skips the
  // map lookup. Null once that queue is erased.
  int64_t last_length_ = 0;
  std::deque<Entry>* last_queue_ = nullptr;
};

}  // namespace percore::detail
