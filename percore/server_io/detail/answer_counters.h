#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>

#include <percore/proto/detail/error_code_counters.h>

namespace percore::detail {

// Counts answers by error code, plus latency, in one shard per writer (each
// I/O thread is one), summed on read: every call counts here, and counters
// shared by all I/O threads were one cache line that every answer on every
// core wrote with a locked instruction. Within its shard a writer adds with
// a relaxed load and store. brpc's bvar::Adder keeps per-thread agents
// combined on read for the same reason.
//
// Owns: its shards. Threads: record() from writer `writer` only (the I/O
// thread of that index, checked by the caller's assert_in_loop_thread);
// the readers from any thread, each counter read once (a snapshot good
// enough for stats).
class AnswerCounters {
 public:
  // `writers` >= 1: the server's I/O threads.
  explicit AnswerCounters(int writers);

  // Writer `writer` (0 <= writer < writers) only.
  void record(int writer, int32_t code, uint64_t latency_us);

  uint64_t calls() const;
  std::map<int32_t, uint64_t> answers_by_code() const;
  uint64_t total_latency_us() const;
  uint64_t max_latency_us() const;

  // Latency histogram for /metrics: upper bounds in microseconds (Prometheus
  // "le", each bucket counting what is above the previous bound), and a last
  // bucket for the rest (+Inf). Not cumulative here.
  static constexpr std::array<uint64_t, 16> kLatencyBoundsUs = {
      100,    250,    500,     1000,    2500,    5000,     10000,    25000,
      50000,  100000, 250000,  500000,  1000000, 2500000,  5000000,  10000000};
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> latency_buckets() const;

 private:
  // A cache line of its own, so that writers never share one.
  struct alignas(64) Shard {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> total_latency_us{0};
    std::atomic<uint64_t> max_latency_us{0};
    std::array<std::atomic<uint64_t>, kLatencyBoundsUs.size() + 1> latency_buckets{};
    ErrorCodeCounters by_code;
  };

  const int writers_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace percore::detail
