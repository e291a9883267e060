#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace percore {

// What one Channel did in one thread group (or, in ChannelStats::total, in
// all of them). Counters count since Init; gauges say how things are now.
// Read with Channel::stats() from any thread: each number is read once,
// with relaxed atomics, so a snapshot taken under load is consistent only
// number by number.
struct ChannelGroupStats {
  // --- calls (counters) ---
  uint64_t calls_started = 0;
  uint64_t calls_ended = 0;
  // How calls ended, by Controller::ErrorCode() (0: OK); codes outside
  // percore's enum (application codes) by number, the first 16 distinct
  // ones, later ones together under kOtherErrorCodes (INT32_MIN). Sums to
  // calls_ended.
  std::map<int32_t, uint64_t> ends_by_code;
  // Calls sent again (queued on a connection once more) after a broken
  // connection or a 2003 answer (README, "Retries"): each is one more
  // request on the wire.
  uint64_t retries = 0;
  // Sends again refused: by the retry budget, or by the call's own limit
  // (max_resends, max_retry); the call ended with its last error instead.
  uint64_t retries_refused_by_budget = 0;
  uint64_t retries_refused_by_limit = 0;
  // Replies that matched no pending call of the connection (late ones,
  // after a timeout), and frames from a server that were not valid replies.
  uint64_t stale_replies = 0;
  uint64_t malformed_responses = 0;

  // --- connections (counters) ---
  uint64_t connects = 0;          // Attempts started.
  uint64_t connect_failures = 0;  // Refused, unreachable or timed out.
  // Closed by the server with no call on them (idle close): not failures.
  uint64_t clean_closes = 0;
  // Broke with calls on them: reset, end of stream, read or write error,
  // malformed frame.
  uint64_t connections_broken = 0;
  // Found dead: calls outstanding and no byte from the server for
  // keepalive_time_ms, then no answer to a probe for keepalive_timeout_ms.
  uint64_t connections_dead = 0;
  uint64_t probes_sent = 0;  // Liveness and readmission health checks.

  // --- outlier detection ---
  uint64_t ejections = 0;
  uint64_t readmissions = 0;

  // --- gauges: now ---
  int servers = 0;          // In the current list (with subsetting: this group's).
  int servers_ejected = 0;  // Out of rotation by outlier detection.
  int connections_ready = 0;       // Taking calls.
  int connections_connecting = 0;
  int connections_ejected = 0;     // Open, but their server is ejected.
  int connections_closing = 0;     // Draining or being released.
};

// Channel::stats(): one entry per thread group of the Channel's runtime, and
// their sum.
struct ChannelStats {
  std::vector<ChannelGroupStats> groups;
  ChannelGroupStats total;

  // Several lines of "name value" text, for logs and command-line tools.
  std::string to_string() const;
};

}  // namespace percore
