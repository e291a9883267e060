#include <percore/server_io/detail/answer_counters.h>

#include <algorithm>

namespace percore::detail {

void AnswerCounters::record(int32_t code, uint64_t latency_us) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  by_code_.add(code);
  total_latency_us_.fetch_add(latency_us, std::memory_order_relaxed);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), latency_us) -
      kLatencyBoundsUs.begin());
  latency_buckets_[bucket].fetch_add(1, std::memory_order_relaxed);
  uint64_t max = max_latency_us_.load(std::memory_order_relaxed);
  while (latency_us > max &&
         !max_latency_us_.compare_exchange_weak(max, latency_us, std::memory_order_relaxed)) {
  }
}

std::array<uint64_t, AnswerCounters::kLatencyBoundsUs.size() + 1> AnswerCounters::latency_buckets()
    const {
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> counts{};
  for (size_t i = 0; i < counts.size(); ++i)
    counts[i] = latency_buckets_[i].load(std::memory_order_relaxed);
  return counts;
}

}  // namespace percore::detail
