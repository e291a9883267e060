#include <percore/server_io/detail/answer_counters.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <thread>
#include <vector>

#include <percore/proto/detail/error_code_counters.h>
#include <percore/proto/error_code.h>

namespace percore::detail {
namespace {

// Each I/O thread writes its own shard; a reader sees the sums, so no count
// is lost however many threads answer at once.
TEST(AnswerCountersTest, ShardsWrittenByTheirOwnThreadsSumToEveryAnswer) {
  constexpr int kWriters = 4;
  constexpr uint64_t kPerWriter = 100000;
  AnswerCounters counters(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&counters, w] {
      for (uint64_t i = 0; i < kPerWriter; ++i) {
        const int32_t code = i % 10 == 0 ? to_int(ErrorCode::kTimedOut) : 0;
        // Latency 50 µs, except one call per writer at 300 µs + w.
        counters.record(w, code, i == 7 ? 300 + static_cast<uint64_t>(w) : 50);
      }
      counters.record(w, 7000 + w, 20000);  // An application code per writer.
    });
  }
  // A reader meanwhile never sees more than was written.
  for (int i = 0; i < 100; ++i)
    EXPECT_LE(counters.calls(), kWriters * (kPerWriter + 1));
  for (std::thread& writer : writers)
    writer.join();

  EXPECT_EQ(counters.calls(), kWriters * (kPerWriter + 1));
  const std::map<int32_t, uint64_t> by_code = counters.answers_by_code();
  EXPECT_EQ(by_code.at(0), kWriters * kPerWriter * 9 / 10);
  EXPECT_EQ(by_code.at(to_int(ErrorCode::kTimedOut)), kWriters * kPerWriter / 10);
  for (int w = 0; w < kWriters; ++w)
    EXPECT_EQ(by_code.at(7000 + w), 1u) << w;
  EXPECT_EQ(counters.max_latency_us(), 20000u);
  uint64_t expected_total = 0;
  for (int w = 0; w < kWriters; ++w)
    expected_total += (kPerWriter - 1) * 50 + 300 + static_cast<uint64_t>(w) + 20000;
  EXPECT_EQ(counters.total_latency_us(), expected_total);
  const auto buckets = counters.latency_buckets();
  EXPECT_EQ(buckets[0], kWriters * (kPerWriter - 1));  // <= 100 µs
  EXPECT_EQ(buckets[2], uint64_t{kWriters});           // (250, 500] µs
  EXPECT_EQ(buckets[7], uint64_t{kWriters});           // (10, 25] ms
  uint64_t in_buckets = 0;
  for (const uint64_t count : buckets)
    in_buckets += count;
  EXPECT_EQ(in_buckets, counters.calls());
}

// A handler's own codes: the slots are shared by the shards, so a number is
// counted under itself, or under kOtherErrorCodes, whichever thread answered
// (per-shard slots once counted one number both ways).
TEST(AnswerCountersTest, ACodeOutsideTheEnumIsCountedTheSameWayByEveryShard) {
  AnswerCounters counters(2);
  const int slots = ErrorCodeCounters::kOtherCodeSlots;
  counters.record(1, 9999, 10);  // Shard 1 claims a slot for 9999.
  for (int i = 0; i < slots - 1; ++i)
    counters.record(0, 10000 + i, 10);  // Shard 0 fills the rest.
  counters.record(0, 20000, 10);        // No slot left: overflow, on either shard.
  counters.record(1, 20000, 10);
  counters.record(0, 9999, 10);  // The slot shard 1 claimed.
  const std::map<int32_t, uint64_t> by_code = counters.answers_by_code();
  EXPECT_EQ(by_code.at(9999), 2u);
  EXPECT_EQ(by_code.count(20000), 0u);
  EXPECT_EQ(by_code.at(kOtherErrorCodes), 2u);
  for (int i = 0; i < slots - 1; ++i)
    EXPECT_EQ(by_code.at(10000 + i), 1u) << i;
  EXPECT_EQ(by_code.size(), static_cast<size_t>(slots) + 1);  // Bounded by the slots.
  EXPECT_EQ(counters.calls(), static_cast<uint64_t>(slots) + 3);
}

TEST(AnswerCountersTest, AtLeastOneShard) {
  AnswerCounters counters(0);
  counters.record(0, 0, 1);
  EXPECT_EQ(counters.calls(), 1u);
  EXPECT_EQ(counters.max_latency_us(), 1u);
}

}  // namespace
}  // namespace percore::detail
