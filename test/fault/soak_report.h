#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "test/fault/fault_schedule.h"
#include "test/fault/soak_load.h"

namespace percore::testing {

// Samples the resident set of the soak's processes twice a second.
// Owns: its sampling thread. Threads: start/stop/samples from the control
// thread; `pids` is called on the sampling thread and must be thread-safe.
class RssMonitor {
 public:
  struct Sample {
    int64_t at_us;
    std::string process;  // "client", "s1"...
    pid_t pid;            // A restarted server is a new process.
    long kib;
  };
  // `pids` names each process to sample now and its pid (-1: not running).
  RssMonitor(const SoakLoad& load, std::function<std::vector<std::pair<std::string, pid_t>>()> pids)
      : load_(load), pids_(std::move(pids)) {}
  ~RssMonitor() { stop(); }
  void start();
  void stop();
  std::vector<Sample> samples() const;

 private:
  const SoakLoad& load_;
  std::function<std::vector<std::pair<std::string, pid_t>>()> pids_;
  mutable std::mutex mutex_;
  std::vector<Sample> samples_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// What the soak promises, and the bounds it checks them against.
struct SoakBounds {
  int64_t deadline_overshoot_us = 100'000;  // A call ends by deadline + this.
  int64_t recovery_us = 5'000'000;          // After a fault ends.
  // Calls must all succeed for this long before the next episode, for the
  // recovery to count as done.
  int64_t clean_tail_us = 500'000;
  // A partitioned server gets no new calls after this (the client's
  // dead-connection detection: keepalive time + timeout + the sweep):
  // calls issued later all succeed, none slower than the next bound.
  int64_t dead_detection_us = 0;
  int64_t slow_call_after_detection_us = 250'000;
  // Growth of one process's RSS from its first sample to its last (a
  // restarted server is measured afresh).
  long client_rss_growth_kib = 64 * 1024;
  long server_rss_growth_kib = 32 * 1024;
  // What a call may end with under these faults: OK, a deadline, a broken
  // or dead connection, no server to take it, a server stopping. Anything
  // else (a wrong answer, 1003, 2001, 1011...) fails the run wherever it
  // happens; and before the first fault, every call succeeds.
  std::vector<int32_t> allowed_codes = {0, 1008, 1009, 112, 2003};
};

// Checks the ledger and records against the bounds, episode by episode.
// `summary` gets everything the report prints and docs/RELIABILITY.md
// quotes; the returned list holds each broken promise (empty: passed).
std::vector<std::string> analyse_soak(const SoakLoad& load, const std::vector<Episode>& episodes,
                                      const std::vector<RssMonitor::Sample>& rss,
                                      const std::vector<std::string>& servers,
                                      const SoakBounds& bounds, nlohmann::json* summary);

// The summary as a table, for the log.
std::string format_soak_summary(const nlohmann::json& summary);

}  // namespace percore::testing
