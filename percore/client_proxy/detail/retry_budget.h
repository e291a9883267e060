#pragma once

#include <array>
#include <chrono>
#include <cstdint>

namespace percore::detail {

// A retry budget in the manner of Finagle's RetryBudget: over the last
// kWindowSeconds, sends again may number at most
//     min_per_second * kWindowSeconds + percent / 100 * calls
// so that a fault that fails every attempt costs a bounded share of extra
// requests (20% by default) instead of multiplying the load, while a quiet
// client still has a small floor of retries (10 a second by default).
// Calls and retries are counted in one-second buckets; buckets older than
// the window are forgotten as time moves on.
//
// Owns: its buckets. Threads: one (the send thread, through the route's
// send side; the class itself does not check).
class RetryBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kWindowSeconds = 10;

  // percent: 0..1000; min_per_second: 0..1000000 (clamped by the Channel).
  RetryBudget(int percent, int min_per_second)
      : percent_(percent), min_per_second_(min_per_second) {}

  // A call was made at `at` (its first send): deposits percent/100 of a
  // retry. Hot path: one compare and an add while `at` is in the current
  // second.
  void on_call(Clock::time_point at) {
    if (at < bucket_end_ && at >= bucket_start_) {
      ++buckets_[current_].calls;
      return;
    }
    roll_to(at);
    ++buckets_[current_].calls;
  }

  // Whether a send again is allowed now. It is counted by spend() once it
  // is queued on a connection (a send again that finds no server costs
  // nothing on the wire, and nothing here).
  bool has_room(Clock::time_point now) { return spent(now) < allowed(now); }
  void spend(Clock::time_point now) {
    roll_to(now);
    ++buckets_[current_].retries;
  }

  // The retries the window allows now, and those it has spent (for tests and
  // log lines).
  uint64_t allowed(Clock::time_point now);
  uint64_t spent(Clock::time_point now);

 private:
  struct Bucket {
    int64_t second = INT64_MIN;
    uint64_t calls = 0;
    uint64_t retries = 0;
  };

  static int64_t second_of(Clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
  }
  // Makes the bucket of `at`'s second current (a call made a little before
  // the current second, by a thread that took its clock earlier, counts in
  // the current bucket).
  void roll_to(Clock::time_point at);
  void sums(int64_t now_second, uint64_t& calls, uint64_t& retries) const;

  const int percent_;
  const int min_per_second_;
  std::array<Bucket, kWindowSeconds> buckets_{};
  size_t current_ = 0;
  Clock::time_point bucket_start_ = Clock::time_point::max();
  Clock::time_point bucket_end_ = Clock::time_point::min();
};

}  // namespace percore::detail
