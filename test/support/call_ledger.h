#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace percore::testing {

// Exactly-once bookkeeping for a load: one counter per call id. A test checks
// that every id ended exactly once: totals alone could hide one lost call
// plus one doubled call.
// Threads: any (atomic counters).
class CallLedger {
 public:
  explicit CallLedger(size_t calls) : size_(calls), ends_(new std::atomic<int>[calls]) {
    for (size_t i = 0; i < calls; ++i)
      ends_[i].store(0, std::memory_order_relaxed);
  }

  void record_end(size_t call_id) { ends_[call_id].fetch_add(1, std::memory_order_relaxed); }

  // How many times call `call_id` ended.
  int ends(size_t call_id) const { return ends_[call_id].load(std::memory_order_relaxed); }

  // How many of the first `calls` ended never, once, and more than once.
  struct Tally {
    size_t never = 0;
    size_t once = 0;
    size_t more_than_once = 0;
  };
  Tally tally(size_t calls = SIZE_MAX) const {
    Tally tally;
    for (size_t i = 0; i < std::min(calls, size_); ++i) {
      const int ends = ends_[i].load(std::memory_order_relaxed);
      ++(ends == 0 ? tally.never : ends == 1 ? tally.once : tally.more_than_once);
    }
    return tally;
  }

  // Empty if each of the first `calls` (default: all) ended exactly once;
  // else the first offenders.
  std::string violations(size_t calls = SIZE_MAX) const {
    std::string report;
    int listed = 0;
    for (size_t i = 0; i < std::min(calls, size_) && listed < 10; ++i) {
      const int ends = ends_[i].load(std::memory_order_relaxed);
      if (ends != 1) {
        report += "call " + std::to_string(i) + " ended " + std::to_string(ends) + " times; ";
        ++listed;
      }
    }
    return report;
  }

 private:
  size_t size_;
  std::unique_ptr<std::atomic<int>[]> ends_;
};

}  // namespace percore::testing
