#include <percore/proto/detail/gather_buffer.h>
#include "test/support/bytes.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace percore {
namespace {

using testing::flatten;

// A string long enough to be referenced rather than copied, with a pattern
// so that any misplaced byte shows.
std::string large_string(size_t size, char first = 'a') {
  std::string bytes(size, '\0');
  for (size_t i = 0; i < size; ++i)
    bytes[i] = static_cast<char>(first + i % 26);
  return bytes;
}

TEST(GatherBufferTest, StartsEmpty) {
  GatherBuffer buffer;
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.chunk_count(), 0u);
  iovec vecs[4];
  EXPECT_EQ(buffer.fill_iovecs(vecs, 4), 0);
}

TEST(GatherBufferTest, AppendSpaceReturnsWritableBytes) {
  GatherBuffer buffer;
  char* space = buffer.append_space(5);
  std::memcpy(space, "hello", 5);
  EXPECT_EQ(buffer.size(), 5u);
  EXPECT_FALSE(buffer.empty());
  EXPECT_EQ(flatten(buffer), "hello");
}

TEST(GatherBufferTest, AppendOfNothingAddsNothing) {
  GatherBuffer buffer;
  buffer.append_space(0);
  buffer.append_copy("");
  buffer.append_owned(std::string());
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.chunk_count(), 0u);
}

// Headers, metas and messages land in the arena back to back: one iovec.
TEST(GatherBufferTest, SmallPiecesShareOneChunk) {
  GatherBuffer buffer;
  std::memcpy(buffer.append_space(4), "PRPC", 4);
  buffer.append_copy("meta");
  buffer.append_owned(std::string("small attachment"));
  EXPECT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(buffer.size(), 24u);
  EXPECT_EQ(flatten(buffer), "PRPCmetasmall attachment");
}

TEST(GatherBufferTest, StringBelowThresholdIsCopied) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_owned(large_string(GatherBuffer::kCopyThreshold - 1));
  EXPECT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(flatten(buffer), "head" + large_string(GatherBuffer::kCopyThreshold - 1));
}

TEST(GatherBufferTest, LargeStringIsReferencedNotCopied) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  std::string attachment = large_string(GatherBuffer::kCopyThreshold);
  const std::string expected = attachment;
  // A moved std::string of this size hands over its heap block (moves are
  // constant time), so the chunk must point at the very same bytes.
  const char* heap_bytes = attachment.data();
  buffer.append_owned(std::move(attachment));
  buffer.append_copy("tail");

  ASSERT_EQ(buffer.chunk_count(), 3u);
  EXPECT_EQ(buffer.chunk(0), "head");
  EXPECT_EQ(buffer.chunk(1).data(), heap_bytes);
  EXPECT_EQ(buffer.chunk(1), expected);
  EXPECT_EQ(buffer.chunk(2), "tail");
  EXPECT_EQ(buffer.size(), 8 + expected.size());
}

TEST(GatherBufferTest, ReferencedStringsStayPutWhileMoreAreAdded) {
  GatherBuffer buffer;
  std::vector<const char*> heap_bytes;
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    std::string attachment = large_string(1000 + i, static_cast<char>('a' + i % 20));
    expected += "#";
    expected += attachment;
    heap_bytes.push_back(attachment.data());
    buffer.append_copy("#");
    buffer.append_owned(std::move(attachment));
  }
  ASSERT_EQ(buffer.chunk_count(), 100u);
  for (size_t i = 0; i < heap_bytes.size(); ++i) {
    EXPECT_EQ(buffer.chunk(2 * i + 1).data(), heap_bytes[i]) << i;
  }
  EXPECT_EQ(flatten(buffer), expected);
}

TEST(GatherBufferTest, FillIovecsDescribesTheChunks) {
  GatherBuffer buffer;
  const std::string attachment = large_string(2000);
  buffer.append_copy("head");
  buffer.append_owned(std::string(attachment));
  buffer.append_copy("tail");

  iovec vecs[8];
  ASSERT_EQ(buffer.fill_iovecs(vecs, 8), 3);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(vecs[i].iov_base, buffer.chunk(i).data());
    EXPECT_EQ(vecs[i].iov_len, buffer.chunk(i).size());
  }
  EXPECT_EQ(std::string(static_cast<char*>(vecs[1].iov_base), vecs[1].iov_len), attachment);
}

TEST(GatherBufferTest, FillIovecsStopsAtMaxVecs) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_owned(large_string(1000));
  buffer.append_copy("tail");

  iovec vecs[2];
  ASSERT_EQ(buffer.fill_iovecs(vecs, 2), 2);
  EXPECT_EQ(std::string(static_cast<char*>(vecs[0].iov_base), vecs[0].iov_len), "head");
  EXPECT_EQ(vecs[1].iov_len, 1000u);
  EXPECT_EQ(buffer.fill_iovecs(vecs, 0), 0);
}

