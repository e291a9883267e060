#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <percore/proto/frame.h>

namespace percore {

// A snapshot of one method's counters (Server::stats()).
struct MethodStats {
  uint64_t calls = 0;  // Calls answered, whatever the outcome.
  // Answers by error code (0 = OK), only codes that occurred; application
  // codes (SetFailed(5000, ...)) by number, the first 16 distinct ones, later
  // ones together under kOtherErrorCodes (INT32_MIN).
  std::map<int32_t, uint64_t> answers_by_code;
  uint64_t total_latency_us = 0;  // Summed from request received to reply queued.
  uint64_t max_latency_us = 0;
  // kProcessPool methods: workers that died while running this method (its
  // call answered 2001), and workers killed for running past max_run_ms or
  // the call's deadline (answered 1008).
  uint64_t worker_crashes = 0;
  uint64_t worker_kills = 0;

  uint64_t errors() const;
  double average_latency_us() const;
};

// Why a connection closed.
enum class CloseReason {
  kPeerClosed,           // The peer's end of stream; every request read was answered.
  kConnectionError,      // A reset, or a failed read or write: answers owed are dropped.
  kRejectedFrame,        // A malformed or oversized frame (ServerStats::rejected_frames).
  kIdleTimeout,          // ServerOptions::idle_timeout_ms.
  kPartialFrameTimeout,  // ServerOptions::partial_frame_timeout_ms.
  kServerStopped,        // Server::Stop().
  kUnauthenticated,      // Its first request failed authentication (1004).
  kTlsFailed,            // Its TLS handshake failed (ServerStats::tls_handshake_failures).
  kClearTextRefused,     // Clear text to a server with tls_required.
};
inline constexpr int kCloseReasonCount = 9;
// A short name for logs and stats, e.g. "idle timeout".
const char* close_reason_name(CloseReason reason);

// A snapshot of a whole server's counters.
struct ServerStats {
  // Keyed by full method name, e.g. "example.EchoService.Echo".
  std::map<std::string, MethodStats> methods;
  // Answers by code over all methods, including requests that named no known
  // method (1001, 1002) and those turned away while stopping (2003).
  std::map<int32_t, uint64_t> answers_by_code;
  uint64_t connections_accepted = 0;
  uint64_t connections_closed = 0;
  // Connections open now (accepted and not yet closed).
  uint64_t connections_open = 0;
  // Connections accepted past ServerOptions::max_connections and closed at
  // once (not in connections_accepted).
  uint64_t connections_refused = 0;
  // Failed accept() calls (e.g. EMFILE: out of descriptors); the acceptor
  // retries every 10 ms.
  uint64_t accept_errors = 0;
  // Closed connections by reason (only reasons that occurred).
  std::map<CloseReason, uint64_t> closes_by_reason;
  // Closing connections reset at the end of their linger with answers still
  // unwritten (a peer that stopped reading), or reset by the peer while
  // answers were owed.
  uint64_t closes_without_flush = 0;
  // Connections that ended with part of a frame buffered (end of stream or
  // partial_frame_timeout_ms in the middle of a frame).
  uint64_t incomplete_frames = 0;
  // Times a connection stopped being read because its unwritten answers
  // passed max_unwritten_bytes_per_connection.
  uint64_t write_backpressure_pauses = 0;
  // Allocations that failed in an I/O thread (the connection being read is
  // closed; the server goes on).
  uint64_t allocation_failures = 0;
  // Streams (brpc's Streaming RPC) that handlers accepted and that are
  // connected, and stream frames for a stream this server does not know
  // (answered RST unless they were RST; a FEEDBACK, CLOSE or RST for one of
  // the connection's last 16 ended streams is expected and not counted).
  uint64_t streams_accepted = 0;
  uint64_t stream_frames_for_unknown_streams = 0;
  // Streams of kProcessPool handlers reset because the client wrote past
  // the worker's window (more than window + one message waiting for the
  // worker): the client ignored flow control, or the worker stopped reading.
  uint64_t stream_window_overruns = 0;
  // WebSockets that carry a stream (GET /ws/<package.Service>/<Method>):
  // handshakes completed, and of those, open now.
  uint64_t web_sockets_accepted = 0;
  uint64_t web_sockets_open = 0;
  // WebSockets closed for what the client sent: a frame RFC 6455 forbids
  // (1002, 1007), a message too large (1009; also in rejected_frames as
  // kBodyTooLarge) or not of its type (1007), one not finished in time
  // (1008).
  uint64_t web_socket_messages_rejected = 0;
  // Handlers that let an exception escape (each logged, rate-limited, with
  // its what()); the call is answered 2001 unless `done` had already run.
  uint64_t handler_exceptions = 0;
  // Requests and HTTP requests refused for their credential
  // (ServerOptions::authenticator): answered 1004 (HTTP 401), each logged
  // with the peer's address, rate-limited, never with the credential. The
  // requests read behind a refused one on its connection are answered 1004
  // too but not counted here.
  uint64_t authentication_failures = 0;
  // TLS (ServerOptions::tls): connections whose handshake completed; whose
  // handshake failed (a client that does not trust the server's certificate,
  // has no valid certificate for verify_client, or is not TLS at all), each
  // logged with the reason, rate-limited; clear-text connections refused by
  // tls_required.
  uint64_t tls_handshakes = 0;
  uint64_t tls_handshake_failures = 0;
  uint64_t clear_text_refused = 0;
  // Worker processes of kProcessPool methods: alive now (starting, idle or
  // busy); that died on their own (signal or exit, idle ones included) or
  // sent a malformed answer; that the server killed for max_run_ms or a
  // deadline; and replacements started.
  uint64_t worker_processes_alive = 0;
  uint64_t worker_process_crashes = 0;
  uint64_t worker_process_kills = 0;
  uint64_t worker_process_respawns = 0;
  // Connections closed because of a malformed frame, by reason.
  std::map<DecodeStatus, uint64_t> rejected_frames;
  uint64_t rejected_frames_total() const;
  // Replies that were ready but whose connection had already closed.
  uint64_t replies_dropped = 0;
};

}  // namespace percore
