#include <percore/client_proxy/detail/retry_budget.h>

namespace percore::detail {

void RetryBudget::roll_to(Clock::time_point at) {
  const int64_t second = second_of(at);
  const int64_t current_second = buckets_[current_].second;
  if (second <= current_second && current_second != INT64_MIN)
    return;  // Earlier than the current bucket: count it there.
  current_ = static_cast<size_t>(((second % kWindowSeconds) + kWindowSeconds) % kWindowSeconds);
  Bucket& bucket = buckets_[current_];
  if (bucket.second != second)
    bucket = Bucket{second, 0, 0};
  bucket_start_ = Clock::time_point(std::chrono::seconds(second));
  bucket_end_ = bucket_start_ + std::chrono::seconds(1);
}

void RetryBudget::sums(int64_t now_second, uint64_t& calls, uint64_t& retries) const {
  calls = 0;
  retries = 0;
  for (const Bucket& bucket : buckets_) {
    if (bucket.second > now_second - kWindowSeconds && bucket.second <= now_second) {
      calls += bucket.calls;
      retries += bucket.retries;
    }
  }
}

uint64_t RetryBudget::allowed(Clock::time_point now) {
  roll_to(now);
  uint64_t calls = 0;
  uint64_t retries = 0;
  sums(buckets_[current_].second, calls, retries);
  return static_cast<uint64_t>(min_per_second_) * kWindowSeconds +
         calls * static_cast<uint64_t>(percent_) / 100;
}

uint64_t RetryBudget::spent(Clock::time_point now) {
  roll_to(now);
  uint64_t calls = 0;
  uint64_t retries = 0;
  sums(buckets_[current_].second, calls, retries);
  return retries;
}

}  // namespace percore::detail
