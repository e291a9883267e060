#include <percore/proto/detail/error_code_counters.h>

namespace percore {

void ErrorCodeCounters::add_other(int32_t code) {
  for (OtherCode& slot : other_codes_) {
    int32_t held = slot.code.load(std::memory_order_acquire);
    if (held == 0 && slot.code.compare_exchange_strong(held, code, std::memory_order_acq_rel))
      held = code;
    if (held == code) {
      slot.count.fetch_add(1, std::memory_order_relaxed);
      return;
    }
  }
  by_code_[kErrorCodeCount].fetch_add(1, std::memory_order_relaxed);
}

std::map<int32_t, uint64_t> ErrorCodeCounters::snapshot() const {
  std::map<int32_t, uint64_t> counts;
  for (int i = 0; i <= kErrorCodeCount; ++i) {
    const uint64_t count = by_code_[i].load(std::memory_order_relaxed);
    if (count != 0)
      counts[i < kErrorCodeCount ? to_int(kAllErrorCodes[i]) : kOtherErrorCodes] += count;
  }
  for (const OtherCode& slot : other_codes_) {
    const uint64_t count = slot.count.load(std::memory_order_relaxed);
    if (count != 0)
      counts[slot.code.load(std::memory_order_relaxed)] += count;
  }
  return counts;
}

uint64_t ErrorCodeCounters::total() const {
  uint64_t total = 0;
  for (const std::atomic<uint64_t>& counter : by_code_)
    total += counter.load(std::memory_order_relaxed);
  for (const OtherCode& slot : other_codes_)
    total += slot.count.load(std::memory_order_relaxed);
  return total;
}

}  // namespace percore
