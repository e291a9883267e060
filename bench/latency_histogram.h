#pragma once

#include <array>
#include <atomic>
#include <cstdint>

namespace percore::bench {

// A log-bucket latency histogram in the style of HdrHistogram: 32 sub-buckets
// per power of two (about 3% precision) from 1 ns to about 18 minutes, in a
// fixed array, so nothing grows with the length of a run.
// Threads: record() from any thread (relaxed atomics); the readers after the
// writers have stopped, or for an approximate live view.
class LatencyHistogram {
 public:
  static constexpr int kSubBucketBits = 5;
  static constexpr int kMaxExponent = 40;
  static constexpr int kBuckets = (kMaxExponent - kSubBucketBits + 2) << kSubBucketBits;

  void record(uint64_t nanoseconds);
  void merge_from(const LatencyHistogram& other);

  uint64_t count() const;
  uint64_t max() const { return max_.load(std::memory_order_relaxed); }
  // The value at `quantile` (0..1), reported as its bucket's upper bound.
  uint64_t percentile(double quantile) const;

  static int bucket_of(uint64_t nanoseconds);
  static uint64_t upper_bound_of(int bucket);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> max_{0};
};

}  // namespace percore::bench
