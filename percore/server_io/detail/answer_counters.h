#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

#include <percore/proto/detail/error_code_counters.h>

namespace percore::detail {

// Counts answers by error code, plus latency. Written by I/O threads with
// relaxed atomics, read by any thread for a snapshot.
class AnswerCounters {
 public:
  // Any thread.
  void record(int32_t code, uint64_t latency_us);
  // Any thread; a consistent-enough snapshot (each counter read once).
  uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }
  std::map<int32_t, uint64_t> answers_by_code() const { return by_code_.snapshot(); }
  uint64_t total_latency_us() const { return total_latency_us_.load(std::memory_order_relaxed); }
  uint64_t max_latency_us() const { return max_latency_us_.load(std::memory_order_relaxed); }

  // Latency histogram for /metrics: upper bounds in microseconds (Prometheus
  // "le", each bucket counting what is above the previous bound), and a last
  // bucket for the rest (+Inf). Not cumulative here.
  static constexpr std::array<uint64_t, 16> kLatencyBoundsUs = {
      100,    250,    500,     1000,    2500,    5000,     10000,    25000,
      50000,  100000, 250000,  500000,  1000000, 2500000,  5000000,  10000000};
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> latency_buckets() const;

 private:
  std::atomic<uint64_t> calls_{0};
  ErrorCodeCounters by_code_;
  std::atomic<uint64_t> total_latency_us_{0};
  std::atomic<uint64_t> max_latency_us_{0};
  std::array<std::atomic<uint64_t>, kLatencyBoundsUs.size() + 1> latency_buckets_{};
};

}  // namespace percore::detail
