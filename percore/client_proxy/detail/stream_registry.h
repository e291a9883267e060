#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <percore/proto/detail/stream_core.h>

namespace percore::detail {

// The open streams of one group's calls, by this side's stream id, and the
// connection each is bound to once its call's response connected it (0
// before). The receive thread finds a frame's stream here; the send thread
// ends the streams of a connection that is gone; callers add theirs when
// they make the call.
//
// Owns: a reference to each stream until it is removed.
// Threads: any (one mutex; taken once per stream frame received).
class StreamRegistry {
 public:
  struct Entry {
    std::shared_ptr<StreamCore> stream;  // Null: not found.
    uint64_t connection_id = 0;
  };

  void add(std::shared_ptr<StreamCore> stream);
  Entry find(StreamId id) const;
  // Binds a stream to the connection its response came on; false if it is
  // no longer registered.
  bool bind(StreamId id, uint64_t connection_id);
  // Removes it; returns it (null if it was not registered).
  std::shared_ptr<StreamCore> remove(StreamId id);
  // Removes and returns every stream bound to `connection_id`.
  std::vector<std::shared_ptr<StreamCore>> remove_on_connection(uint64_t connection_id);
  // Removes and returns every stream (the group is going).
  std::vector<std::shared_ptr<StreamCore>> remove_all();
  size_t size() const;
  // Streams with an idle timeout (StreamOptions::idle_timeout_ms): how many
  // are registered, and those bound to a connection (the send thread checks
  // them).
  size_t with_idle_timeout() const { return with_idle_timeout_.load(std::memory_order_relaxed); }
  std::vector<std::shared_ptr<StreamCore>> bound_with_idle_timeout() const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<StreamId, Entry> entries_;
  std::atomic<size_t> with_idle_timeout_{0};  // Written under mutex_.
};

}  // namespace percore::detail
