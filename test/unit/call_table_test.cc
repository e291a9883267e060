#include <percore/client_proxy/detail/call_table.h>

#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <thread>
#include <vector>

namespace percore {
namespace {

using detail::CallTable;

void expect_same_slot(CallTable::Slot actual, CallTable::Slot expected) {
  EXPECT_EQ(actual.index, expected.index);
  EXPECT_EQ(actual.generation, expected.generation);
}

// --- Acquire and release: the in-flight limit -------------------------------

TEST(CallTableTest, AcquireUntilFullThenNothing) {
  CallTable table(8);
  EXPECT_EQ(table.capacity(), 8u);
  EXPECT_EQ(table.in_use(), 0u);
  std::set<uint32_t> indices;
  for (uint32_t i = 0; i < 8; ++i) {
    const std::optional<CallTable::Slot> slot = table.acquire();
    ASSERT_TRUE(slot.has_value()) << "acquisition " << i;
    EXPECT_LT(slot->index, 8u);
    EXPECT_EQ(slot->generation, 0u);
    indices.insert(slot->index);
    EXPECT_EQ(table.in_use(), i + 1);
  }
  EXPECT_EQ(indices.size(), 8u) << "two acquisitions got the same slot";
  EXPECT_FALSE(table.acquire().has_value());
  EXPECT_FALSE(table.acquire().has_value());
  EXPECT_EQ(table.in_use(), 8u);
}

TEST(CallTableTest, ReleaseMakesExactlyOneSlotAvailableAgain) {
  CallTable table(4);
  std::vector<CallTable::Slot> slots;
  for (int i = 0; i < 4; ++i)
    slots.push_back(table.acquire().value());
  ASSERT_FALSE(table.acquire().has_value());

  // Released from kReserved (a call that failed before it was published).
  const CallTable::Slot released = slots[2];
  table.release(released);
  EXPECT_EQ(table.in_use(), 3u);

  const std::optional<CallTable::Slot> again = table.acquire();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->index, released.index);
  EXPECT_EQ(again->generation, released.generation + 1);
  EXPECT_EQ(table.in_use(), 4u);
  EXPECT_FALSE(table.acquire().has_value());
}

TEST(CallTableTest, InUseCountsAcquiredNotReleased) {
  CallTable table(16);
  std::vector<CallTable::Slot> slots;
  for (uint32_t i = 0; i < 10; ++i)
    slots.push_back(table.acquire().value());
  EXPECT_EQ(table.in_use(), 10u);
  // Released through both paths: completed, and never published.
  for (uint32_t i = 0; i < 10; ++i) {
    if (i % 2 == 0) {
      table.publish(slots[i]);
      ASSERT_TRUE(table.try_complete(slots[i]));
    }
    table.release(slots[i]);
    EXPECT_EQ(table.in_use(), 10u - i - 1);
  }
  // Everything is back: all 16 can be taken.
  for (int i = 0; i < 16; ++i)
    ASSERT_TRUE(table.acquire().has_value()) << i;
  EXPECT_FALSE(table.acquire().has_value());
  EXPECT_EQ(table.in_use(), 16u);
}

// --- correlation_id <-> slot -------------------------------------------------

TEST(CallTableTest, CorrelationIdRoundTrips) {
  const CallTable::Slot cases[] = {
      {0, 0},
      {0, 1},
      {1, 0},
      {0, 0xFFFFFFFFu},
      {0xFFFFFFFEu, 0},  // The largest index a table can have.
      {0xFFFFFFFEu, 0xFFFFFFFFu},
      {12345, 0x80000000u},
      {0x7FFFFFFFu, 0x7FFFFFFFu},
  };
  for (const CallTable::Slot slot : cases) {
    SCOPED_TRACE(::testing::Message() << "index " << slot.index << " generation " << slot.generation);
    const int64_t id = CallTable::correlation_id(slot);
    expect_same_slot(CallTable::slot_of(id), slot);
  }
}

TEST(CallTableTest, CorrelationIdLayoutIsGenerationHighIndexLow) {
  EXPECT_EQ(CallTable::correlation_id({0, 0}), 0);
  EXPECT_EQ(CallTable::correlation_id({5, 0}), 5);
  EXPECT_EQ(CallTable::correlation_id({0, 1}), int64_t{1} << 32);
  EXPECT_EQ(CallTable::correlation_id({7, 3}), (int64_t{3} << 32) | 7);
  // Generation 0xFFFFFFFF sets the sign bit: the id is negative on the wire
  // (int64 correlation_id) and must still come back intact.
  const int64_t id = CallTable::correlation_id(CallTable::Slot{0, 0xFFFFFFFFu});
  EXPECT_LT(id, 0);
  EXPECT_EQ(static_cast<uint64_t>(id), 0xFFFFFFFF00000000ull);
  const CallTable::Slot back = CallTable::slot_of(id);
  EXPECT_EQ(back.generation, 0xFFFFFFFFu);
  EXPECT_EQ(back.index, 0u);
}

TEST(CallTableTest, DistinctSlotsHaveDistinctCorrelationIds) {
  std::set<int64_t> ids;
  for (uint32_t index : {0u, 1u, 2u, 0xFFFFFFFEu}) {
    for (uint32_t generation : {0u, 1u, 2u, 0xFFFFFFFFu})
      ids.insert(CallTable::correlation_id({index, generation}));
  }
  EXPECT_EQ(ids.size(), 16u);
}

// --- Generations -------------------------------------------------------------

TEST(CallTableTest, GenerationGrowsByOnePerCycle) {
  CallTable table(1);
  for (uint32_t cycle = 0; cycle < 5000; ++cycle) {
    const std::optional<CallTable::Slot> slot = table.acquire();
    ASSERT_TRUE(slot.has_value()) << "cycle " << cycle;
    ASSERT_EQ(slot->index, 0u);
    ASSERT_EQ(slot->generation, cycle);
    ASSERT_FALSE(table.acquire().has_value()) << "cycle " << cycle;
    // Alternate the two ways a slot is let go of.
    if (cycle % 3 != 0) {
      table.publish(*slot);
      ASSERT_TRUE(table.try_complete(*slot));
    }
    table.release(*slot);
    ASSERT_EQ(table.in_use(), 0u);
  }
}

TEST(CallTableTest, SlotRecoveredFromCorrelationIdCompletesTheCall) {
  CallTable table(1);
  // Move a few generations on, so that the generation is not trivially 0.
  for (int i = 0; i < 3; ++i)
    table.release(table.acquire().value());
  const CallTable::Slot slot = table.acquire().value();
  ASSERT_EQ(slot.generation, 3u);
  table.publish(slot);
  // What the receive thread does with the correlation_id of a reply.
  const CallTable::Slot from_reply = CallTable::slot_of(CallTable::correlation_id(slot));
  EXPECT_TRUE(table.is_pending(from_reply));
  EXPECT_TRUE(table.try_complete(from_reply));
  EXPECT_FALSE(table.is_pending(slot));
  table.release(slot);
}

// The table cannot be cycled 2^32 times in a test; a Slot with the highest
// generation must at least never match a call of another generation, and its
// high bit must not be lost on the way through a correlation_id.
TEST(CallTableTest, HighestGenerationNeverMatchesAnotherCall) {
  CallTable table(1);
  const CallTable::Slot slot = table.acquire().value();
  ASSERT_EQ(slot.generation, 0u);
  table.publish(slot);
  const CallTable::Slot highest =
      CallTable::slot_of(CallTable::correlation_id(CallTable::Slot{0, 0xFFFFFFFFu}));
  EXPECT_EQ(highest.generation, 0xFFFFFFFFu);
  EXPECT_FALSE(table.is_pending(highest));
  EXPECT_FALSE(table.try_complete(highest));
  EXPECT_FALSE(table.try_complete(CallTable::Slot{0, 1}));
  // The real call is untouched.
  EXPECT_TRUE(table.is_pending(slot));
  EXPECT_TRUE(table.try_complete(slot));
  table.release(slot);
}

TEST(CallTableTest, IndexOutOfRangeIsNeitherPendingNorCompletable) {
  CallTable table(2);
  const CallTable::Slot slot = table.acquire().value();
  table.publish(slot);
  // A reply whose correlation_id names no slot of this table (garbage from
  // the peer) must not be looked up out of bounds.
  for (uint32_t index : {2u, 3u, 1000u, 0xFFFFFFFEu, 0xFFFFFFFFu}) {
    EXPECT_FALSE(table.is_pending(CallTable::Slot{index, slot.generation})) << index;
    EXPECT_FALSE(table.try_complete(CallTable::Slot{index, slot.generation})) << index;
  }
  EXPECT_TRUE(table.try_complete(slot));
  table.release(slot);
}

// --- Completion --------------------------------------------------------------

TEST(CallTableTest, StaleCompletionIsIgnored) {
  CallTable table(1);
  const CallTable::Slot old_call = table.acquire().value();
  table.publish(old_call);
  ASSERT_TRUE(table.try_complete(old_call));  // Say, a timeout.
  table.release(old_call);

  const CallTable::Slot new_call = table.acquire().value();
  ASSERT_EQ(new_call.index, old_call.index);
  ASSERT_EQ(new_call.generation, old_call.generation + 1);
  table.publish(new_call);

  // The late reply to the old call arrives now.
  const CallTable::Slot late_reply = CallTable::slot_of(CallTable::correlation_id(old_call));
  EXPECT_FALSE(table.is_pending(late_reply));
  EXPECT_FALSE(table.try_complete(late_reply));
  EXPECT_TRUE(table.is_pending(new_call));
  const std::optional<CallTable::Slot> pending = table.pending_at(new_call.index);
  ASSERT_TRUE(pending.has_value());
  expect_same_slot(*pending, new_call);

  EXPECT_TRUE(table.try_complete(new_call));
  table.release(new_call);
}

TEST(CallTableTest, StaleCompletionOfAReservedSlotIsIgnored) {
  CallTable table(1);
  const CallTable::Slot old_call = table.acquire().value();
  table.publish(old_call);
  ASSERT_TRUE(table.try_complete(old_call));
  table.release(old_call);
  // The new call is acquired but not yet published: nothing may complete it,
  // not even with the right generation, and certainly not with the old one.
  const CallTable::Slot new_call = table.acquire().value();
  EXPECT_FALSE(table.try_complete(old_call));
  EXPECT_FALSE(table.try_complete(new_call));
  table.publish(new_call);
  EXPECT_TRUE(table.try_complete(new_call));
  table.release(new_call);
}

TEST(CallTableTest, TryCompleteSucceedsExactlyOncePerPublish) {
  CallTable table(4);
  for (int round = 0; round < 10; ++round) {
    const CallTable::Slot slot = table.acquire().value();
    table.publish(slot);
    EXPECT_TRUE(table.is_pending(slot));
    EXPECT_TRUE(table.try_complete(slot)) << "round " << round;
    EXPECT_FALSE(table.is_pending(slot));
    EXPECT_FALSE(table.try_complete(slot)) << "round " << round;
    EXPECT_FALSE(table.try_complete(slot)) << "round " << round;
    table.release(slot);
    // Released: the old name completes nothing.
    EXPECT_FALSE(table.try_complete(slot)) << "round " << round;
  }
}

TEST(CallTableTest, TryCompleteBeforePublishFails) {
  CallTable table(2);
  const CallTable::Slot slot = table.acquire().value();
  EXPECT_FALSE(table.is_pending(slot));
  EXPECT_FALSE(table.try_complete(slot));
  EXPECT_FALSE(table.pending_at(slot.index).has_value());
  // The failed attempt left it reserved: publishing still works.
  table.publish(slot);
  EXPECT_TRUE(table.try_complete(slot));
  table.release(slot);
}

TEST(CallTableTest, FreeSlotIsNeitherPendingNorCompletable) {
  CallTable table(3);
  for (uint32_t index = 0; index < 3; ++index) {
    EXPECT_FALSE(table.pending_at(index).has_value()) << index;
    EXPECT_FALSE(table.is_pending(CallTable::Slot{index, 0})) << index;
    EXPECT_FALSE(table.try_complete(CallTable::Slot{index, 0})) << index;
  }
  // The failed completions did not disturb the free list.
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(table.acquire().has_value());
  EXPECT_FALSE(table.acquire().has_value());
}

TEST(CallTableTest, PendingAtReportsOnlyThePendingSlotWithItsGeneration) {
  CallTable table(4);
  // Give slot generations that differ from 0.
  for (int i = 0; i < 5; ++i) {
    const CallTable::Slot slot = table.acquire().value();
    table.release(slot);
  }
  const CallTable::Slot reserved = table.acquire().value();
  const CallTable::Slot pending = table.acquire().value();
  const CallTable::Slot completing = table.acquire().value();
  table.publish(pending);
  table.publish(completing);
  ASSERT_TRUE(table.try_complete(completing));

  uint32_t found = 0;
  for (uint32_t index = 0; index < table.capacity(); ++index) {
    const std::optional<CallTable::Slot> at = table.pending_at(index);
    if (index == pending.index) {
      ASSERT_TRUE(at.has_value());
      expect_same_slot(*at, pending);
      ++found;
    } else {
      EXPECT_FALSE(at.has_value()) << "index " << index;
    }
  }
  EXPECT_EQ(found, 1u);

  // A shutdown sweep completes what pending_at reports.
  ASSERT_TRUE(table.try_complete(*table.pending_at(pending.index)));
  EXPECT_FALSE(table.pending_at(pending.index).has_value());

  table.release(reserved);
  table.release(pending);
  table.release(completing);
  EXPECT_EQ(table.in_use(), 0u);
}

// --- Races -------------------------------------------------------------------

// Reply, timeout, connection failure and shutdown race for one call: exactly
// one wins, every time. The completers are already trying when the call is
// published, so they all hit it at once (the publisher joins in every other
// round); the winner must also see what the
// caller wrote before publishing (only publish/try_complete order those
// writes, which ThreadSanitizer checks).
TEST(CallTableTest, ConcurrentCompletersHaveExactlyOneWinner) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 2000;
  CallTable table(1);
  CallTable::Slot current{0, 0};
  int call_data = -1;  // Plain memory, as a call's data beside the table is.
  std::atomic<int> winners{0};
  std::atomic<bool> completed{false};
  std::atomic<bool> stop{false};
  std::atomic<int> data_mismatches{0};
  std::barrier start(kThreads + 1);
  std::barrier finish(kThreads + 1);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int round = 0;; ++round) {
        start.arrive_and_wait();
        if (stop.load(std::memory_order_relaxed))
          return;
        const CallTable::Slot slot = current;  // Written before `start`.
        // Bounded, should nobody ever win.
        const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        for (int attempt = 0;; ++attempt) {
          if (table.try_complete(slot)) {
            winners.fetch_add(1, std::memory_order_relaxed);
            if (call_data != round)
              data_mismatches.fetch_add(1, std::memory_order_relaxed);
            completed.store(true, std::memory_order_release);
            break;
          }
          if (completed.load(std::memory_order_acquire))
            break;
          if (attempt % 64 == 63) {
            std::this_thread::yield();  // Let the publisher run on few cores.
            if (std::chrono::steady_clock::now() > give_up)
              break;
          }
        }
        finish.arrive_and_wait();
      }
    });
  }

  int rounds_with_one_winner = 0;
  for (int round = 0; round < kRounds; ++round) {
    const std::optional<CallTable::Slot> slot = table.acquire();
    if (!slot) {
      ADD_FAILURE() << "round " << round << ": the slot was not released";
      break;
    }
    current = *slot;
    winners.store(0, std::memory_order_relaxed);
    completed.store(false, std::memory_order_relaxed);
    start.arrive_and_wait();
    call_data = round;  // After `start`: ordered for the winner by publish() alone.
    table.publish(*slot);
    // Every other round the publisher races too (a sweep at shutdown): on a
    // machine with few cores it is the one completer sure to be running.
    if (round % 2 == 1 && table.try_complete(*slot)) {
      winners.fetch_add(1, std::memory_order_relaxed);
      completed.store(true, std::memory_order_release);
    }
    finish.arrive_and_wait();
    const int round_winners = winners.load(std::memory_order_relaxed);
    if (round_winners != 1) {
      ADD_FAILURE() << "round " << round << ": " << round_winners << " winners";
      break;
    }
    ++rounds_with_one_winner;
    EXPECT_FALSE(table.is_pending(*slot));
    table.release(*slot);
  }
  stop.store(true, std::memory_order_relaxed);
  start.arrive_and_wait();
  for (std::thread& thread : threads)
    thread.join();
  EXPECT_EQ(rounds_with_one_winner, kRounds);
  EXPECT_EQ(data_mismatches.load(), 0);
}

