#include <percore/server_io/detail/answer_counters.h>

namespace percore::detail {

void AnswerCounters::record(int32_t code, uint64_t latency_us) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  by_code_.add(code);
  total_latency_us_.fetch_add(latency_us, std::memory_order_relaxed);
  uint64_t max = max_latency_us_.load(std::memory_order_relaxed);
  while (latency_us > max &&
         !max_latency_us_.compare_exchange_weak(max, latency_us, std::memory_order_relaxed)) {
  }
}

}  // namespace percore::detail
