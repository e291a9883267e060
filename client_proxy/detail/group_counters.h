#pragma once

#include <atomic>
#include <cstdint>

namespace percore::detail {

// Counters of one thread group (relaxed atomics; any thread reads them).
struct GroupCounters {
  std::atomic<uint64_t> calls_started{0};
  std::atomic<uint64_t> calls_completed{0};
  std::atomic<uint64_t> stale_replies{0};  // Late, duplicate or unknown ids.
  std::atomic<uint64_t> resends{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connection_failures{0};
  std::atomic<uint64_t> malformed_responses{0};
};

}  // namespace percore::detail