TEST(GatherBufferTest, ConsumeWithinTheFirstChunk) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_owned(large_string(1000));
  buffer.consume(2);
  EXPECT_EQ(buffer.size(), 1002u);
  ASSERT_EQ(buffer.chunk_count(), 2u);
  EXPECT_EQ(buffer.chunk(0), "ad");
  iovec vecs[2];
  ASSERT_EQ(buffer.fill_iovecs(vecs, 2), 2);
  EXPECT_EQ(std::string(static_cast<char*>(vecs[0].iov_base), vecs[0].iov_len), "ad");
}

TEST(GatherBufferTest, ConsumeAcrossChunkBoundaries) {
  GatherBuffer buffer;
  const std::string attachment = large_string(1000);
  buffer.append_copy("head");
  buffer.append_owned(std::string(attachment));
  buffer.append_copy("tail");

  // All of "head" and 10 bytes into the attachment.
  buffer.consume(14);
  ASSERT_EQ(buffer.chunk_count(), 2u);
  EXPECT_EQ(buffer.chunk(0), attachment.substr(10));
  EXPECT_EQ(buffer.chunk(1), "tail");
  EXPECT_EQ(buffer.size(), 990u + 4u);

  // The rest of the attachment and one byte of "tail".
  buffer.consume(991);
  ASSERT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(buffer.chunk(0), "ail");

  buffer.consume(3);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.chunk_count(), 0u);
}

TEST(GatherBufferTest, ConsumeExactlyOneChunk) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_owned(large_string(600));
  buffer.consume(4);
  ASSERT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(buffer.chunk(0), large_string(600));
}

// What a writer does: write whatever the kernel takes, consume it, repeat.
TEST(GatherBufferTest, PartialWritesDeliverEveryByteInOrder) {
  GatherBuffer buffer;
  std::string expected;
  for (int i = 0; i < 20; ++i) {
    const std::string small = "frame" + std::to_string(i);
    std::string large = large_string(500 + 37 * i, static_cast<char>('A' + i));
    expected += small;
    expected += large;
    buffer.append_copy(small);
    buffer.append_owned(std::move(large));
  }

  std::string written;
  const size_t write_sizes[] = {1, 3, 511, 7, 4096, 2, 999};
  size_t round = 0;
  while (!buffer.empty()) {
    iovec vecs[3];
    const int count = buffer.fill_iovecs(vecs, 3);
    ASSERT_GT(count, 0);
    size_t budget = write_sizes[round++ % std::size(write_sizes)];
    size_t taken = 0;
    for (int i = 0; i < count && budget > 0; ++i) {
      const size_t bytes = std::min(budget, vecs[i].iov_len);
      written.append(static_cast<const char*>(vecs[i].iov_base), bytes);
      budget -= bytes;
      taken += bytes;
    }
    buffer.consume(taken);
  }
  EXPECT_EQ(written, expected);
}

TEST(GatherBufferTest, ClearDropsEverything) {
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_owned(large_string(1000));
  buffer.clear();
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.size(), 0u);
  EXPECT_EQ(buffer.chunk_count(), 0u);
}

TEST(GatherBufferTest, ReusableAfterClearAndAfterFullConsume) {
  GatherBuffer buffer;
  buffer.append_copy("first");
  buffer.append_owned(large_string(700));
  buffer.clear();

  buffer.append_copy("second");
  buffer.append_owned(large_string(800, 'b'));
  ASSERT_EQ(buffer.chunk_count(), 2u);
  EXPECT_EQ(flatten(buffer), "second" + large_string(800, 'b'));

  buffer.consume(buffer.size());
  EXPECT_TRUE(buffer.empty());
  buffer.append_copy("third");
  ASSERT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(buffer.chunk(0), "third");
  EXPECT_EQ(buffer.size(), 5u);
}

// Appending after a partial consume keeps the order of the bytes.
TEST(GatherBufferTest, AppendAfterPartialConsume) {
  GatherBuffer buffer;
  buffer.append_copy("abcdef");
  buffer.consume(2);
  buffer.append_copy("gh");
  EXPECT_EQ(flatten(buffer), "cdefgh");
  buffer.append_owned(large_string(600));
  buffer.consume(5);
  buffer.append_copy("ij");
  EXPECT_EQ(flatten(buffer), std::string("h").append(large_string(600)).append("ij"));
  EXPECT_EQ(buffer.size(), 603u);
}

