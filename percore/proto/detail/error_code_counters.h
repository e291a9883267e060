#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

#include <percore/proto/error_code.h>

namespace percore {

// Counts outcomes by error code: one relaxed atomic per ErrorCode (in
// kAllErrorCodes order); numbers outside the enum (application codes a
// handler sets, or anything a peer answers) each get one of
// kOtherCodeSlots slots, taken by the first add of that number, and the
// numbers after the slots are full share one counter reported as
// kOtherErrorCodes (INT32_MIN), so a
// peer answering random codes cannot grow it. Writers of known codes pay one
// relaxed add; of other codes, a scan of the slots.
//
// Owns: its counters. Threads: any.
class ErrorCodeCounters {
 public:
  static constexpr int kOtherCodeSlots = 16;

  void add(int32_t code) {
    const int index = code == 0 ? 0 : error_code_index(code);
    if (index >= 0) [[likely]]
      by_code_[index].fetch_add(1, std::memory_order_relaxed);
    else
      add_other(code);
  }
  // Codes seen at least once -> count; numbers outside the enum past the
  // slots are reported under kOtherErrorCodes. Each counter is read once (a snapshot good
  // enough for stats).
  std::map<int32_t, uint64_t> snapshot() const;
  uint64_t total() const;

 private:
  void add_other(int32_t code);

  struct OtherCode {
    std::atomic<int32_t> code{0};  // 0: free (0 is kOk, never an "other" code).
    std::atomic<uint64_t> count{0};
  };

  // Known codes, then [kErrorCodeCount]: other codes past the slots.
  std::array<std::atomic<uint64_t>, kErrorCodeCount + 1> by_code_{};
  std::array<OtherCode, kOtherCodeSlots> other_codes_{};
};

}  // namespace percore
