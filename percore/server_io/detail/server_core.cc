#include <percore/server_io/detail/server_core.h>

#include <algorithm>

#include <percore/server_io/detail/asio.h>
#include <percore/server_io/detail/process_pool.h>

#include <boost/asio/ssl/context.hpp>
#include <percore/server_io/detail/worker_pool.h>

namespace percore::detail {

ServerCore::ServerCore(ServerOptions server_options)
    : options(std::move(server_options)),
      services(options.io_threads),
      answers(options.io_threads) {
  for (int i = 0; i < options.io_threads; ++i)
    unanswered_calls_by_thread.push_back(std::make_unique<Gate>());
}

int64_t ServerCore::unanswered_calls() const {
  int64_t calls = 0;
  for (const auto& gate : unanswered_calls_by_thread)
    calls += gate->count();
  return calls;
}

ServerCore::~ServerCore() = default;

bool ServerCore::try_open_connection() {
  if (open_connections.try_enter_below(options.max_connections))
    return true;
  connections_refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ServerCore::count_rejected(DecodeStatus status) {
  const size_t index = static_cast<size_t>(status);
  if (index < rejected_frames.size()) {
    rejected_frames[index].fetch_add(1, std::memory_order_relaxed);
  }
}

void ServerCore::count_close(CloseReason reason) {
  connections_closed.fetch_add(1, std::memory_order_relaxed);
  closes_by_reason[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

std::chrono::milliseconds ServerCore::sweep_interval() const {
  int shortest = options.close_linger_ms;
  for (const int timeout : {options.idle_timeout_ms, options.partial_frame_timeout_ms}) {
    if (timeout > 0)
      shortest = std::min(shortest, timeout);
  }
  return std::chrono::milliseconds(std::clamp(shortest / 4, 10, 1000));
}

ServerStats snapshot_stats(const ServerCore& core) {
  ServerStats stats;
  core.services.for_each_method([&stats](const MethodEntry& entry) {
    MethodStats& method = stats.methods[entry.full_name];
    method.calls = entry.counters.calls();
    method.answers_by_code = entry.counters.answers_by_code();
    method.total_latency_us = entry.counters.total_latency_us();
    method.max_latency_us = entry.counters.max_latency_us();
    method.worker_crashes = entry.worker_crashes.load(std::memory_order_relaxed);
    method.worker_kills = entry.worker_kills.load(std::memory_order_relaxed);
  });
  stats.answers_by_code = core.answers.answers_by_code();
  stats.connections_accepted = core.connections_accepted.load(std::memory_order_relaxed);
  stats.connections_closed = core.connections_closed.load(std::memory_order_relaxed);
  stats.connections_open =
      static_cast<uint64_t>(std::max<int64_t>(0, core.open_connections.count()));
  stats.connections_refused = core.connections_refused.load(std::memory_order_relaxed);
  stats.accept_errors = core.accept_errors.load(std::memory_order_relaxed);
  stats.closes_without_flush = core.closes_without_flush.load(std::memory_order_relaxed);
  stats.incomplete_frames = core.incomplete_frames.load(std::memory_order_relaxed);
  stats.write_backpressure_pauses =
      core.write_backpressure_pauses.load(std::memory_order_relaxed);
  stats.allocation_failures = core.allocation_failures.load(std::memory_order_relaxed);
  stats.streams_accepted = core.streams_accepted.load(std::memory_order_relaxed);
  stats.stream_window_overruns = core.stream_window_overruns.load(std::memory_order_relaxed);
  stats.stream_frames_for_unknown_streams =
      core.stream_frames_for_unknown_streams.load(std::memory_order_relaxed);
  stats.web_sockets_accepted = core.web_sockets_accepted.load(std::memory_order_relaxed);
  stats.web_socket_messages_rejected =
      core.web_socket_messages_rejected.load(std::memory_order_relaxed);
  stats.web_sockets_open = static_cast<uint64_t>(
      std::max<int64_t>(0, core.web_sockets_open.load(std::memory_order_relaxed)));
  stats.handler_exceptions = core.handler_exceptions.load(std::memory_order_relaxed);
  stats.authentication_failures = core.authentication_failures.load(std::memory_order_relaxed);
  stats.tls_handshakes = core.tls_handshakes.load(std::memory_order_relaxed);
  stats.tls_handshake_failures = core.tls_handshake_failures.load(std::memory_order_relaxed);
  stats.clear_text_refused = core.clear_text_refused.load(std::memory_order_relaxed);
  if (core.processes != nullptr) {
    stats.worker_processes_alive = core.processes->workers_alive();
    stats.worker_process_crashes = core.processes->crashes();
    stats.worker_process_kills = core.processes->kills();
    stats.worker_process_respawns = core.processes->respawns();
  }
  for (int i = 0; i < kCloseReasonCount; ++i) {
    const uint64_t count = core.closes_by_reason[i].load(std::memory_order_relaxed);
    if (count > 0)
      stats.closes_by_reason[static_cast<CloseReason>(i)] = count;
  }
  stats.replies_dropped = core.replies_dropped.load(std::memory_order_relaxed);
  for (size_t i = 0; i < core.rejected_frames.size(); ++i) {
    const uint64_t count = core.rejected_frames[i].load(std::memory_order_relaxed);
    if (count > 0)
      stats.rejected_frames[static_cast<DecodeStatus>(i)] = count;
  }
  return stats;
}

}  // namespace percore::detail
