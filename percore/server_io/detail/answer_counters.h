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
// Codes outside ErrorCode (a handler's own) are counted as ErrorCodeCounters
// counts them: each of the first kOtherCodeSlots numbers seen gets a slot,
// the rest share one count reported as kOtherErrorCodes. The slots are one
// table for all shards (claimed once per number), so a number has the same
// slot, or none, whichever thread answered.
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
  static constexpr int kOtherCodeSlots = ErrorCodeCounters::kOtherCodeSlots;

  // A cache line of its own, so that writers never share one.
  struct alignas(64) Shard {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> total_latency_us{0};
    std::atomic<uint64_t> max_latency_us{0};
    std::array<std::atomic<uint64_t>, kLatencyBoundsUs.size() + 1> latency_buckets{};
    // kAllErrorCodes' order, then [kErrorCodeCount]: other numbers past the slots.
    std::array<std::atomic<uint64_t>, kErrorCodeCount + 1> by_code{};
    std::array<std::atomic<uint64_t>, kOtherCodeSlots> by_other_code{};  // By slot.
  };

  // The slot of a number outside ErrorCode, claimed if free; -1 when all
  // are held by other numbers.
  int other_code_slot(int32_t code);

  const int writers_;
  std::unique_ptr<Shard[]> shards_;
  // The number each slot counts; 0: free (0 is kOk, never "other").
  std::array<std::atomic<int32_t>, kOtherCodeSlots> other_codes_{};
};

}  // namespace percore::detail
