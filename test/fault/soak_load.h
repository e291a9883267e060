#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include "test/support/call_ledger.h"

namespace percore::testing {

using SoakClock = std::chrono::steady_clock;

// What a call of the soak asks for.
enum class CallKind : uint8_t {
  kEcho,       // 16-byte echo.
  kLargeEcho,  // 32 KiB echo: partial writes where socket buffers are small.
  kPrime,      // is_prime of a small number, on the servers' worker pools.
  kSlowPrime,  // is_prime that runs ~50 ms, with a 20 ms deadline: a handler
               // slower than its caller's deadline (the slow-handler fault).
};
const char* call_kind_name(CallKind kind);

// One call, as the ledger keeps it. Times are microseconds since the load
// began.
struct CallRecord {
  int64_t issued_us = 0;
  int64_t deadline_us = 0;  // issued_us + the call's timeout.
  int64_t ended_us = -1;    // -1: not ended (yet).
  int32_t code = -1;        // Controller::ErrorCode(); -2: wrong answer.
  int16_t server = -1;      // Index into the servers' addresses; -1: none.
  CallKind kind = CallKind::kEcho;
};

// An open-loop load at a fixed rate: call i is issued at start + i / rate
// whatever happened to the calls before it (a closed loop would slow down
// with the servers and hide their faults). Each call's end is recorded in a
// CallLedger (exactly once per id) and in its CallRecord.
//
// Owns: the issuing thread, the records. Threads: start/stop/records from
// one control thread; completions from the Channels' callback threads.
class SoakLoad {
 public:
  struct Options {
    double calls_per_second = 2000;
    // Issuing stops at finish(), or after this long at the latest (the
    // records for it are allocated up front).
    std::chrono::milliseconds max_duration{120000};
    int timeout_ms = 1000;  // Every call but kSlowPrime.
    int slow_prime_timeout_ms = 20;
    int max_retry = 2;  // echo and is_prime are idempotent.
    // "ADDRESS:PORT" of each server, to index CallRecord::server.
    std::vector<std::string> servers;
  };

  SoakLoad(Channel& echo_channel, Channel& prime_channel, Options options);
  ~SoakLoad();

  void start();
  // Slow primes are mixed in while this is on (the slow-handler fault).
  void set_slow_handlers(bool on) { slow_handlers_.store(on, std::memory_order_relaxed); }
  // Stops issuing, then waits until every issued call has ended, at most
  // `drain`. False if some call never ended.
  bool finish(std::chrono::milliseconds drain);

  int64_t now_us() const;
  SoakClock::time_point began() const { return began_; }
  size_t issued() const { return issued_.load(std::memory_order_acquire); }
  size_t ended() const { return ended_.load(std::memory_order_acquire); }
  const std::vector<CallRecord>& records() const { return records_; }
  const CallLedger& ledger() const { return ledger_; }

 private:
  struct Call;
  // Ended calls wait this long before their objects are reused: a second
  // end of a call (a bug) then lands on a live object and is counted.
  static constexpr std::chrono::seconds kQuarantine{10};
  void run();
  void issue(size_t id);
  void quarantine(Call* call);
  Call* take_call();

  Channel& echo_channel_;
  Channel& prime_channel_;
  const Options options_;
  const size_t capacity_;
  CallLedger ledger_;
  std::vector<CallRecord> records_;
  std::string large_text_;
  std::atomic<bool> slow_handlers_{false};
  std::atomic<bool> stop_{false};
  std::atomic<size_t> issued_{0};
  std::atomic<size_t> ended_{0};
  SoakClock::time_point began_;
  std::thread thread_;
  std::mutex quarantine_mutex_;
  std::deque<Call*> quarantine_;  // Oldest first.
};

}  // namespace percore::testing
