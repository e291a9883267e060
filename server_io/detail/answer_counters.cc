#include "server_io/detail/answer_counters.h"

namespace percore::detail {

void AnswerCounters::record(int32_t code, uint64_t latency_us) {
  calls_.fetch_add(1, std::memory_order_relaxed);
  const int index = error_code_index(code);
  by_code_[index < 0 ? kErrorCodeCount : index].fetch_add(1, std::memory_order_relaxed);
  total_latency_us_.fetch_add(latency_us, std::memory_order_relaxed);
  uint64_t max = max_latency_us_.load(std::memory_order_relaxed);
  while (latency_us > max &&
         !max_latency_us_.compare_exchange_weak(max, latency_us, std::memory_order_relaxed)) {
  }
}

std::map<int32_t, uint64_t> AnswerCounters::answers_by_code() const {
  std::map<int32_t, uint64_t> answers;
  for (int i = 0; i <= kErrorCodeCount; ++i) {
    const uint64_t count = by_code_[i].load(std::memory_order_relaxed);
    if (count == 0)
      continue;
    // Numbers outside the enum are reported under -1.
    answers[i < kErrorCodeCount ? to_int(kAllErrorCodes[i]) : -1] += count;
  }
  return answers;
}

}  // namespace percore::detail
