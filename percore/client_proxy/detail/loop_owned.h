#pragma once

#include <utility>

#include <percore/client_proxy/detail/event_loop.h>
#include <percore/proto/detail/assert.h>

namespace percore::detail {

// A value that only one event loop's thread may touch, inside a struct that
// other threads share (a call record, a connection, a Channel's route).
// get() checks the calling thread (PERCORE_ASSERT): the wrong access dies in
// a test instead of racing in production. One thread-local load per access.
//
// Owns: the value. Threads: get() on `loop`'s thread only (checked).
template <typename T>
class LoopOwned {
 public:
  template <typename... Args>
  explicit LoopOwned(Args&&... args) : value_(std::forward<Args>(args)...) {}

  T& get(const EventLoop& loop) {
    PERCORE_ASSERT(loop.in_loop_thread());
    return value_;
  }

 private:
  T value_;
};

}  // namespace percore::detail
