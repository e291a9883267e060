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
// stay until their deadline; once they outnumber the calls that can be
// pending (twice the table, plus 1,024), a compaction drops them, which
// bounds the queues by the in-flight limit at amortized O(1) per call.
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
    if (now < next_due_)
      return next_due_;  // The usual turn: nothing due.
    Clock::time_point next = Clock::time_point::max();
    for (auto queue = queues_.begin(); queue != queues_.end();) {
      std::deque<Entry>& entries = queue->second;
      while (!entries.empty() && entries.front().deadline <= now) {
        const CallTable::Slot slot = entries.front().slot;
        entries.pop_front();
        --entries_;
        if (table_.is_pending(slot))
          expire(slot, queue->first);
      }
      if (entries.empty()) {
        if (&entries == last_queue_)
          last_queue_ = nullptr;
        queue = queues_.erase(queue);
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
