#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <vector>

#include <percore/base/detail/gate.h>
#include <percore/client_proxy/channel_options.h>
#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/channel_event_log.h>
#include <percore/client_proxy/detail/connection_pool.h>
#include <percore/client_proxy/detail/event_loop.h>
#include <percore/client_proxy/detail/loop_owned.h>
#include <percore/client_proxy/detail/retry_budget.h>
#include <percore/client_proxy/detail/route_counters.h>
#include <percore/proto/detail/assert.h>

namespace percore::detail {

// A Channel's presence in one thread group. Its options and the gate that
// counts its calls in this group are for any thread (one gate per group, so
// calls of different groups never touch the same counter); its connection pool and the calls
// waiting for one of its connections are the send thread's alone. The
// Channel makes one per group; the group's send thread adopts it
// (SendThread::add_route) and lets it go once the Channel is being destroyed
// and its connections are closed (SendThread::remove_route). The Channel
// frees it after that, and after its last call has ended.
//
// Threads: the immutable fields, `calls`, `closing`, `counters`: any;
// send_side():
// the send thread only (checked).
struct ChannelRoute {
  struct SendSide {
    explicit SendSide(const ChannelOptions& options)
        : budget(options.retry_budget_percent, options.retry_budget_min_per_second) {}
    // Null before adoption and after retirement.
    std::unique_ptr<ConnectionPool> pool;
    // Calls waiting for a connection of this Channel to be ready.
    std::vector<CallTable::Slot> waiting;
    // Set by remove_route: called once the pool is empty.
    std::function<void()> on_retired;
    // Sends again of this Channel's calls in this group (RetryPolicy).
    RetryBudget budget;
  };

  ChannelRoute(const ChannelOptions& channel_options, ChannelEventLog& channel_events,
               std::shared_ptr<const TlsContext> channel_tls_context = nullptr)
      : options(channel_options),
        events(channel_events),
        tls_context(std::move(channel_tls_context)),
        send_(options) {}
  ChannelRoute(const ChannelRoute&) = delete;
  ChannelRoute& operator=(const ChannelRoute&) = delete;

  const ChannelOptions options;  // Sanitized.
  ChannelEventLog& events;       // The Channel's; outlives the route.
  // ChannelOptions::tls, made once by Channel::Init (null: clear text).
  const std::shared_ptr<const TlsContext> tls_context;
  // This Channel's counters and gauges in this group (Channel::stats()).
  RouteCounters counters;
  // The Channel's calls in this group: entered when a call starts, left once
  // it has ended and its `done` has run.
  alignas(64) Gate calls;
  // Set when the Channel is being destroyed: new calls end at once with 125.
  std::atomic<bool> closing{false};

  SendSide& send_side(const EventLoop& send_loop) { return send_.get(send_loop); }

 private:
  LoopOwned<SendSide> send_;
};

}  // namespace percore::detail
