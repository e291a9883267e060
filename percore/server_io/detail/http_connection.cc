#include <percore/server_io/detail/http_connection.h>

#include <algorithm>
#include <cstring>
#include <iterator>
#include <string_view>
#include <utility>

#include <percore/base/log.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/error_code.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/server_io/detail/builtin_pages.h>
#include <percore/server_io/detail/http_mapping.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/service_table.h>
#include <percore/server_io/detail/web_socket_session.h>

namespace percore::detail {
namespace {

namespace http = boost::beast::http;

constexpr size_t kReadBytes = 16 * 1024;
constexpr std::string_view kJson = "application/json";

// X-Timeout-Ms / X-Log-Id: a non-negative decimal, else nullopt.
std::optional<int64_t> header_number(std::string_view value) {
  if (value.empty() || value.size() > 18)
    return std::nullopt;
  int64_t number = 0;
  for (const char c : value) {
    if (c < '0' || c > '9')
      return std::nullopt;
    number = number * 10 + (c - '0');
  }
  return number;
}

// The path of a request target, without its query: the origin form as it is,
// the absolute form (RFC 9112 3.2.2, which a server must accept; its scheme
// in any case) from its first slash after the authority.
std::string_view path_of(std::string_view target) {
  if (target.size() >= 7 && boost::beast::iequals(boost::beast::string_view(target.data(), 7),
                                                  boost::beast::string_view("http://", 7))) {
    const size_t path = target.find('/', 7);
    target = path == std::string_view::npos ? std::string_view("/") : target.substr(path);
  }
  return target.substr(0, target.find('?'));
}

}  // namespace

HttpConnection::HttpConnection(IoThread& io_thread, ServerCore& core, ServerSocket socket,
                               uint64_t id, std::string peer,
                               std::string_view received)
    : io_thread_(io_thread),
      core_(core),
      socket_(std::move(socket)),
      id_(id),
      peer_(std::move(peer)),
      // One request's header and body, and what a client pipelines behind
      // them up to one read.
      buffer_(core.options.max_http_header_bytes + core.options.max_body_bytes + kReadBytes) {
  const auto space = buffer_.prepare(received.size());
  std::memcpy(space.data(), received.data(), received.size());
  buffer_.commit(received.size());
}

void HttpConnection::start() {
  io_thread_.assert_in_loop_thread();
  last_activity_at_ = Clock::now();
  if (core_.stopping.load(std::memory_order_acquire))
    closing_ = true;
  read_request();
}

void HttpConnection::read_request() {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kReading)
    return;
  if (!parser_) {
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(core_.options.max_http_header_bytes));
    parser_->body_limit(core_.options.max_body_bytes);
    request_started_at_.reset();
    header_checked_ = false;
  }
  if (buffer_.size() > 0 && !request_started_at_)
    request_started_at_ = Clock::now();
  while (buffer_.size() > 0 && !parser_->is_done()) {
    boost::system::error_code error;
    const size_t used = parser_->put(buffer_.data(), error);
    buffer_.consume(used);
    if (error == http::error::need_more)
      break;
    if (error) {
      refuse(error);
      return;
    }
    if (used == 0)
      break;
    if (parser_->is_header_done() && !header_checked_) {
      header_checked_ = true;
      if (core_.options.authenticator != nullptr && !authenticate(parser_->get()))
        return;
    }
  }
  if (parser_->is_done()) {
    Request request = parser_->release();
    parser_.reset();
    handle_request(request);
    return;
  }
  if (closing_ && !parser_->got_some()) {
    // Stop, or the peer's FIN, between requests.
    linger();
    return;
  }
  if (reading_)
    return;
  if (buffer_.size() >= buffer_.max_size()) {
    refuse(http::error::buffer_overflow);
    return;
  }
  reading_ = true;
  const size_t room = std::min(kReadBytes, buffer_.max_size() - buffer_.size());
  socket_.async_read_some(buffer_.prepare(room),
                          [self = shared_from_this()](const boost::system::error_code& error,
                                                      size_t bytes) { self->on_read(error, bytes); });
}

