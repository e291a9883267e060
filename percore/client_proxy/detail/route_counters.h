#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include <percore/client_proxy/channel_stats.h>
#include <percore/proto/detail/error_code_counters.h>

namespace percore::detail {

// The counters and gauges of one Channel in one group (ChannelGroupStats,
// as relaxed atomics). Counters are added to by whichever thread sees the
// event; gauges are written by the send thread alone (its ConnectionPool
// keeps them right in transition()); any thread reads.
struct RouteCounters {
  using Counter = std::atomic<uint64_t>;
  using Gauge = std::atomic<int>;

  Counter calls_started{0};
  ErrorCodeCounters ends;  // By code; total() is calls_ended.
  Counter retries{0};
  Counter retries_refused_by_budget{0};
  Counter retries_refused_by_limit{0};
  Counter stale_replies{0};
  Counter malformed_responses{0};
  Counter connects{0};
  Counter connect_failures{0};
  Counter clean_closes{0};
  Counter connections_broken{0};
  Counter connections_dead{0};
  Counter probes_sent{0};
  Counter ejections{0};
  Counter readmissions{0};
  Gauge servers{0};
  Gauge servers_ejected{0};
  Gauge connections_ready{0};
  Gauge connections_connecting{0};
  Gauge connections_ejected{0};
  Gauge connections_closing{0};

  static void bump(Counter& counter) { counter.fetch_add(1, std::memory_order_relaxed); }
  // Send thread only (the single writer of gauges).
  static void move(Gauge& gauge, int delta) {
    gauge.store(gauge.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }

  ChannelGroupStats snapshot() const;
};

// ChannelStats of these groups, with their sum.
ChannelStats sum_group_stats(std::vector<ChannelGroupStats> groups);

}  // namespace percore::detail
