#include <percore/server_io/detail/answer_counters.h>

#include <algorithm>
#include <cassert>

namespace percore::detail {
namespace {

void add(std::atomic<uint64_t>& counter, uint64_t amount) {
  counter.store(counter.load(std::memory_order_relaxed) + amount, std::memory_order_relaxed);
}

}  // namespace

AnswerCounters::AnswerCounters(int writers)
    : writers_(std::max(1, writers)), shards_(std::make_unique<Shard[]>(writers_)) {}

void AnswerCounters::record(int writer, int32_t code, uint64_t latency_us) {
  assert(writer >= 0 && writer < writers_);
  Shard& shard = shards_[writer];
  add(shard.calls, 1);
  const int index = code == 0 ? 0 : error_code_index(code);
  if (index >= 0) [[likely]] {
    add(shard.by_code[static_cast<size_t>(index)], 1);
  } else if (const int slot = other_code_slot(code); slot >= 0) {
    // Release: a reader that sees the count sees the slot's number.
    std::atomic<uint64_t>& count = shard.by_other_code[static_cast<size_t>(slot)];
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  } else {
    add(shard.by_code[kErrorCodeCount], 1);
  }
  add(shard.total_latency_us, latency_us);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), latency_us) -
      kLatencyBoundsUs.begin());
  add(shard.latency_buckets[bucket], 1);
  if (latency_us > shard.max_latency_us.load(std::memory_order_relaxed))
    shard.max_latency_us.store(latency_us, std::memory_order_relaxed);
}

int AnswerCounters::other_code_slot(int32_t code) {
  for (int slot = 0; slot < kOtherCodeSlots; ++slot) {
    std::atomic<int32_t>& held = other_codes_[static_cast<size_t>(slot)];
    int32_t number = held.load(std::memory_order_acquire);
    if (number == 0 && held.compare_exchange_strong(number, code, std::memory_order_acq_rel))
      return slot;
    if (number == code)
      return slot;
  }
  return -1;
}

uint64_t AnswerCounters::calls() const {
  uint64_t calls = 0;
  for (int i = 0; i < writers_; ++i)
    calls += shards_[i].calls.load(std::memory_order_relaxed);
  return calls;
}

std::map<int32_t, uint64_t> AnswerCounters::answers_by_code() const {
  std::map<int32_t, uint64_t> counts;
  for (int i = 0; i < writers_; ++i) {
    const Shard& shard = shards_[i];
    for (int c = 0; c <= kErrorCodeCount; ++c) {
      const uint64_t count = shard.by_code[static_cast<size_t>(c)].load(std::memory_order_relaxed);
      if (count != 0)
        counts[c < kErrorCodeCount ? to_int(kAllErrorCodes[c]) : kOtherErrorCodes] += count;
    }
    for (int slot = 0; slot < kOtherCodeSlots; ++slot) {
      const uint64_t count =
          shard.by_other_code[static_cast<size_t>(slot)].load(std::memory_order_acquire);
      if (count != 0)
        counts[other_codes_[static_cast<size_t>(slot)].load(std::memory_order_acquire)] += count;
    }
  }
  return counts;
}

uint64_t AnswerCounters::total_latency_us() const {
  uint64_t total = 0;
  for (int i = 0; i < writers_; ++i)
    total += shards_[i].total_latency_us.load(std::memory_order_relaxed);
  return total;
}

uint64_t AnswerCounters::max_latency_us() const {
  uint64_t max = 0;
  for (int i = 0; i < writers_; ++i)
    max = std::max(max, shards_[i].max_latency_us.load(std::memory_order_relaxed));
  return max;
}

std::array<uint64_t, AnswerCounters::kLatencyBoundsUs.size() + 1> AnswerCounters::latency_buckets()
    const {
  std::array<uint64_t, kLatencyBoundsUs.size() + 1> counts{};
  for (int i = 0; i < writers_; ++i) {
    for (size_t b = 0; b < counts.size(); ++b)
      counts[b] += shards_[i].latency_buckets[b].load(std::memory_order_relaxed);
  }
  return counts;
}

}  // namespace percore::detail