void HttpConnection::on_read(const boost::system::error_code& error, size_t bytes) {
  io_thread_.assert_in_loop_thread();
  reading_ = false;
  if (closed())
    return;
  if (error == boost::asio::error::operation_aborted) {
    // Cancelled by a timeout or a close, which took over.
    if (state_ == State::kLingering)
      linger();
    return;
  }
  if (state_ == State::kLingering) {
    // Input past the close is discarded until the peer's FIN.
    if (error) {
      transition(State::kClosed);
    } else {
      linger();
    }
    return;
  }
  // A TLS peer that closes without close_notify ends as a FIN does (HTTP
  // messages carry their length: a cut one is an incomplete request).
  if (error == boost::asio::error::eof || error == boost::asio::ssl::error::stream_truncated) {
    const bool mid_request = parser_ && parser_->got_some();
    if (mid_request) {
      // The peer ended inside a request: nothing to answer it with.
      core_.incomplete_frames.fetch_add(1, std::memory_order_relaxed);
    }
    closing_ = true;
    close_reason_ = CloseReason::kPeerClosed;
    if (state_ == State::kReading)
      transition(State::kClosed);
    return;
  }
  if (error) {
    abort(CloseReason::kConnectionError);
    return;
  }
  buffer_.commit(bytes);
  last_activity_at_ = Clock::now();
  if (state_ == State::kReading)
    read_request();
}

void HttpConnection::refuse(const boost::system::error_code& error) {
  unsigned status = 400;
  DecodeStatus counted = DecodeStatus::kBadMagic;
  std::string text = "malformed HTTP request: " + error.message();
  if (error == http::error::header_limit) {
    status = 431;
    counted = DecodeStatus::kBodyTooLarge;
    text = "request header exceeds " + std::to_string(core_.options.max_http_header_bytes) +
           " bytes (max_http_header_bytes)";
  } else if (error == http::error::body_limit || error == http::error::buffer_overflow) {
    status = 413;
    counted = DecodeStatus::kBodyTooLarge;
    text = "request body exceeds " + std::to_string(core_.options.max_body_bytes) +
           " bytes (max_body_bytes)";
  }
  core_.count_rejected(counted);
  core_.rejected_frame_log.log(LogLevel::kWarning, [&] {
    return "answering HTTP " + std::to_string(status) + " to " + peer_ + " and closing: " + text;
  });
  closing_ = true;
  close_reason_ = CloseReason::kRejectedFrame;
  parser_.reset();
  buffer_.consume(buffer_.size());
  head_only_ = false;
  respond(status, error_json(to_int(ErrorCode::kBadRequest), text), kJson, /*close=*/true);
}

