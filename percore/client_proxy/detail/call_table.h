#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace percore::detail {

// The calls in flight of one thread group, as a fixed table of slots. It
// decides two things lock-free: which slot a new call gets (a tagged Treiber
// stack of free slots; none left means the group is at its in-flight limit),
// and who completes a call (one compare-and-swap on the slot's state word:
// reply, timeout, connection failure and shutdown race for it, and exactly
// one wins).
//
// A correlation_id is (generation << 32) | slot index. The generation grows
// each time a slot is released, so a late or duplicate reply for an earlier
// call in the same slot no longer matches and cannot complete the new call.
//
// Owns: the state words and the free list; the per-slot call data lives
// beside it, indexed the same way (ThreadGroup). Threads: any.
class CallTable {
 public:
  enum class Phase : uint32_t {
    kFree = 0,        // In the free list.
    kReserved = 1,    // Acquired by a caller, being filled in.
    kPending = 2,     // Published: may be completed.
    kCompleting = 3,  // Won by a completer, until release().
  };

  struct Slot {
    uint32_t index;
    uint32_t generation;
  };

  explicit CallTable(uint32_t capacity);
  CallTable(const CallTable&) = delete;
  CallTable& operator=(const CallTable&) = delete;

  uint32_t capacity() const { return capacity_; }

  // A free slot, now kReserved; nullopt when all are in use. Any thread.
  std::optional<Slot> acquire();
  // kReserved -> kPending: from here on the call may be completed. The
  // caller's writes to the slot's data happen before any completer's reads.
  void publish(Slot slot);
  // kPending -> kCompleting if `slot` still names the call in that slot.
  // True for exactly one caller per published call.
  bool try_complete(Slot slot);
  // Whether `slot` names a call that is pending right now (a hint: it may be
  // completed the next moment).
  bool is_pending(Slot slot) const;
  // The call pending in slot `index` right now, if any (shutdown sweeps).
  std::optional<Slot> pending_at(uint32_t index) const;
  // kCompleting or kReserved -> kFree with the next generation; the slot goes
  // back to the free list. Exactly once per acquire().
  void release(Slot slot);

  // Calls acquired and not yet released.
  uint32_t in_use() const { return in_use_.load(std::memory_order_acquire); }

  static int64_t correlation_id(Slot slot) {
    return static_cast<int64_t>((static_cast<uint64_t>(slot.generation) << 32) | slot.index);
  }
  static Slot slot_of(int64_t correlation_id) {
    const auto bits = static_cast<uint64_t>(correlation_id);
    return Slot{static_cast<uint32_t>(bits), static_cast<uint32_t>(bits >> 32)};
  }

 private:
  static uint64_t state_word(uint32_t generation, Phase phase) {
    return (static_cast<uint64_t>(generation) << 32) | static_cast<uint32_t>(phase);
  }
  static constexpr uint32_t kNoSlot = 0xffffffffu;

  const uint32_t capacity_;
  std::unique_ptr<std::atomic<uint64_t>[]> states_;
  // Free list: head = (tag << 32) | index; the tag defeats ABA.
  std::atomic<uint64_t> free_head_;
  std::unique_ptr<std::atomic<uint32_t>[]> next_free_;
  std::atomic<uint32_t> in_use_{0};
};

}  // namespace percore::detail