// A backlog larger than one arena block grows by new blocks, not by copying
// the arena into one twice as large; every byte stays in order.
TEST(GatherBufferTest, LargeBacklogIsAChainOfBlocks) {
  SpareBlocks::trim();  // Blocks kept from earlier tests would be larger.
  GatherBuffer buffer;
  std::string expected;
  for (int i = 0; i < 80; ++i) {
    const std::string piece = large_string(60 * 1024, static_cast<char>('a' + i % 20));
    std::memcpy(buffer.append_space(piece.size()), piece.data(), piece.size());
    expected += piece;
  }
  EXPECT_EQ(buffer.size(), expected.size());
  EXPECT_GT(buffer.chunk_count(), 10u);
  for (size_t i = 0; i < buffer.chunk_count(); ++i)
    EXPECT_LE(buffer.chunk(i).size(), GatherBuffer::kArenaBlockBytes) << i;
  EXPECT_EQ(flatten(buffer), expected);
  // Consumed in odd pieces, across block boundaries.
  size_t consumed = 0;
  while (!buffer.empty()) {
    const size_t step = std::min<size_t>(buffer.size(), 100001);
    ASSERT_EQ(buffer.chunk(0), std::string_view(expected).substr(consumed, buffer.chunk(0).size()));
    buffer.consume(step);
    consumed += step;
  }
  EXPECT_EQ(consumed, expected.size());
  buffer.append_copy("reused");
  EXPECT_EQ(flatten(buffer), "reused");
}

TEST(GatherBufferTest, ALargeFrameReusesTheBlockOfThePreviousOne) {
  SpareBlocks::trim();
  GatherBuffer buffer;
  buffer.append_copy("small first");
  buffer.consume(buffer.size());
  const std::string answer = large_string(1 << 20);
  char* first = buffer.append_space(answer.size());
  std::memcpy(first, answer.data(), answer.size());
  EXPECT_EQ(flatten(buffer), answer);
  buffer.consume(buffer.size());
  // The 1 MiB block went to the thread's spare blocks, not to the kernel...
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
  // ...and the next large frame is written into it.
  char* second = buffer.append_space(answer.size());
  EXPECT_EQ(second, first);
  EXPECT_EQ(SpareBlocks::kept_blocks(), 0u);
  std::memcpy(second, answer.data(), answer.size());
  EXPECT_EQ(flatten(buffer), answer);
  buffer.clear();
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
  SpareBlocks::trim();
}

TEST(GatherBufferTest, BlocksOfABacklogGoToTheSpareBlocksWithinTheirBound) {
  SpareBlocks::trim();
  {
    GatherBuffer buffer;
    for (int i = 0; i < 40; ++i)
      std::memset(buffer.append_space(1 << 20), 'x', 1 << 20);
    EXPECT_EQ(buffer.size(), size_t{40} << 20);
  }  // Destroyed with its 40 blocks: at most the bound is kept.
  EXPECT_LE(SpareBlocks::kept_blocks(), SpareBlocks::kMaxBlocks);
  EXPECT_LE(SpareBlocks::kept_bytes(), SpareBlocks::kMaxBytesPerThread);
  EXPECT_GT(SpareBlocks::kept_blocks(), 0u);
  SpareBlocks::trim();
  EXPECT_EQ(SpareBlocks::kept_bytes(), 0u);
}

TEST(GatherBufferTest, SharedBytesAreReferencedWithTheirOwner) {
  auto owner = std::make_shared<std::string>(large_string(4096));
  const std::string_view tail = std::string_view(*owner).substr(1000);
  GatherBuffer buffer;
  buffer.append_copy("head");
  buffer.append_shared(owner, tail);
  EXPECT_EQ(owner.use_count(), 2);
  ASSERT_EQ(buffer.chunk_count(), 2u);
  EXPECT_EQ(buffer.chunk(1).data(), tail.data());
  GatherBuffer moved;
  moved.append_copy("before");
  moved.append(std::move(buffer));
  EXPECT_EQ(owner.use_count(), 2);  // The reference moved; nothing was copied.
  EXPECT_EQ(flatten(moved), "beforehead" + std::string(tail));
  moved.consume(moved.size());
  EXPECT_EQ(owner.use_count(), 1);
}

TEST(GatherBufferTest, MoveTransfersTheBytes) {
  GatherBuffer source;
  source.append_copy("head");
  std::string attachment = large_string(1000);
  const char* heap_bytes = attachment.data();
  source.append_owned(std::move(attachment));

  GatherBuffer target(std::move(source));
  ASSERT_EQ(target.chunk_count(), 2u);
  EXPECT_EQ(target.chunk(0), "head");
  EXPECT_EQ(target.chunk(1).data(), heap_bytes);
  EXPECT_EQ(target.size(), 1004u);
}

}  // namespace
}  // namespace percore