void HttpConnection::handle_request(Request& request) {
  transition(State::kCalling);
  keep_alive_ = request.keep_alive() && !closing_;
  // An HTTP/1.0 client (ab) needs a 1.0 answer to see "Connection: keep-alive".
  version_ = request.version() == 10 ? 10 : 11;
  head_only_ = request.method() == http::verb::head;
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = path_of(target);
  const size_t question = target.find('?');
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);

  if (path.substr(0, 4) == "/ws/") {
    upgrade_to_web_socket(request);
    return;
  }

  BuiltinPage page;
  const auto accept = request[http::field::accept];
  if (serve_builtin_page(core_, path, query, std::string_view(accept.data(), accept.size()),
                         &page)) {
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      respond(405, error_json(to_int(ErrorCode::kBadRequest), "built-in pages answer GET only"),
              kJson, false);
      return;
    }
    respond(page.status, std::move(page.body), page.content_type, false);
    return;
  }
  if (request.method() != http::verb::get && request.method() != http::verb::post) {
    respond(405,
            error_json(to_int(ErrorCode::kBadRequest),
                       "methods are called with POST (a JSON body) or GET (a query)"),
            kJson, false);
    return;
  }
  if (core_.stopping.load(std::memory_order_acquire)) {
    respond_error(to_int(ErrorCode::kServerStopping), "server is stopping", nullptr);
    return;
  }
  // /<package.Service>/<Method>
  const size_t slash = path.size() > 1 ? path.find('/', 1) : std::string_view::npos;
  if (path.size() < 2 || path[0] != '/' || slash == std::string_view::npos) {
    respond_error(to_int(ErrorCode::kNoService),
                  "no such page: " + std::string(path) +
                      " (methods are at /<package.Service>/<Method>; built-in: /health, "
                      "/status, /metrics)",
                  nullptr);
    return;
  }
  const std::string service_name(path.substr(1, slash - 1));
  const std::string method_name(path.substr(slash + 1));
  const auto* methods = core_.services.find_service(service_name);
  if (methods == nullptr) {
    respond_error(to_int(ErrorCode::kNoService), "no such service: " + service_name, nullptr);
    return;
  }
  MethodEntry* method = ServiceTable::find_method(*methods, method_name);
  if (method == nullptr) {
    respond_error(to_int(ErrorCode::kNoMethod),
                  "no such method: " + service_name + "." + method_name, nullptr);
    return;
  }
  if (const auto coding = request[http::field::transfer_encoding];
      !coding.empty() && !boost::beast::iequals(coding, "chunked")) {
    // Only chunked is understood; anything else cannot be framed safely.
    respond(501,
            error_json(to_int(ErrorCode::kBadRequest),
                       "Transfer-Encoding '" + std::string(coding) + "' is not supported (only chunked)"),
            kJson, true);
    return;
  }
  if (request.method() == http::verb::post && !request.has_content_length() &&
      !request.chunked()) {
    // What follows cannot be framed: close after the answer.
    respond(411, error_json(to_int(ErrorCode::kBadRequest), "a POST needs a Content-Length"),
            kJson, true);
    return;
  }

  const Clock::time_point received_at = request_started_at_.value_or(Clock::now());
  ServerCall* call = io_thread_.acquire_call(*method, id_, 0, received_at);
  std::string parse_error;
  const bool parsed =
      request.method() == http::verb::post
          ? message_from_json(request.body(), *call->request(), &parse_error)
          : message_from_query(query, *call->request(), &parse_error);
  if (!parsed) {
    io_thread_.recycle(call);
    core_.bad_request_log.log(LogLevel::kWarning, [&] {
      return "answering 1003 to " + peer_ + ": HTTP request to " + method->full_name + " " +
             parse_error;
    });
    respond_error(to_int(ErrorCode::kBadRequest), "request " + parse_error, method);
    return;
  }
  const auto timeout = header_number(
      std::string_view(request["X-Timeout-Ms"].data(), request["X-Timeout-Ms"].size()));
  const auto log_id =
      header_number(std::string_view(request["X-Log-Id"].data(), request["X-Log-Id"].size()));
  wire::RpcRequestMeta meta;
  if (timeout)
    meta.set_timeout_ms(static_cast<int32_t>(std::min<int64_t>(*timeout, INT32_MAX)));
  if (log_id)
    meta.set_log_id(*log_id);
  call->set_request_context(peer_, auth_context_, meta, std::string_view(), request.body().size());
  if (socket_.is_tls()) {
    std::string subject = socket_.peer_certificate_subject();
    if (!subject.empty())
      call->set_peer_certificate_subject(std::make_shared<const std::string>(std::move(subject)));
  }
  io_thread_.run_call(call);
}

namespace {

// 16 bytes in base64: 22 characters of the alphabet, then "==".
bool is_websocket_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==")
    return false;
  for (size_t i = 0; i < 22; ++i) {
    const char c = key[i];
    const bool base64 = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!base64)
      return false;
  }
  return true;
}

}  // namespace

