#include <percore/base/call_context.h>

#include <functional>
#include <limits>
#include <random>
#include <thread>

namespace percore {

int32_t CallContext::remaining_timeout_ms(Clock::time_point now) const {
  if (!has_deadline())
    return -1;
  if (deadline <= now)
    return 0;
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  return left >= std::numeric_limits<int32_t>::max() ? std::numeric_limits<int32_t>::max()
                                                     : static_cast<int32_t>(left);
}

int64_t new_span_id() {
  // splitmix64 per thread: a span id needs to be unique in practice, not
  // unpredictable, and must cost nanoseconds on a call's path.
  thread_local uint64_t state = [] {
    std::random_device device;
    return (static_cast<uint64_t>(device()) << 32) ^ device() ^
           std::hash<std::thread::id>()(std::this_thread::get_id());
  }();
  for (;;) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    const auto id =
        static_cast<int64_t>(z & static_cast<uint64_t>(std::numeric_limits<int64_t>::max()));
    if (id != 0)
      return id;
  }
}

}  // namespace percore
