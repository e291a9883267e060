#include <percore/proto/detail/error_code_counters.h>

namespace percore {

std::map<int32_t, uint64_t> ErrorCodeCounters::snapshot() const {
  std::map<int32_t, uint64_t> counts;
  for (int i = 0; i <= kErrorCodeCount; ++i) {
    const uint64_t count = by_code_[i].load(std::memory_order_relaxed);
    if (count != 0)
      counts[i < kErrorCodeCount ? to_int(kAllErrorCodes[i]) : -1] += count;
  }
  return counts;
}

uint64_t ErrorCodeCounters::total() const {
  uint64_t total = 0;
  for (const std::atomic<uint64_t>& counter : by_code_)
    total += counter.load(std::memory_order_relaxed);
  return total;
}

}  // namespace percore
