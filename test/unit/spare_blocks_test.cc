#include <percore/proto/detail/spare_blocks.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

namespace percore {
namespace {

constexpr size_t kMiB = 1 << 20;

class SpareBlocksTest : public testing::Test {
 protected:
  void SetUp() override { SpareBlocks::trim(); }
  void TearDown() override { SpareBlocks::trim(); }
};

TEST_F(SpareBlocksTest, ALargeBlockGivenBackIsTakenAgain) {
  ByteBlock block = SpareBlocks::take(kMiB);
  ASSERT_NE(block.data, nullptr);
  EXPECT_EQ(block.capacity, kMiB);
  std::memset(block.data.get(), 'x', kMiB);
  const char* bytes = block.data.get();
  SpareBlocks::give(std::move(block));
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
  EXPECT_EQ(SpareBlocks::kept_bytes(), kMiB);
  ByteBlock again = SpareBlocks::take(kMiB - 100);
  EXPECT_EQ(again.data.get(), bytes);
  EXPECT_EQ(again.capacity, kMiB);
  EXPECT_EQ(SpareBlocks::kept_blocks(), 0u);
}

TEST_F(SpareBlocksTest, TakesTheSmallestKeptBlockThatFits) {
  ByteBlock three = SpareBlocks::take(3 * kMiB);
  ByteBlock one = SpareBlocks::take(kMiB);
  ByteBlock two = SpareBlocks::take(2 * kMiB);
  SpareBlocks::give(std::move(three));
  SpareBlocks::give(std::move(one));
  SpareBlocks::give(std::move(two));
  EXPECT_EQ(SpareBlocks::take(kMiB + 1).capacity, 2 * kMiB);
  EXPECT_EQ(SpareBlocks::take(100 * 1024).capacity, kMiB);
  // None fits: a fresh block of exactly the size asked.
  EXPECT_EQ(SpareBlocks::take(4 * kMiB).capacity, 4 * kMiB);
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
}

TEST_F(SpareBlocksTest, SmallAndHugeBlocksAreNotKept) {
  SpareBlocks::give(SpareBlocks::take(SpareBlocks::kMinBlockBytes - 1));
  SpareBlocks::give(SpareBlocks::take(SpareBlocks::kMaxBytesPerThread + 1));
  EXPECT_EQ(SpareBlocks::kept_blocks(), 0u);
  // A small request never takes a kept block (the allocator serves it).
  SpareBlocks::give(SpareBlocks::take(kMiB));
  EXPECT_EQ(SpareBlocks::take(1000).capacity, 1000u);
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
}

TEST_F(SpareBlocksTest, KeptBlocksStayWithinTheBound) {
  // Taken all first: a block given back would be taken again.
  std::vector<ByteBlock> blocks;
  for (int i = 0; i < 3 * static_cast<int>(SpareBlocks::kMaxBlocks); ++i)
    blocks.push_back(SpareBlocks::take(SpareBlocks::kMinBlockBytes));
  ByteBlock larger = SpareBlocks::take(2 * kMiB);
  std::vector<ByteBlock> largest;
  for (int i = 0; i < 10; ++i)
    largest.push_back(SpareBlocks::take(3 * kMiB));
  for (ByteBlock& block : blocks)
    SpareBlocks::give(std::move(block));
  EXPECT_EQ(SpareBlocks::kept_blocks(), SpareBlocks::kMaxBlocks);
  // Full: a larger block replaces the smallest while the bytes fit...
  SpareBlocks::give(std::move(larger));
  EXPECT_EQ(SpareBlocks::kept_blocks(), SpareBlocks::kMaxBlocks);
  EXPECT_EQ(SpareBlocks::kept_bytes(), 7 * SpareBlocks::kMinBlockBytes + 2 * kMiB);
  // ...and never past kMaxBytesPerThread.
  for (ByteBlock& block : largest)
    SpareBlocks::give(std::move(block));
  EXPECT_LE(SpareBlocks::kept_blocks(), SpareBlocks::kMaxBlocks);
  EXPECT_LE(SpareBlocks::kept_bytes(), SpareBlocks::kMaxBytesPerThread);
}

TEST_F(SpareBlocksTest, EachThreadKeepsItsOwn) {
  SpareBlocks::give(SpareBlocks::take(kMiB));
  size_t seen_there = 99;
  size_t kept_there = 99;
  std::thread other([&] {
    seen_there = SpareBlocks::kept_blocks();
    SpareBlocks::give(SpareBlocks::take(2 * kMiB));
    kept_there = SpareBlocks::kept_blocks();
  });  // Its block is freed when it exits (the sanitizer builds check).
  other.join();
  EXPECT_EQ(seen_there, 0u);
  EXPECT_EQ(kept_there, 1u);
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
  EXPECT_EQ(SpareBlocks::kept_bytes(), kMiB);
}

TEST_F(SpareBlocksTest, AllThreadsTogetherKeepAtMostTheProcessBound) {
  const size_t before = SpareBlocks::kept_bytes_in_process();
  constexpr int kThreads = 12;  // 12 x 8 MiB would pass the process bound.
  std::vector<std::thread> threads;
  std::atomic<int> filled{0};
  std::atomic<bool> exit{false};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<ByteBlock> blocks;
      for (int i = 0; i < 4; ++i)
        blocks.push_back(SpareBlocks::take(2 * kMiB));
      for (ByteBlock& block : blocks)
        SpareBlocks::give(std::move(block));
      filled.fetch_add(1);
      while (!exit.load())
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (filled.load() < kThreads)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_LE(SpareBlocks::kept_bytes_in_process(), SpareBlocks::kMaxBytesPerProcess);
  EXPECT_GE(SpareBlocks::kept_bytes_in_process(),
            SpareBlocks::kMaxBytesPerProcess - 2 * kMiB - before);
  exit.store(true);
  for (std::thread& thread : threads)
    thread.join();
  // Exited threads freed their blocks and gave back their share.
  EXPECT_EQ(SpareBlocks::kept_bytes_in_process(), before);
}

TEST_F(SpareBlocksTest, ASharedBlockGoesBackWhenItsLastReferenceDrops) {
  char* data = nullptr;
  std::shared_ptr<const char[]> shared = SpareBlocks::take_shared(kMiB, &data);
  ASSERT_NE(data, nullptr);
  EXPECT_EQ(shared.get(), data);
  std::memset(data, 'y', kMiB);
  std::shared_ptr<const void> writer = shared;  // A connection buffer's reference.
  shared.reset();
  EXPECT_EQ(SpareBlocks::kept_blocks(), 0u);
  writer.reset();
  EXPECT_EQ(SpareBlocks::kept_blocks(), 1u);
  char* again = nullptr;
  shared = SpareBlocks::take_shared(kMiB, &again);
  EXPECT_EQ(again, data);
  // Dropped on another thread: the block joins that thread's spare blocks.
  std::thread other([moved = std::move(shared)]() mutable { moved.reset(); });
  other.join();
  EXPECT_EQ(SpareBlocks::kept_blocks(), 0u);
}

}  // namespace
}  // namespace percore
