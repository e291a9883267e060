#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <percore/server_io/detail/asio.h>
#include <percore/server_io/detail/server_socket.h>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <percore/server_io/detail/server_call.h>
#include <percore/server_io/server_stats.h>

namespace percore::detail {

class IoThread;
struct ServerCore;
struct MethodEntry;

// A connection that spoke HTTP/1.1 in its first bytes (ServerConnection
// hands it over): requests to `/<package.Service>/<Method>` with JSON (POST)
// or a query (GET) run the same handlers, on the same worker pool and under
// the same limits as baidu_std calls; `/health`, `/status` and `/metrics`
// are answered on the I/O thread (BuiltinPages). Requests are served one at
// a time, so pipelined requests are answered in order; keep-alive as the
// request asks. `GET /ws/<package.Service>/<Method>` with a WebSocket
// upgrade hands the socket and the parsed request to a WebSocketSession
// under the same id (kUpgraded: the connection lives on there, uncounted
// here).
//
// Its life moves forward only, through transition():
//
//   kReading ──► kCalling ──► kWriting ──► kReading (keep-alive)
//      │  a request      the handler     the answer   │
//      │  read           answered        written      └─► kLingering ──► kClosed
//      │                                                FIN sent; input   ▲
//      └── a read/write error, a reset, or the linger clock ─────────────┘
//   kCalling ──► kUpgraded (a WebSocket upgrade: the socket moved on)
//
// Limits: a request's header at most ServerOptions::max_http_header_bytes
// (431 past it), its body at most max_body_bytes (413), a POST without a
// length 411; any malformed request 400 and a close (what follows it cannot
// be framed). A request begun and not finished within
// partial_frame_timeout_ms gets 408 and a close; an idle connection closes
// after idle_timeout_ms. Memory per connection: one request and one answer.
//
// Owns: the socket, the read buffer and the answer being written. Kept alive
// by its I/O thread's table and by its pending operations.
// Threads: its I/O thread only (checked in every method).
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  using Clock = ServerCall::Clock;
  enum class State { kReading, kCalling, kWriting, kLingering, kClosed, kUpgraded };

  // `received` are the bytes ServerConnection read before it saw HTTP.
  HttpConnection(IoThread& io_thread, ServerCore& core, ServerSocket socket,
                 uint64_t id, std::string peer, std::string_view received);

  void start();
  uint64_t id() const { return id_; }
  bool closed() const { return state_ == State::kClosed || state_ == State::kUpgraded; }

  // The call this connection dispatched has finished: answers it.
  void answer_call(ServerCall& call);
  // Stop() answered the call on the handler's behalf.
  void answer_abandoned_call(MethodEntry* method, ServerCall::Clock::time_point received_at);
  // Stop: no further request is read; the one in flight is answered first.
  void begin_close(CloseReason reason);
  // Closes at once with a reset.
  void abort(CloseReason reason);
  // The I/O thread's sweep: idle, slow-request and linger timeouts.
  void check_timeouts(Clock::time_point now);

 private:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  using Response = boost::beast::http::response<boost::beast::http::string_body>;

  // Parses what is buffered; reads more if the request is not complete.
  void read_request();
  void on_read(const boost::system::error_code& error, size_t bytes);
  // A malformed or refused request: its status, then a close.
  void refuse(const boost::system::error_code& error);
  void handle_request(Request& request);
  // GET /ws/...: hands the connection to a WebSocketSession, or refuses.
  void upgrade_to_web_socket(Request& request);
  // Answers at once (built-in pages and refusals). `close` ends the
  // connection after it.
  void respond(unsigned status, std::string body, std::string_view content_type, bool close);
  void respond_error(int32_t code, std::string_view text, MethodEntry* method);
  // ServerOptions::authenticator, as soon as a request's header is in
  // (before its body is read, so a stranger cannot make the server hold a
  // body): whether `header` needs no credential (/health, open built-in
  // pages) or carries a valid "Authorization: Bearer <credential>" (RFC
  // 6750), filling auth_context_; when not, answers 401 with
  // WWW-Authenticate and closes.
  bool authenticate(const boost::beast::http::request_header<>& header);
  void on_written(const boost::system::error_code& error, size_t bytes);
  void linger();
  void transition(State next);

  IoThread& io_thread_;
  ServerCore& core_;
  bool close_notify_pending_ = false;  // Lingering over TLS: close_notify not sent yet.
  ServerSocket socket_;  // TLS or clear text, as ServerConnection found it.
  const uint64_t id_;
  const std::string peer_;

  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  bool header_checked_ = false;  // authenticate() ran on the parser's header.
  Response response_;
  State state_ = State::kReading;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  bool keep_alive_ = true;   // Of the request being served.
  // The request's AuthContext (null without an authenticator), and the
  // WWW-Authenticate challenge of a 401 being answered.
  std::shared_ptr<const AuthContext> auth_context_;
  std::string challenge_;
  bool head_only_ = false;   // A HEAD request: the answer has no body.
  unsigned version_ = 11;    // Of the request being served: 10 or 11.
  bool closing_ = false;     // Stop or a bad request: no request after this one.
  bool reading_ = false;     // An async read is outstanding.
  Clock::time_point last_activity_at_;
  // When the first byte of the request being read arrived (none yet: unset).
  std::optional<Clock::time_point> request_started_at_;
  Clock::time_point linger_deadline_;
  std::array<char, 4096> discard_{};
};

}  // namespace percore::detail
