#include <percore/client_proxy/detail/call_table.h>

#include <percore/proto/detail/assert.h>

namespace percore::detail {

CallTable::CallTable(uint32_t capacity)
    : capacity_(capacity),
      states_(new std::atomic<uint64_t>[capacity]),
      next_free_(new std::atomic<uint32_t>[capacity]) {
  PERCORE_ASSERT(capacity > 0 && capacity < kNoSlot);
  for (uint32_t i = 0; i < capacity; ++i) {
    states_[i].store(state_word(0, Phase::kFree), std::memory_order_relaxed);
    next_free_[i].store(i + 1 < capacity ? i + 1 : kNoSlot, std::memory_order_relaxed);
  }
  free_head_.store(0, std::memory_order_release);
}

std::optional<CallTable::Slot> CallTable::acquire() {
  uint64_t head = free_head_.load(std::memory_order_acquire);
  for (;;) {
    const auto index = static_cast<uint32_t>(head);
    if (index == kNoSlot)
      return std::nullopt;
    const uint32_t next = next_free_[index].load(std::memory_order_relaxed);
    const uint64_t tag = (head >> 32) + 1;
    if (free_head_.compare_exchange_weak(head, (tag << 32) | next, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
      in_use_.fetch_add(1, std::memory_order_relaxed);
      const uint64_t state = states_[index].load(std::memory_order_acquire);
      PERCORE_ASSERT(static_cast<Phase>(static_cast<uint32_t>(state)) == Phase::kFree);
      const auto generation = static_cast<uint32_t>(state >> 32);
      states_[index].store(state_word(generation, Phase::kReserved), std::memory_order_relaxed);
      return Slot{index, generation};
    }
  }
}

void CallTable::publish(Slot slot) {
  PERCORE_ASSERT(states_[slot.index].load(std::memory_order_relaxed) ==
                 state_word(slot.generation, Phase::kReserved));
  states_[slot.index].store(state_word(slot.generation, Phase::kPending),
                            std::memory_order_release);
}

bool CallTable::try_complete(Slot slot) {
  if (slot.index >= capacity_)
    return false;
  uint64_t expected = state_word(slot.generation, Phase::kPending);
  return states_[slot.index].compare_exchange_strong(
      expected, state_word(slot.generation, Phase::kCompleting), std::memory_order_acq_rel);
}

bool CallTable::is_pending(Slot slot) const {
  return slot.index < capacity_ && states_[slot.index].load(std::memory_order_acquire) ==
                                       state_word(slot.generation, Phase::kPending);
}

std::optional<CallTable::Slot> CallTable::pending_at(uint32_t index) const {
  const uint64_t state = states_[index].load(std::memory_order_acquire);
  if (static_cast<Phase>(static_cast<uint32_t>(state)) != Phase::kPending)
    return std::nullopt;
  return Slot{index, static_cast<uint32_t>(state >> 32)};
}

void CallTable::release(Slot slot) {
  const uint64_t state = states_[slot.index].load(std::memory_order_relaxed);
  PERCORE_ASSERT(state == state_word(slot.generation, Phase::kCompleting) ||
                 state == state_word(slot.generation, Phase::kReserved));
  (void)state;
  // The generation wraps at 2^32; by then no reply to the old call is alive.
  states_[slot.index].store(state_word(slot.generation + 1, Phase::kFree),
                            std::memory_order_release);
  in_use_.fetch_sub(1, std::memory_order_relaxed);
  uint64_t head = free_head_.load(std::memory_order_relaxed);
  for (;;) {
    next_free_[slot.index].store(static_cast<uint32_t>(head), std::memory_order_relaxed);
    const uint64_t tag = (head >> 32) + 1;
    if (free_head_.compare_exchange_weak(head, (tag << 32) | slot.index, std::memory_order_release,
                                         std::memory_order_relaxed)) {
      return;
    }
  }
}

}  // namespace percore::detail