void HttpConnection::upgrade_to_web_socket(Request& request) {
  io_thread_.assert_in_loop_thread();
  if (!boost::beast::websocket::is_upgrade(request)) {
    respond(400,
            error_json(to_int(ErrorCode::kBadRequest),
                       "/ws/<package.Service>/<Method> is a stream over a WebSocket: GET it with "
                       "an Upgrade: websocket header"),
            kJson, false);
    return;
  }
  // RFC 6455 4.2.1: the key is 16 bytes in base64 (24 characters, "=="
  // last), given once; Beast checks only that it is there.
  const auto keys = request.equal_range(boost::beast::http::field::sec_websocket_key);
  const bool one_key = keys.first != keys.second && std::next(keys.first) == keys.second;
  if (!one_key || !is_websocket_key(std::string_view(keys.first->value().data(),
                                                      keys.first->value().size()))) {
    respond(400,
            error_json(to_int(ErrorCode::kBadRequest),
                       "Sec-WebSocket-Key must be given once, as 16 bytes in base64 (RFC 6455 "
                       "4.2.1)"),
            kJson, false);
    return;
  }
  if (buffer_.size() > 0) {
    // RFC 6455 4.1: the client sends nothing more before the server's
    // handshake; what follows cannot be trusted to be WebSocket frames.
    closing_ = true;
    close_reason_ = CloseReason::kRejectedFrame;
    buffer_.consume(buffer_.size());
    respond(400,
            error_json(to_int(ErrorCode::kBadRequest),
                       "bytes followed the WebSocket upgrade request before its answer"),
            kJson, true);
    return;
  }
  PERCORE_ASSERT(!reading_);
  auto session = std::make_shared<WebSocketSession>(
      io_thread_, core_, std::move(socket_), id_, peer_, std::move(request),
      request_started_at_.value_or(Clock::now()));
  session->set_auth_context(auth_context_);
  transition(State::kUpgraded);
  io_thread_.add_web_socket(std::move(session));
}

void HttpConnection::answer_call(ServerCall& call) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kCalling)
    return;
  ServerController& controller = call.controller();
  int32_t code = controller.ErrorCode();
  if (code == 0) {
    std::string json;
    std::string error;
    if (!call.response()->IsInitialized()) {
      code = to_int(ErrorCode::kInternal);
      error = "response misses required fields: " + call.response()->InitializationErrorString();
    } else if (message_to_json(*call.response(), &json, &error)) {
      call.note_answer_bytes(json.size());
      if (json.size() > core_.options.max_body_bytes) {
        // As a baidu_std reply over the limit: answered 2001 instead.
        respond_error(to_int(ErrorCode::kInternal),
                      "response exceeds max_body_bytes (" +
                          std::to_string(core_.options.max_body_bytes) + ") as JSON",
                      &call.method());
        return;
      }
      io_thread_.count_answer(&call.method(), 0, call.received_at());
      respond(200, std::move(json), kJson, false);
      return;
    } else {
      code = to_int(ErrorCode::kInternal);
    }
    respond_error(code, error, &call.method());
    return;
  }
  respond_error(code, controller.ErrorText(), &call.method());
}

void HttpConnection::answer_abandoned_call(MethodEntry* method,
                                           ServerCall::Clock::time_point received_at) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kCalling)
    return;
  (void)received_at;
  respond_error(to_int(ErrorCode::kServerStopping), "server stopped before the handler finished",
                method);
}

