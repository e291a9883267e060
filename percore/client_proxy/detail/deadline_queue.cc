#include <percore/client_proxy/detail/deadline_queue.h>

#include <algorithm>

namespace percore::detail {

void DeadlineQueue::add(CallTable::Slot slot, Clock::time_point started,
                        Clock::time_point deadline) {
  loop_.assert_in_loop_thread();
  const int64_t length =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - started).count();
  if (last_queue_ == nullptr || length != last_length_) {
    last_length_ = length;
    last_queue_ = &queues_[length];
  }
  last_queue_->push_back(Entry{deadline, slot});
  next_due_ = std::min(next_due_, deadline);
  if (++entries_ > 2 * static_cast<size_t>(table_.capacity()) + 1024)
    compact();
}

void DeadlineQueue::compact() {
  entries_ = 0;
  last_queue_ = nullptr;
  for (auto queue = queues_.begin(); queue != queues_.end();) {
    std::erase_if(queue->second,
                  [this](const Entry& entry) { return !table_.is_pending(entry.slot); });
    entries_ += queue->second.size();
    queue = queue->second.empty() ? queues_.erase(queue) : std::next(queue);
  }
  // Still a lower bound of every front; expire_due() makes it exact.
}

}  // namespace percore::detail
