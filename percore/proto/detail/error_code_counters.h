#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>

#include <percore/proto/error_code.h>

namespace percore {

// Counts outcomes by error code: one relaxed atomic per ErrorCode (in
// kAllErrorCodes order) plus one for numbers outside the enum (a peer may
// answer any code). Writers on hot paths pay one relaxed add.
//
// Owns: its counters. Threads: any.
class ErrorCodeCounters {
 public:
  void add(int32_t code) {
    const int index = code == 0 ? 0 : error_code_index(code);
    by_code_[index < 0 ? kErrorCodeCount : index].fetch_add(1, std::memory_order_relaxed);
  }
  // Codes seen at least once -> count; numbers outside the enum are reported
  // under -1. Each counter is read once (a snapshot good enough for stats).
  std::map<int32_t, uint64_t> snapshot() const;
  uint64_t total() const;

 private:
  std::array<std::atomic<uint64_t>, kErrorCodeCount + 1> by_code_{};
};

}  // namespace percore
