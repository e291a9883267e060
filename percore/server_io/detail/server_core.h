#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include <percore/base/detail/gate.h>
#include <percore/base/log.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/server_io/detail/answer_counters.h>
#include <percore/server_io/detail/service_table.h>
#include <percore/server_io/server.h>

namespace boost::asio::ssl {
class context;
}

namespace percore::detail {

class ProcessPool;
class WorkerPool;

// What every part of one server shares: options, the service table, the
// worker pool and the server-wide counters, flags and log limiters.
// Immutable after start except for the atomics and the limiters.
//
// Owns: the service table, the worker pool and the process pool. Threads: any, after start.
struct ServerCore {
  explicit ServerCore(ServerOptions server_options);
  ~ServerCore();

  // Counts a new connection unless max_connections are open; when refused,
  // counts that instead. Any thread.
  bool try_open_connection();
  void count_rejected(DecodeStatus status);
  void count_close(CloseReason reason);
  // How often each I/O thread checks its connections' timeouts: a quarter
  // of the shortest timeout in force, within [10 ms, 1 s].
  std::chrono::milliseconds sweep_interval() const;

  ServerOptions options;
  ServiceTable services;
  std::unique_ptr<WorkerPool> workers;
  // Null unless a method is kProcessPool.
  std::unique_ptr<ProcessPool> processes;

  // Set once Start() has started the I/O threads.
  std::atomic<bool> running{false};
  // Set once by Stop(): new requests are answered 2003.
  std::atomic<bool> stopping{false};
  // Calls dispatched to a handler and not yet answered, one gate per I/O
  // thread (entered and left on that thread, so no cache line is shared
  // across cores per call); Stop() waits on each for the grace period.
  std::vector<std::unique_ptr<Gate>> unanswered_calls_by_thread;
  // Their sum. Any thread.
  int64_t unanswered_calls() const;
  // Connections accepted (or added) and not yet closed; max_connections
  // applies to it, and Stop() waits on it for the connections to close.
  Gate open_connections;

  AnswerCounters answers;  // Every answer the server sent, by code.
  std::atomic<uint64_t> connections_accepted{0};
  std::atomic<uint64_t> connections_closed{0};
  std::atomic<uint64_t> connections_refused{0};
  std::atomic<uint64_t> accept_errors{0};
  std::atomic<uint64_t> replies_dropped{0};
  std::atomic<uint64_t> closes_without_flush{0};
  std::atomic<uint64_t> incomplete_frames{0};
  std::atomic<uint64_t> write_backpressure_pauses{0};
  std::atomic<uint64_t> allocation_failures{0};
  std::atomic<uint64_t> streams_accepted{0};
  std::atomic<uint64_t> stream_frames_for_unknown_streams{0};
  std::atomic<uint64_t> stream_window_overruns{0};
  std::atomic<uint64_t> web_sockets_accepted{0};
  std::atomic<int64_t> web_sockets_open{0};
  std::atomic<uint64_t> web_socket_messages_rejected{0};
  std::atomic<uint64_t> handler_exceptions{0};
  std::atomic<uint64_t> authentication_failures{0};
  std::atomic<uint64_t> tls_handshakes{0};
  std::atomic<uint64_t> tls_handshake_failures{0};
  std::atomic<uint64_t> clear_text_refused{0};
  // Made by Server::Start from options.tls; null without it. Shared by every
  // TLS connection (SSL_new from any I/O thread).
  std::unique_ptr<boost::asio::ssl::context> tls_context;
  // Indexed by DecodeStatus.
  std::array<std::atomic<uint64_t>, 16> rejected_frames{};
  // Indexed by CloseReason.
  std::array<std::atomic<uint64_t>, kCloseReasonCount> closes_by_reason{};

  // One line a second at most per kind of trouble a peer can cause at will.
  LogRateLimiter rejected_frame_log{3};
  LogRateLimiter accept_error_log{1};
  LogRateLimiter refused_connection_log{1};
  LogRateLimiter unflushed_close_log{1};
  LogRateLimiter bad_request_log{1};
  LogRateLimiter web_socket_log{1};
  LogRateLimiter allocation_failure_log{1};
  LogRateLimiter handler_exception_log{1};
  LogRateLimiter worker_process_log{3};
  LogRateLimiter authentication_log{3};
  LogRateLimiter tls_log{3};
};

// A snapshot of the server's counters (Server::stats(), /status, /metrics).
// Any thread.
ServerStats snapshot_stats(const ServerCore& core);

}  // namespace percore::detail