// Threads acquire, publish, complete and release concurrently on a small
// table, holding one to three calls at a time and letting them go in varying
// order (which is what exposes ABA in a free list). No slot may ever be held
// by two at once, generations must advance by one per cycle, and at the end
// every slot must be in the free list exactly once.
TEST(CallTableTest, ConcurrentAcquireReleaseKeepsTheFreeListConsistent) {
  constexpr uint32_t kCapacity = 64;
  constexpr int kThreads = 4;
  constexpr int kCyclesPerThread = 100000;
  CallTable table(kCapacity);
  std::atomic<int> owners[kCapacity] = {};
  std::atomic<uint32_t> next_generation[kCapacity] = {};
  std::atomic<int> double_owned{0};
  std::atomic<int> wrong_generation{0};
  std::atomic<int> failed_acquire{0};
  std::atomic<int> failed_complete{0};

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int me = t + 1;
      uint32_t random = 2654435761u * static_cast<uint32_t>(me);
      CallTable::Slot held[3];
      int cycles = 0;
      while (cycles < kCyclesPerThread) {
        random = random * 1103515245u + 12345u;
        const int batch = 1 + static_cast<int>((random >> 16) % 3);
        int count = 0;
        for (; count < batch; ++count) {
          const std::optional<CallTable::Slot> slot = table.acquire();
          if (!slot) {
            // At most 4 * 3 = 12 of 64 are ever held.
            failed_acquire.fetch_add(1, std::memory_order_relaxed);
            break;
          }
          if (owners[slot->index].exchange(me, std::memory_order_acq_rel) != 0)
            double_owned.fetch_add(1, std::memory_order_relaxed);
          if (next_generation[slot->index].load(std::memory_order_relaxed) != slot->generation)
            wrong_generation.fetch_add(1, std::memory_order_relaxed);
          table.publish(*slot);
          held[count] = *slot;
        }
        for (int i = 0; i < count; ++i) {
          // Complete and release in an order that varies with `random`.
          const CallTable::Slot slot = held[(i + (random >> 20)) % count];
          if (!table.try_complete(slot))
            failed_complete.fetch_add(1, std::memory_order_relaxed);
          next_generation[slot.index].store(slot.generation + 1, std::memory_order_relaxed);
          if (owners[slot.index].exchange(0, std::memory_order_acq_rel) != me)
            double_owned.fetch_add(1, std::memory_order_relaxed);
          table.release(slot);
          ++cycles;
        }
        if (count == 0) {
          if (failed_acquire.load(std::memory_order_relaxed) > 1000)
            return;  // Broken beyond repair; reported below.
          std::this_thread::yield();
        }
      }
    });
  }
  for (std::thread& thread : threads)
    thread.join();

  EXPECT_EQ(double_owned.load(), 0);
  EXPECT_EQ(wrong_generation.load(), 0);
  EXPECT_EQ(failed_acquire.load(), 0);
  EXPECT_EQ(failed_complete.load(), 0);
  EXPECT_EQ(table.in_use(), 0u);

  // Every slot is free exactly once: capacity acquisitions, all distinct, each
  // with the generation its last release gave it; then none.
  std::set<uint32_t> indices;
  for (uint32_t i = 0; i < kCapacity; ++i) {
    const std::optional<CallTable::Slot> slot = table.acquire();
    ASSERT_TRUE(slot.has_value()) << "acquisition " << i;
    EXPECT_TRUE(indices.insert(slot->index).second) << "index " << slot->index << " twice";
    EXPECT_EQ(slot->generation, next_generation[slot->index].load()) << "index " << slot->index;
  }
  EXPECT_FALSE(table.acquire().has_value());
  EXPECT_EQ(table.in_use(), kCapacity);
}

}  // namespace
}  // namespace percore
