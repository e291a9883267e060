#include <percore/client_proxy/detail/stream_registry.h>

namespace percore::detail {

void StreamRegistry::add(std::shared_ptr<StreamCore> stream) {
  std::lock_guard lock(mutex_);
  const StreamId id = stream->id();
  if (stream->idle_timeout_ms() > 0)
    with_idle_timeout_.fetch_add(1, std::memory_order_relaxed);
  entries_[id] = Entry{std::move(stream), 0};
}

StreamRegistry::Entry StreamRegistry::find(StreamId id) const {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  return found == entries_.end() ? Entry{} : found->second;
}

bool StreamRegistry::bind(StreamId id, uint64_t connection_id) {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  if (found == entries_.end())
    return false;
  found->second.connection_id = connection_id;
  return true;
}

std::shared_ptr<StreamCore> StreamRegistry::remove(StreamId id) {
  std::lock_guard lock(mutex_);
  const auto found = entries_.find(id);
  if (found == entries_.end())
    return nullptr;
  std::shared_ptr<StreamCore> stream = std::move(found->second.stream);
  entries_.erase(found);
  if (stream->idle_timeout_ms() > 0)
    with_idle_timeout_.fetch_sub(1, std::memory_order_relaxed);
  return stream;
}

std::vector<std::shared_ptr<StreamCore>> StreamRegistry::remove_on_connection(
    uint64_t connection_id) {
  std::vector<std::shared_ptr<StreamCore>> removed;
  std::lock_guard lock(mutex_);
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.connection_id == connection_id) {
      if (it->second.stream->idle_timeout_ms() > 0)
        with_idle_timeout_.fetch_sub(1, std::memory_order_relaxed);
      removed.push_back(std::move(it->second.stream));
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

std::vector<std::shared_ptr<StreamCore>> StreamRegistry::remove_all() {
  std::vector<std::shared_ptr<StreamCore>> removed;
  std::lock_guard lock(mutex_);
  for (auto& [id, entry] : entries_)
    removed.push_back(std::move(entry.stream));
  entries_.clear();
  with_idle_timeout_.store(0, std::memory_order_relaxed);
  return removed;
}

std::vector<std::shared_ptr<StreamCore>> StreamRegistry::bound_with_idle_timeout() const {
  std::vector<std::shared_ptr<StreamCore>> streams;
  std::lock_guard lock(mutex_);
  for (const auto& [id, entry] : entries_) {
    if (entry.connection_id != 0 && entry.stream->idle_timeout_ms() > 0)
      streams.push_back(entry.stream);
  }
  return streams;
}

size_t StreamRegistry::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace percore::detail
