#include "bench/latency_histogram.h"

#include <bit>

namespace percore::bench {

int LatencyHistogram::bucket_of(uint64_t nanoseconds) {
  if (nanoseconds < (uint64_t{1} << kSubBucketBits))
    return static_cast<int>(nanoseconds);
  const int exponent = std::bit_width(nanoseconds) - 1;  // >= kSubBucketBits
  if (exponent > kMaxExponent)
    return kBuckets - 1;
  const int shift = exponent - kSubBucketBits;
  const auto sub_bucket = static_cast<int>((nanoseconds >> shift) & ((1 << kSubBucketBits) - 1));
  return ((shift + 1) << kSubBucketBits) | sub_bucket;
}

uint64_t LatencyHistogram::upper_bound_of(int bucket) {
  const int block = bucket >> kSubBucketBits;
  const uint64_t sub_bucket = bucket & ((1 << kSubBucketBits) - 1);
  if (block == 0)
    return sub_bucket;
  const int shift = block - 1;
  return (((uint64_t{1} << kSubBucketBits) | sub_bucket) + 1) << shift;
}

void LatencyHistogram::record(uint64_t nanoseconds) {
  counts_[bucket_of(nanoseconds)].fetch_add(1, std::memory_order_relaxed);
  uint64_t max = max_.load(std::memory_order_relaxed);
  while (nanoseconds > max &&
         !max_.compare_exchange_weak(max, nanoseconds, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::merge_from(const LatencyHistogram& other) {
  for (int i = 0; i < kBuckets; ++i) {
    const uint64_t count = other.counts_[i].load(std::memory_order_relaxed);
    if (count != 0)
      counts_[i].fetch_add(count, std::memory_order_relaxed);
  }
  const uint64_t other_max = other.max();
  uint64_t max = max_.load(std::memory_order_relaxed);
  while (other_max > max && !max_.compare_exchange_weak(max, other_max)) {
  }
}

uint64_t LatencyHistogram::count() const {
  uint64_t total = 0;
  for (const auto& count : counts_)
    total += count.load(std::memory_order_relaxed);
  return total;
}

uint64_t LatencyHistogram::percentile(double quantile) const {
  const uint64_t total = count();
  if (total == 0)
    return 0;
  const auto rank = static_cast<uint64_t>(quantile * static_cast<double>(total - 1)) + 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts_[i].load(std::memory_order_relaxed);
    if (seen >= rank)
      return std::min(upper_bound_of(i), max());
  }
  return max();
}

}  // namespace percore::bench