bool HttpConnection::authenticate(const http::request_header<>& request) {
  io_thread_.assert_in_loop_thread();
  auth_context_.reset();
  // Every page but /health (and, when so configured, /status and /metrics)
  // needs the credential, WebSocket upgrades included.
  const std::string_view path =
      path_of(std::string_view(request.target().data(), request.target().size()));
  if (path == "/health" ||
      (core_.options.open_builtin_pages && (path == "/status" || path == "/metrics"))) {
    return true;
  }
  const auto header = request[http::field::authorization];
  std::string_view value(header.data(), header.size());
  std::string reason;
  const bool repeated = request.count(http::field::authorization) > 1;
  // RFC 6750 2.1: "Bearer" (any case), one or more spaces, the token.
  constexpr std::string_view kScheme = "bearer";
  const bool bearer = value.size() > kScheme.size() && value[kScheme.size()] == ' ' &&
                      boost::beast::iequals(boost::beast::string_view(value.data(), kScheme.size()),
                                              boost::beast::string_view(kScheme.data(), kScheme.size()));
  if (repeated) {
    // Which one counts is ambiguous (proxies differ): none does.
    reason = "more than one Authorization header";
    challenge_ = "Bearer realm=\"percore\", error=\"invalid_request\"";
  } else if (value.empty()) {
    reason = "no Authorization header";
    challenge_ = "Bearer realm=\"percore\"";
  } else if (!bearer) {
    reason = "the Authorization header is not of the Bearer scheme";
    challenge_ = "Bearer realm=\"percore\", error=\"invalid_request\"";
  } else {
    value.remove_prefix(kScheme.size());
    while (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ')
      value.remove_suffix(1);
    auto context = std::make_shared<AuthContext>();
    if (core_.options.authenticator->VerifyCredential(value, peer_, context.get(), &reason) == 0) {
      auth_context_ = std::move(context);
      return true;
    }
    if (reason.empty())
      reason = "credential refused";
    challenge_ = "Bearer realm=\"percore\", error=\"invalid_token\"";
  }
  core_.authentication_failures.fetch_add(1, std::memory_order_relaxed);
  core_.authentication_log.log(LogLevel::kWarning, [&] {
    return "refusing HTTP connection from " + peer_ + ": authentication failed: " + reason;
  });
  io_thread_.count_answer(nullptr, to_int(ErrorCode::kUnauthorized),
                          request_started_at_.value_or(Clock::now()));
  // The body, if any, is never read: the answer closes the connection.
  version_ = request.version() == 10 ? 10 : 11;
  head_only_ = request.method() == http::verb::head;
  close_reason_ = CloseReason::kUnauthenticated;
  respond(401,
          error_json(to_int(ErrorCode::kUnauthorized),
                     std::string(kAuthenticationFailedText) + reason),
          kJson, /*close=*/true);
  return false;
}

void HttpConnection::respond_error(int32_t code, std::string_view text, MethodEntry* method) {
  io_thread_.count_answer(method, code, request_started_at_.value_or(Clock::now()));
  respond(http_status_for(code), error_json(code, text), kJson, false);
}

void HttpConnection::respond(unsigned status, std::string body, std::string_view content_type,
                             bool close) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kReading)
    transition(State::kCalling);  // A refusal: no call ran.
  if (close || closing_ || core_.stopping.load(std::memory_order_acquire))
    keep_alive_ = false;  // The answer says Connection: close.
  response_ = Response();
  response_.version(version_);
  response_.result(status);
  response_.set(http::field::server, "percore");
  response_.set(http::field::content_type,
                boost::beast::string_view(content_type.data(), content_type.size()));
  response_.keep_alive(keep_alive_);
  if (!challenge_.empty()) {
    response_.set(http::field::www_authenticate, challenge_);
    challenge_.clear();
  }
  const size_t length = body.size();
  if (!head_only_)
    response_.body() = std::move(body);
  response_.content_length(length);
  transition(State::kWriting);
  http::async_write(socket_, response_,
                    [self = shared_from_this()](const boost::system::error_code& error,
                                                size_t bytes) { self->on_written(error, bytes); });
}

void HttpConnection::on_written(const boost::system::error_code& error, size_t) {
  io_thread_.assert_in_loop_thread();
  if (closed())
    return;
  if (error) {
    abort(CloseReason::kConnectionError);
    return;
  }
  last_activity_at_ = Clock::now();
  response_ = Response();  // Gives the body's memory back.
  if (!keep_alive_) {
    closing_ = true;
    linger();
    return;
  }
  transition(State::kReading);
  read_request();
}

void HttpConnection::linger() {
  if (state_ != State::kLingering)
    transition(State::kLingering);
  if (close_notify_pending_ && reading_) {
    // Asio's shutdown needs the stream to itself: the read waiting ends
    // (aborted), and its handler comes back here.
    socket_.tcp().cancel();
    return;
  }
  if (reading_ || state_ != State::kLingering)
    return;
  reading_ = true;
  if (close_notify_pending_) {
    // TLS ends with close_notify (RFC 8446, 6.1); Asio writes it and reads
    // until the peer's (or its FIN), then TCP's FIN follows.
    close_notify_pending_ = false;
    socket_.tls().async_shutdown([self = shared_from_this()](const boost::system::error_code&) {
      self->reading_ = false;
      if (self->closed())
        return;
      boost::system::error_code ignored;
      self->socket_.tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
      self->transition(State::kClosed);
    });
    return;
  }
  // Discarded: read below TLS.
  socket_.tcp().async_read_some(boost::asio::buffer(discard_),
                          [self = shared_from_this()](const boost::system::error_code& error,
                                                      size_t bytes) { self->on_read(error, bytes); });
}

