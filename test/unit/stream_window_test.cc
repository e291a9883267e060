#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <percore/proto/detail/stream_end.h>
#include <percore/proto/detail/stream_window.h>

namespace percore {
namespace {

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();
constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();

TEST(StreamWriteWindowTest, UnlimitedAlwaysWritable) {
  StreamWriteWindow window(0);
  EXPECT_FALSE(window.limited());
  window.on_written(uint64_t{1} << 40);
  EXPECT_TRUE(window.can_write());
  EXPECT_EQ(window.unacknowledged(), uint64_t{1} << 40);
}

TEST(StreamWriteWindowTest, FullExactlyAtTheLimit) {
  StreamWriteWindow window(100);
  EXPECT_TRUE(window.limited());
  EXPECT_TRUE(window.can_write());
  window.on_written(99);
  EXPECT_TRUE(window.can_write());  // One byte of room left.
  window.on_written(1);
  EXPECT_EQ(window.unacknowledged(), 100u);
  EXPECT_FALSE(window.can_write());  // unacknowledged == limit: full.
}

// brpc accepts a message whenever the window is not full, whatever its size.
TEST(StreamWriteWindowTest, OneMessageMayOvershoot) {
  StreamWriteWindow window(100);
  window.on_written(99);
  ASSERT_TRUE(window.can_write());
  window.on_written(1000);
  EXPECT_EQ(window.unacknowledged(), 1099u);
  EXPECT_FALSE(window.can_write());
  // A message larger than the whole limit, on an empty window.
  StreamWriteWindow empty(100);
  ASSERT_TRUE(empty.can_write());
  empty.on_written(5000);
  EXPECT_FALSE(empty.can_write());
}

TEST(StreamWriteWindowTest, FeedbackReopensAndSaysWhen) {
  StreamWriteWindow window(100);
  window.on_written(150);
  ASSERT_FALSE(window.can_write());
  EXPECT_FALSE(window.on_feedback(50));  // 100 unacknowledged: still full.
  EXPECT_FALSE(window.can_write());
  EXPECT_EQ(window.acknowledged(), 50u);
  EXPECT_TRUE(window.on_feedback(51));  // 99: writable again, now.
  EXPECT_TRUE(window.can_write());
  EXPECT_FALSE(window.on_feedback(150));  // Was writable already: nothing to wake.
  EXPECT_EQ(window.unacknowledged(), 0u);
}

TEST(StreamWriteWindowTest, StaleAndRegressingFeedbackIgnored) {
  StreamWriteWindow window(100);
  window.on_written(300);
  EXPECT_TRUE(window.on_feedback(250));  // Full (300) to 50: writable again.
  EXPECT_EQ(window.acknowledged(), 250u);
  EXPECT_FALSE(window.on_feedback(250));  // Repeated.
  EXPECT_FALSE(window.on_feedback(10));   // Regressing (reordered, or a broken peer).
  EXPECT_FALSE(window.on_feedback(-1));   // Negative.
  EXPECT_FALSE(window.on_feedback(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(window.acknowledged(), 250u);
  EXPECT_EQ(window.unacknowledged(), 50u);
}

TEST(StreamWriteWindowTest, FeedbackPastWhatWasWrittenCountsAsAll) {
  StreamWriteWindow window(100);
  window.on_written(120);
  ASSERT_FALSE(window.can_write());
  EXPECT_TRUE(window.on_feedback(kMaxI64));
  EXPECT_EQ(window.acknowledged(), 120u);
  EXPECT_EQ(window.unacknowledged(), 0u);  // Not a wrapped-around huge number.
  window.on_written(100);
  EXPECT_FALSE(window.can_write());  // The excess was not banked.
}

TEST(StreamWriteWindowTest, SixtyFourBitSizes) {
  // A limit so large that acknowledged + limit would overflow.
  StreamWriteWindow window(kMaxU64);
  window.on_written(kMaxU64 - 1);
  EXPECT_TRUE(window.can_write());
  EXPECT_FALSE(window.on_feedback(kMaxI64));
  EXPECT_EQ(window.unacknowledged(), kMaxU64 - 1 - static_cast<uint64_t>(kMaxI64));
  EXPECT_TRUE(window.can_write());
  window.on_written(10);  // Saturates instead of wrapping to a small count.
  EXPECT_EQ(window.written(), kMaxU64);
  EXPECT_EQ(window.unacknowledged(), kMaxU64 - static_cast<uint64_t>(kMaxI64));
  EXPECT_TRUE(window.can_write());

  // Counts past 4 GiB with a small limit.
  StreamWriteWindow big(uint64_t{2} << 20);
  for (int i = 0; i < 5; ++i) {
    big.on_written(uint64_t{1} << 32);
    ASSERT_FALSE(big.can_write());
    ASSERT_TRUE(big.on_feedback(static_cast<int64_t>(big.written())));
  }
  EXPECT_EQ(big.written(), uint64_t{5} << 32);
  EXPECT_EQ(big.unacknowledged(), 0u);
}

TEST(StreamReadProgressTest, FeedbackDueAfterEachBatchWhenAsked) {
  StreamReadProgress progress(true);
  EXPECT_FALSE(progress.feedback_due());
  progress.on_consumed(0);  // A batch without data owes nothing.
  EXPECT_FALSE(progress.feedback_due());
  progress.on_consumed(5);
  ASSERT_TRUE(progress.feedback_due());
  EXPECT_EQ(progress.take_feedback(), 5);  // Cumulative, not a delta.
  EXPECT_FALSE(progress.feedback_due());
  progress.on_consumed(3);
  progress.on_consumed(4);  // Two batches before the owner got to send: one FEEDBACK.
  EXPECT_EQ(progress.take_feedback(), 12);
  EXPECT_EQ(progress.consumed(), 12u);
}

TEST(StreamReadProgressTest, NoFeedbackUnlessAsked) {
  StreamReadProgress progress(false);
  progress.on_consumed(100);
  EXPECT_FALSE(progress.feedback_due());
  EXPECT_EQ(progress.consumed(), 100u);
}

// A client learns need_feedback from the response; what it consumed before
// is owed at once, and only once.
TEST(StreamReadProgressTest, LearningThatFeedbackIsNeededLater) {
  StreamReadProgress progress;
  progress.set_peer_needs_feedback(true);
  EXPECT_FALSE(progress.feedback_due());  // Nothing consumed yet.
  StreamReadProgress early;
  early.on_consumed(7);
  EXPECT_FALSE(early.feedback_due());
  early.set_peer_needs_feedback(true);
  ASSERT_TRUE(early.feedback_due());
  EXPECT_EQ(early.take_feedback(), 7);
  early.set_peer_needs_feedback(true);  // Said again: nothing new owed.
  EXPECT_FALSE(early.feedback_due());
  early.on_consumed(1);
  early.set_peer_needs_feedback(false);
  EXPECT_FALSE(early.feedback_due());
}

TEST(StreamReadProgressTest, ConsumedSizeCappedAtTheWireMaximum) {
  StreamReadProgress progress(true);
  progress.on_consumed(kMaxU64 - 5);
  progress.on_consumed(100);  // Saturates.
  EXPECT_EQ(progress.consumed(), kMaxU64);
  EXPECT_EQ(progress.take_feedback(), kMaxI64);
}

TEST(StreamEndTest, EndsOnceAndKeepsTheFirstReason) {
  StreamEnd end;
  EXPECT_FALSE(end.ended());
  EXPECT_FALSE(end.reason().has_value());
  EXPECT_TRUE(end.end(StreamEndReason::kClosedByPeer));
  EXPECT_TRUE(end.ended());
  EXPECT_FALSE(end.end(StreamEndReason::kClosedByUs));
  EXPECT_FALSE(end.end(StreamEndReason::kConnectionBroken));
  EXPECT_FALSE(end.end(StreamEndReason::kClosedByPeer));
  ASSERT_TRUE(end.reason().has_value());
  EXPECT_EQ(*end.reason(), StreamEndReason::kClosedByPeer);
}

TEST(StreamEndTest, EveryReasonRoundTripsAndHasAName) {
  const StreamEndReason reasons[] = {
      StreamEndReason::kClosedByUs, StreamEndReason::kClosedByPeer, StreamEndReason::kResetByPeer,
      StreamEndReason::kConnectionBroken, StreamEndReason::kIdleTimeout};
  std::set<std::string_view> names;
  for (StreamEndReason reason : reasons) {
    StreamEnd end;
    ASSERT_TRUE(end.end(reason));
    EXPECT_EQ(end.reason(), reason);
    names.insert(stream_end_reason_name(reason));
  }
  EXPECT_EQ(names.size(), 5u);
  EXPECT_EQ(stream_end_reason_name(StreamEndReason::kResetByPeer), "reset_by_peer");
  EXPECT_EQ(stream_end_reason_name(StreamEndReason::kIdleTimeout), "idle_timeout");
  EXPECT_FALSE(names.contains("unknown"));
}

TEST(StreamEndTest, ExactlyOneWinnerAcrossThreads) {
  for (int round = 0; round < 50; ++round) {
    StreamEnd end;
    std::atomic<int> winners{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&, i] {
        if (end.end(i % 2 == 0 ? StreamEndReason::kClosedByUs : StreamEndReason::kResetByPeer))
          winners.fetch_add(1);
      });
    }
    for (std::thread& thread : threads)
      thread.join();
    EXPECT_EQ(winners.load(), 1);
    EXPECT_TRUE(end.ended());
  }
}

}  // namespace
}  // namespace percore
