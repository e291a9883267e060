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
  shard.by_code.add_from_single_writer(code);
  add(shard.total_latency_us, latency_us);
  const size_t bucket = static_cast<size_t>(
      std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), latency_us) -
      kLatencyBoundsUs.begin());
  add(shard.latency_buckets[bucket], 1);
  if (latency_us > shard.max_latency_us.load(std::memory_order_relaxed))
    shard.max_latency_us.store(latency_us, std::memory_order_relaxed);
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
    for (const auto& [code, count] : shards_[i].by_code.snapshot())
      counts[code] += count;
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