void HttpConnection::begin_close(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (closing_ || closed() || state_ == State::kLingering)
    return;
  closing_ = true;
  close_reason_ = reason;
  if (state_ == State::kReading && !(parser_ && parser_->got_some()) && buffer_.size() == 0) {
    // Between requests: nothing is owed.
    socket_.tcp().cancel();
    linger();
  }
  // Otherwise the request being read or served is answered, then it closes.
}

void HttpConnection::abort(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (closed())
    return;
  if (!closing_)
    close_reason_ = reason;
  boost::system::error_code ignored;
  socket_.tcp().set_option(boost::asio::socket_base::linger(true, 0), ignored);
  transition(State::kClosed);
}

void HttpConnection::check_timeouts(Clock::time_point now) {
  io_thread_.assert_in_loop_thread();
  const ServerOptions& options = core_.options;
  switch (state_) {
    case State::kReading: {
      const bool begun = request_started_at_.has_value() || (parser_ && parser_->got_some());
      if (begun && options.partial_frame_timeout_ms > 0 && request_started_at_ &&
          now - *request_started_at_ >=
              std::chrono::milliseconds(options.partial_frame_timeout_ms)) {
        core_.incomplete_frames.fetch_add(1, std::memory_order_relaxed);
        close_reason_ = CloseReason::kPartialFrameTimeout;
        closing_ = true;
        parser_.reset();
        buffer_.consume(buffer_.size());
        socket_.tcp().cancel();
        head_only_ = false;
        respond(408,
                error_json(to_int(ErrorCode::kBadRequest),
                           "request not complete within " +
                               std::to_string(options.partial_frame_timeout_ms) +
                               " ms (partial_frame_timeout_ms)"),
                kJson, true);
      } else if (!begun && options.idle_timeout_ms > 0 &&
                 now - last_activity_at_ >= std::chrono::milliseconds(options.idle_timeout_ms)) {
        close_reason_ = CloseReason::kIdleTimeout;
        closing_ = true;
        socket_.tcp().cancel();
        linger();
      }
      break;
    }
    case State::kCalling:
      break;  // Stop bounds handlers.
    case State::kWriting:
      // A peer that stops reading holds one answer; the idle timeout (or
      // close_linger_ms once closing) bounds how long.
      if (now - last_activity_at_ >=
          std::chrono::milliseconds(closing_ ? options.close_linger_ms
                                             : std::max(options.idle_timeout_ms, 0))) {
        if (closing_ || options.idle_timeout_ms > 0)
          abort(closing_ ? close_reason_ : CloseReason::kIdleTimeout);
      }
      break;
    case State::kLingering:
      if (now >= linger_deadline_)
        transition(State::kClosed);
      break;
    case State::kClosed:
    case State::kUpgraded:
      break;
  }
}

void HttpConnection::transition(State next) {
  io_thread_.assert_in_loop_thread();
  PERCORE_ASSERT(state_ != State::kClosed && state_ != State::kUpgraded);
  const State previous = std::exchange(state_, next);
  boost::system::error_code ignored;
  switch (next) {
    case State::kReading:
    case State::kCalling:
    case State::kWriting:
      break;
    case State::kUpgraded:
      // The socket lives on in a WebSocketSession, which counts its close.
      io_thread_.remove_http_connection(id_);
      break;
    case State::kLingering:
      linger_deadline_ = Clock::now() + std::chrono::milliseconds(core_.options.close_linger_ms);
      if (socket_.is_tls())
        close_notify_pending_ = true;  // linger() sends it, then the FIN.
      else
        socket_.tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
      break;
    case State::kClosed:
      if (previous == State::kCalling || previous == State::kWriting) {
        // A reset or an error with an answer owed or half written.
        core_.closes_without_flush.fetch_add(1, std::memory_order_relaxed);
        core_.unflushed_close_log.log(LogLevel::kWarning, [&] {
          return "HTTP connection from " + peer_ + " closed (" + close_reason_name(close_reason_) +
                 ") with its answer " +
                 (previous == State::kCalling ? "not yet made" : "not fully written");
        });
      }
      socket_.tcp().close(ignored);
      core_.count_close(close_reason_);
      core_.open_connections.leave();
      io_thread_.remove_http_connection(id_);
      break;
  }
}

}  // namespace percore::detail
