#include "client_proxy/detail/deadline_queue.h"

#include <algorithm>

namespace percore::detail {

void DeadlineQueue::add(CallTable::Slot slot, Clock::time_point started,
                        Clock::time_point deadline) {
  loop_.assert_in_loop_thread();
  const int64_t length =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - started).count();
  queues_[length].push_back(Entry{deadline, slot});
  if (++entries_ > 2 * static_cast<size_t>(table_.capacity()) + 1024)
    compact();
}

void DeadlineQueue::compact() {
  entries_ = 0;
  for (auto queue = queues_.begin(); queue != queues_.end();) {
    std::erase_if(queue->second,
                  [this](const Entry& entry) { return !table_.is_pending(entry.slot); });
    entries_ += queue->second.size();
    queue = queue->second.empty() ? queues_.erase(queue) : std::next(queue);
  }
}

}  // namespace percore::detail
