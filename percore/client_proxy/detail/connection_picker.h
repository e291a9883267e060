#pragma once

#include <cstddef>
#include <cstdint>

#include <percore/client_proxy/channel_options.h>

namespace percore::detail {

// What the balancer sees of a ready connection.
struct BalancerCandidate {
  uint64_t server_id;
  int outstanding;
};

// Picks a connection among the ready ones of a group.
// Power of two choices: two distinct random candidates, the one with fewer
// calls outstanding (a tie goes to the first). Round robin: the next one.
// `avoid_server` (0: none) is skipped unless it is the only choice.
// Candidates are read through `candidate_at(i)` so that outstanding counts are
// read fresh and only for the two looked at.
//
// Owns: its random state and round-robin cursor. Threads: the send thread.
class ConnectionPicker {
 public:
  ConnectionPicker(LoadBalancer policy, uint64_t seed) : policy_(policy), random_state_(seed | 1) {}

  // Index in [0, count), or -1 if count is 0.
  template <typename CandidateAt>
  int pick(size_t count, CandidateAt&& candidate_at, uint64_t avoid_server) {
    if (count == 0)
      return -1;
    size_t chosen = 0;
    if (count > 1) {
      if (policy_ == LoadBalancer::kRoundRobin) {
        chosen = round_robin_++ % count;
      } else {
        const size_t first = next_random() % count;
        size_t second = next_random() % (count - 1);
        if (second >= first)
          ++second;  // Distinct from the first.
        chosen =
            candidate_at(second).outstanding < candidate_at(first).outstanding ? second : first;
      }
    }
    if (avoid_server == 0 || candidate_at(chosen).server_id != avoid_server) {
      return static_cast<int>(chosen);
    }
    // Sent again: the first other server after the chosen one, if any.
    for (size_t step = 1; step < count; ++step) {
      const size_t index = (chosen + step) % count;
      if (candidate_at(index).server_id != avoid_server)
        return static_cast<int>(index);
    }
    return static_cast<int>(chosen);
  }

  uint64_t next_random() {
    // xorshift64*: fast, and good enough to spread choices and jitter.
    random_state_ ^= random_state_ >> 12;
    random_state_ ^= random_state_ << 25;
    random_state_ ^= random_state_ >> 27;
    return random_state_ * 0x2545F4914F6CDD1DULL;
  }

 private:
  LoadBalancer policy_;
  uint64_t random_state_;
  size_t round_robin_ = 0;
};

}  // namespace percore::detail
