#include <percore/server_io/detail/server_connection.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <linux/sockios.h>

#include <algorithm>
#include <sys/ioctl.h>

#include <percore/base/log.h>
#include <percore/base/net_address.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/compression.h>
#include <percore/proto/frame.h>
#include <percore/proto/health.pb.h>
#include <percore/proto/detail/health_check.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/worker_pool.h>

namespace percore::detail {
namespace {

// A read is offered at least this much free space; the decoder's block (or
// a buffer sized for a known large frame) usually offers more.
constexpr size_t kMinReadBytes = 4096;
// Inside TLS a read is offered a whole record's plaintext (RFC 8446: at most
// 16 KiB): less, and one record takes several Asio read operations, each a
// completion of its own.
constexpr size_t kMinTlsReadBytes = 16384;
// Reads per event, so that one busy connection cannot hold its I/O thread;
// the next read comes at once if more is waiting.
constexpr int kMaxReadsPerEvent = 4;
// Buffers per write: Asio passes at most 64 to one sendmsg.
constexpr size_t kMaxWriteBuffers = 64;
// A TLS record's largest plaintext (RFC 8446, 5.1): what one gathered TLS
// write takes.
constexpr size_t kTlsRecordBytes = 16 * 1024;
// A TLS record's first byte when it carries a handshake message.
constexpr char kTlsHandshakeRecord = 0x16;

// Why a TLS handshake failed, for a log line: OpenSSL's reason, and the
// certificate check's when that is what failed.
std::string tls_error_text(const boost::system::error_code& error, SSL* ssl) {
  if (error == boost::asio::ssl::error::stream_truncated || error == boost::asio::error::eof)
    return "the client closed the connection during the handshake (does it trust this "
           "server's certificate?)";
  std::string text = error.message();
  const long verified = SSL_get_verify_result(ssl);
  if (verified != X509_V_OK)
    text += std::string(" (") + X509_verify_cert_error_string(verified) + ")";
  return text;
}

FrameDecoderOptions decoder_options(const ServerOptions& options, ReadBlockPool* blocks,
                                    std::span<char> inline_space) {
  FrameDecoderOptions decoder{options.max_body_bytes, blocks, inline_space};
  decoder.accept_stream_frames = true;  // Unknown streams are answered RST.
  return decoder;
}

// Wakes the connection's I/O thread for a stream's queued frames.
class ConnectionStreamCarrier final : public StreamCarrier {
 public:
  ConnectionStreamCarrier(IoThread& io_thread, uint64_t connection_id)
      : io_thread_(io_thread), gate_(io_thread.stream_gate()), connection_id_(connection_id) {}
  void wake(const std::shared_ptr<StreamCore>& stream) override {
    gate_->run_if_open([&] {
      boost::asio::post(io_thread_.context(), [&io = io_thread_, id = connection_id_, stream] {
        io.flush_stream(id, stream);
      });
    });
  }

 private:
  IoThread& io_thread_;
  const std::shared_ptr<CarrierGate> gate_;  // Closed when the I/O thread goes.
  const uint64_t connection_id_;
};

bool would_block(const boost::system::error_code& error) {
  return error == boost::asio::error::would_block || error == boost::asio::error::try_again;
}

}  // namespace

ServerConnection::ServerConnection(IoThread& io_thread, ServerCore& core,
                                   boost::asio::ip::tcp::socket socket, uint64_t id)
    : io_thread_(io_thread),
      core_(core),
      socket_(std::move(socket)),
      id_(id),
      peer_(describe_peer(socket_.tcp().native_handle())),
      decoder_(decoder_options(core.options, &io_thread.read_blocks(),
                               std::span<char>(wake_buffer_))) {}

void ServerConnection::start() {
  io_thread_.assert_in_loop_thread();
  boost::system::error_code ignored;
  socket_.tcp().set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  // For the reads made by hand after a read that filled its buffer.
  socket_.tcp().non_blocking(true, ignored);
  last_read_at_ = last_write_at_ = Clock::now();
  if (core_.stopping.load(std::memory_order_acquire)) {
    begin_close(CloseReason::kServerStopped);
    return;
  }
  pump();
}

void ServerConnection::pump() {
  if (frames_waiting_)
    process_frames();  // A limit held them back; it may have lifted.
  flush();
  advance();
  if (wants_input())
    wait_readable();
}

bool ServerConnection::wants_input() const {
  if (input_ended_ || handshaking_)
    return false;
  if (state_ == State::kLingering)
    return true;  // Discarding until the peer's FIN.
  return state_ == State::kOpen && !write_backpressure_ &&
         in_flight_calls_ < core_.options.max_inflight_per_connection;
}

void ServerConnection::wait_readable() {
  if (reading_)
    return;
  reading_ = true;
  std::span<char> space;
  if (state_ == State::kLingering) {
    if (close_notify_pending_) {
      reading_ = false;
      start_close_notify();  // Its read is the lingering read.
      return;
    }
    // Input past the close is discarded; nothing is decoded any more, so the
    // wake buffer serves as the sink. Read below TLS: discarded either way.
    offered_bytes_ = wake_buffer_.size();
    socket_.tcp().async_read_some(
        boost::asio::buffer(wake_buffer_),
        [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
          self->on_read(error, bytes);
        });
    return;
  }
  if (decoder_.buffered_bytes() == 0 && last_read_was_small_) {
    // A quiet connection waits with no read block: its next read lands in
    // the wake buffer (the decoder's inline space) and is decoded there.
    decoder_.release();
    space = decoder_.prepare(1);
  } else {
    // A busy one, or one in the middle of a frame, reads into a block.
    space = decoder_.prepare(socket_.is_tls() ? kMinTlsReadBytes : kMinReadBytes);
  }
  offered_bytes_ = space.size();
  socket_.async_read_some(
      boost::asio::buffer(space.data(), space.size()),
      [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
        self->on_read(error, bytes);
      });
}

void ServerConnection::on_read(const boost::system::error_code& error, size_t bytes) {
  io_thread_.assert_in_loop_thread();
  reading_ = false;
  if (state_ == State::kClosed)
    return;
  if (error == boost::asio::error::operation_aborted && close_notify_pending_) {
    start_close_notify();  // Cancelled so that close_notify can go.
    return;
  }
  // A TLS peer that closes without close_notify ends its input as a FIN
  // does (frames are self-delimiting: a cut one is an incomplete frame).
  if (error == boost::asio::error::eof || error == boost::asio::ssl::error::stream_truncated) {
    input_ended_ = true;
  } else if (error) {
    abort(CloseReason::kConnectionError);
    return;
  }
  try {
    if (state_ == State::kLingering) {
      if (bytes == offered_bytes_)
        discard_input();
    } else if (bytes > 0) {
      // Taken even when a close has begun meanwhile: dispatch decides (a
      // stop answers them 2003; after a rejection they are ignored).
      decoder_.commit(bytes);
      last_read_at_ = Clock::now();
      last_read_was_small_ = bytes < wake_buffer_.size();
      process_frames();
      if (bytes == offered_bytes_)
        read_input();  // The read filled its space: more is probably waiting.
    }
    end_input_if_finished();
    if (state_ != State::kClosed)
      pump();
  } catch (const std::bad_alloc&) {
    // Out of memory while reading or dispatching this connection's input:
    // this connection ends, the server goes on.
    in_pass_ = false;
    core_.allocation_failures.fetch_add(1, std::memory_order_relaxed);
    core_.allocation_failure_log.log(LogLevel::kError, [&] {
      return "out of memory reading from " + peer_ + "; closing that connection";
    });
    abort(CloseReason::kConnectionError);
  }
}

void ServerConnection::read_input() {
  // Reads by hand bypass TLS (Asio's stream reads ciphertext itself, and a
  // non-blocking synchronous TLS read cannot write what it may owe).
  if (socket_.is_tls())
    return;
  for (int reads = 1; reads < kMaxReadsPerEvent && wants_input(); ++reads) {
    const std::span<char> space = decoder_.prepare(kMinReadBytes);
    boost::system::error_code error;
    const size_t bytes =
        socket_.tcp().read_some(boost::asio::buffer(space.data(), space.size()), error);
    if (error == boost::asio::error::interrupted)
      continue;
    if (would_block(error))
      break;
    if (error == boost::asio::error::eof) {
      input_ended_ = true;
      break;
    }
    if (error) {
      abort(CloseReason::kConnectionError);
      return;
    }
    decoder_.commit(bytes);
    last_read_at_ = Clock::now();
    last_read_was_small_ = false;
    process_frames();
    if (bytes < space.size())
      break;  // The socket is drained for now.
  }
}

void ServerConnection::end_input_if_finished() {
  // The peer sends no more; it may still read: answer what it sent.
  if (input_ended_ && state_ == State::kOpen) {
    close_reason_ = CloseReason::kPeerClosed;
    transition(State::kDraining);
  }
}

void ServerConnection::discard_input() {
  char sink[4096];
  for (int reads = 0; reads < 16; ++reads) {
    boost::system::error_code error;
    const size_t bytes = socket_.tcp().read_some(boost::asio::buffer(sink), error);
    if (error == boost::asio::error::eof) {
      input_ended_ = true;
      return;
    }
    if (would_block(error))
      return;
    if (error && error != boost::asio::error::interrupted) {
      abort(close_reason_);
      return;
    }
    if (bytes < sizeof(sink))
      return;
  }
}

void ServerConnection::process_frames() {
  if (in_pass_ || frames_ended_ || (state_ != State::kOpen && state_ != State::kDraining))
    return;
  in_pass_ = true;
  const int inflight_limit = core_.options.max_inflight_per_connection;
  const size_t unwritten_limit = core_.options.max_unwritten_bytes_per_connection;
  frames_waiting_ = false;
  if (!transport_known_ && !choose_transport()) {
    in_pass_ = false;
    return;
  }
  if (!protocol_known_) {
    const Protocol protocol = sniff_protocol();
    if (protocol == Protocol::kHttp) {
      in_pass_ = false;
      hand_over_to_http();
      return;
    }
    if (protocol == Protocol::kUnknown && decoder_.buffered_bytes() < kFrameHeaderBytes) {
      in_pass_ = false;  // Too few bytes to tell; the partial-frame timeout bounds the wait.
      return;
    }
    protocol_known_ = true;  // baidu_std, or rejected by the decoder as bad magic.
  }
  while (!frames_ended_) {
    if (!write_backpressure_ && unwritten_bytes() > unwritten_limit) {
      write_backpressure_ = true;
      core_.write_backpressure_pauses.fetch_add(1, std::memory_order_relaxed);
    }
    if (in_flight_calls_ >= inflight_limit || write_backpressure_) {
      frames_waiting_ = decoder_.buffered_bytes() > 0;
      break;
    }
    const DecodeStatus status = decoder_.next(frame_, stream_frame_);
    if (status == DecodeStatus::kNeedMore) {
      // Before a connection is authenticated, its request is judged by its
      // meta: a stranger's body is never taken in.
      if (core_.options.authenticator != nullptr && auth_context_ == nullptr &&
          !authentication_refused_) {
        authenticate_partial_frame();
      }
      break;
    }
    if (is_rejection(status)) {
      reject(status, decode_status_text(status));
      break;
    }
    if (status == DecodeStatus::kStreamFrame) {
      if (core_.options.authenticator != nullptr && auth_context_ == nullptr) {
        // No stream exists before a call was served.
        if (!authentication_refused_)
          refuse_connection("a stream frame before any request", /*answer_buffered=*/false);
        frames_ended_ = true;
        break;
      }
      on_stream_frame(stream_frame_);
    } else {
      dispatch(frame_);
    }
  }
  deliver_stream_input();
  in_pass_ = false;
}

ServerConnection::Protocol ServerConnection::sniff_protocol() const {
  const std::string_view bytes = decoder_.buffered();
  if (bytes.substr(0, sizeof(kFrameMagic)) ==
      std::string_view(kFrameMagic, sizeof(kFrameMagic)).substr(0, bytes.size()))
    return bytes.size() >= sizeof(kFrameMagic) ? Protocol::kBaiduStd : Protocol::kUnknown;
  // An HTTP/1.x request line starts with a method and a space (RFC 9112).
  static constexpr std::string_view kMethods[] = {"GET ",     "POST ",    "HEAD ",
                                                  "PUT ",     "DELETE ",  "OPTIONS ",
                                                  "PATCH ",   "TRACE ",   "CONNECT "};
  bool prefix_of_one = false;
  for (const std::string_view method : kMethods) {
    if (bytes.size() >= method.size() && bytes.substr(0, method.size()) == method)
      return Protocol::kHttp;
    if (bytes.size() < method.size() && method.substr(0, bytes.size()) == bytes)
      prefix_of_one = true;
  }
  // Neither: bad magic, which the decoder rejects.
  return prefix_of_one ? Protocol::kUnknown : Protocol::kBaiduStd;
}

bool ServerConnection::choose_transport() {
  if (decoder_.buffered_bytes() == 0)
    return false;
  if (state_ != State::kOpen) {
    frames_ended_ = true;  // Closing before its first byte was known: nothing is owed.
    return false;
  }
  // A TLS record of type handshake (RFC 8446, 5.1): a ClientHello.
  const bool client_hello = decoder_.buffered()[0] == kTlsHandshakeRecord;
  if (client_hello && core_.tls_context != nullptr) {
    start_tls_handshake();
    return false;
  }
  transport_known_ = true;
  // (tls is set whenever tls_context is: test that first.)
  if (core_.tls_context != nullptr &&
      (core_.options.tls_required || core_.options.tls->verify_client)) {
    core_.clear_text_refused.fetch_add(1, std::memory_order_relaxed);
    core_.tls_log.log(LogLevel::kWarning, [&] {
      return "refusing a clear-text connection from " + peer_ + ": this server requires TLS";
    });
    frames_ended_ = true;
    close_reason_ = CloseReason::kClearTextRefused;
    transition(State::kDraining);
    return false;
  }
  return true;  // Clear text (or a ClientHello to a server without TLS: bad magic).
}

void ServerConnection::start_tls_handshake() {
  handshaking_ = true;
  // The bytes read so far are the handshake's; Asio takes them as its first
  // input.
  tls_hello_.assign(decoder_.buffered());
  decoder_.drop_buffered();
  socket_.start_tls(*core_.tls_context);
  socket_.tls().async_handshake(
      boost::asio::ssl::stream_base::server, boost::asio::buffer(tls_hello_),
      [self = shared_from_this()](const boost::system::error_code& error, size_t) {
        self->on_tls_handshake(error);
      });
}

void ServerConnection::on_tls_handshake(const boost::system::error_code& error) {
  io_thread_.assert_in_loop_thread();
  handshaking_ = false;
  std::string().swap(tls_hello_);
  if (state_ == State::kClosed)
    return;
  if (error) {
    // Asio wrote OpenSSL's alert before completing: the client learns why.
    tls_failed_ = true;
    fail_tls(tls_error_text(error, socket_.tls().native_handle()));
    return;
  }
  core_.tls_handshakes.fetch_add(1, std::memory_order_relaxed);
  transport_known_ = true;
  last_read_at_ = Clock::now();
  std::string subject = socket_.peer_certificate_subject();
  if (!subject.empty())
    peer_certificate_subject_ = std::make_shared<const std::string>(std::move(subject));
  pump();
}

void ServerConnection::fail_tls(const std::string& reason) {
  core_.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
  core_.tls_log.log(LogLevel::kWarning,
                    [&] { return "TLS handshake with " + peer_ + " failed: " + reason; });
  frames_ended_ = true;
  if (state_ == State::kOpen) {
    close_reason_ = CloseReason::kTlsFailed;
    transition(State::kDraining);
  }
  pump();
}

void ServerConnection::start_close_notify() {
  if (!close_notify_pending_ || reading_ || state_ != State::kLingering)
    return;
  close_notify_pending_ = false;
  // Asio writes close_notify and reads until the peer's (or its FIN): that
  // read is the lingering read.
  reading_ = true;
  socket_.tls().async_shutdown([self = shared_from_this()](const boost::system::error_code&) {
    self->on_tls_shutdown();
  });
}

void ServerConnection::on_tls_shutdown() {
  io_thread_.assert_in_loop_thread();
  reading_ = false;
  if (state_ == State::kClosed)
    return;
  // The peer answered close_notify, closed, or failed: its input is over.
  input_ended_ = true;
  boost::system::error_code ignored;
  socket_.tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
  pump();
}

void ServerConnection::hand_over_to_http() {
  // Nothing was dispatched nor written, and no operation is outstanding (this
  // runs inside the read's handler): the socket and the bytes move as they are.
  protocol_known_ = true;
  frames_ended_ = true;
  handed_over_ = true;
  ServerSocket socket = std::move(socket_);
  const std::string received(decoder_.buffered());
  // Closed first: the HTTP connection, under the same id, may answer a call
  // before adopt_http() returns (an inline handler).
  transition(State::kClosed);
  io_thread_.adopt_http(id_, std::move(socket), peer_, received);
}

void ServerConnection::reject(DecodeStatus status, std::string_view text) {
  core_.count_rejected(status);
  core_.rejected_frame_log.log(LogLevel::kWarning, [&] {
    return "closing connection from " + peer_ + " after answering what it sent before: " +
           std::string(text);
  });
  // The bytes past a bad frame cannot be trusted: nothing more is dispatched.
  frames_ended_ = true;
  if (state_ == State::kOpen) {
    close_reason_ = CloseReason::kRejectedFrame;
    transition(State::kDraining);
  }
}

void ServerConnection::dispatch(const Frame& frame) {
  const wire::RpcMeta& meta = frame.meta;
  const int64_t correlation_id = meta.correlation_id();
  if (!frame.is_request()) {
    // A server never sent a request, so a response here is a broken peer.
    reject(DecodeStatus::kNeitherRequestNorResponse, "response frame sent to a server");
    return;
  }
  const wire::RpcRequestMeta& request_meta = meta.request();
  // A request that attaches a stream is answered inside a DATA frame to it,
  // errors included (brpc's SendRpcResponse).
  IoThread::StreamReply stream_reply{
      meta.has_stream_settings() && meta.stream_settings().has_stream_id() &&
              meta.stream_settings().stream_id() >= 0
          ? meta.stream_settings().stream_id()
          : kInvalidStreamId,
      meta.stream_settings().need_feedback(), nullptr};
  IoThread::StreamReply* stream = stream_reply.remote_id >= 0 ? &stream_reply : nullptr;
  auto answer_error = [&](MethodEntry* method, ErrorCode code, const std::string& text) {
    io_thread_.answer(*this, correlation_id, method, to_int(code), text, nullptr, std::string(),
                      last_read_at_, CompressType::kNone, {}, stream);
  };

  // Before anything else: an unauthenticated peer learns nothing, not even
  // whether the server is stopping or what it hosts.
  if (core_.options.authenticator != nullptr) {
    if (std::string refusal = authentication_refusal(meta); !refusal.empty()) {
      answer_error(nullptr, ErrorCode::kUnauthorized, refusal);
      return;
    }
  }
  if (core_.stopping.load(std::memory_order_acquire)) {
    answer_error(nullptr, ErrorCode::kServerStopping, "server is stopping");
    return;
  }
  const auto* methods = core_.services.find_service(request_meta.service_name());
  if (methods == nullptr) {
    if (request_meta.service_name() == kHealthService &&
        request_meta.method_name() == kHealthMethod) {
      // Clients' liveness and readmission probe, answered here on the I/O
      // thread (like an HTTP/2 PING), unless the application hosts its own
      // health service.
      static const grpc::health::v1::HealthCheckResponse serving = [] {
        grpc::health::v1::HealthCheckResponse response;
        response.set_status(grpc::health::v1::HealthCheckResponse::SERVING);
        return response;
      }();
      io_thread_.answer(*this, correlation_id, nullptr, 0, std::string(), &serving,
                        std::string(), last_read_at_, CompressType::kNone, {}, stream);
      return;
    }
    answer_error(nullptr, ErrorCode::kNoService, "no such service: " + request_meta.service_name());
    return;
  }
  MethodEntry* method = ServiceTable::find_method(*methods, request_meta.method_name());
  if (method == nullptr) {
    answer_error(
        nullptr, ErrorCode::kNoMethod,
        "no such method: " + request_meta.service_name() + "." + request_meta.method_name());
    return;
  }
  if (!is_supported_compress_type(meta.compress_type())) {
    answer_error(method, ErrorCode::kBadRequest,
                 "unsupported compress_type " + std::to_string(meta.compress_type()) +
                     " (0 none, 1 snappy, 2 gzip and 3 zlib are supported)");
    return;
  }
  const auto compress_type = static_cast<CompressType>(meta.compress_type());

  ServerCall* raw_call = io_thread_.acquire_call(*method, id_, correlation_id, last_read_at_);
  if (compress_type != CompressType::kNone && method->mode != ExecutionMode::kInline) {
    // Decompressing can take milliseconds: a worker does it (execute(), or
    // the worker process), not this I/O thread; it answers 1003 there if the
    // message is bad.
    raw_call->defer_request(frame.message, compress_type);
  } else {
    std::string parse_error;
    if (!raw_call->parse_request(frame.message, compress_type, &parse_error)) {
      raw_call->note_answer_bytes(frame.message.size());  // What the parse may have kept.
      io_thread_.recycle(raw_call);
      core_.bad_request_log.log(LogLevel::kWarning, [&] {
        return "answering 1003 to " + peer_ + ": request to " + method->full_name + " " +
               parse_error;
      });
      answer_error(method, ErrorCode::kBadRequest, "request " + parse_error);
      return;
    }
  }
  raw_call->set_request_context(peer_, auth_context_, request_meta, frame.attachment,
                                frame.message.size());
  if (peer_certificate_subject_ != nullptr)
    raw_call->set_peer_certificate_subject(peer_certificate_subject_);
  if (stream != nullptr) {
    // Streams open plus stream calls in flight (each may accept one): a
    // bound that holds whatever the handlers decide.
    const bool room = streams_.size() + stream_calls_in_flight_ <
                      static_cast<size_t>(std::max(0, core_.options.max_streams_per_connection));
    ++stream_calls_in_flight_;
    raw_call->set_remote_stream(
        stream_reply.remote_id, stream_reply.remote_needs_feedback,
        !meta.stream_settings().has_writable() || meta.stream_settings().writable(),
        room);
  }
  ++in_flight_calls_;
  io_thread_.run_call(raw_call);
}

std::string ServerConnection::authentication_refusal(const wire::RpcMeta& meta) {
  io_thread_.assert_in_loop_thread();
  if (authentication_refused_)
    return std::string(kAuthenticationFailedText) + "the connection's first request was refused";
  // Once verified, a connection needs no credential (brpc's rule) unless
  // every call is verified; a credential a request does present must be
  // valid all the same.
  if (auth_context_ != nullptr && !core_.options.authenticate_every_call &&
      !meta.has_authentication_data()) {
    return std::string();
  }
  std::string reason;
  auto context = std::make_shared<AuthContext>();
  if (!meta.has_authentication_data()) {
    reason = auth_context_ == nullptr
                 ? "the connection's first request carries no credential"
                 : "the request carries no credential, and this server verifies every call "
                   "(percore clients: ChannelOptions::credential_on_every_call)";
  } else if (core_.options.authenticator->VerifyCredential(meta.authentication_data(), peer_,
                                                           context.get(), &reason) == 0) {
    if (auth_context_ == nullptr)
      auth_context_ = std::move(context);  // Once verified, it is the connection's.
    return std::string();
  } else if (reason.empty()) {
    reason = "credential refused";
  }
  refuse_connection(reason, /*answer_buffered=*/true);
  return std::string(kAuthenticationFailedText) + reason;
}

void ServerConnection::refuse_connection(const std::string& reason, bool answer_buffered) {
  io_thread_.assert_in_loop_thread();
  core_.authentication_failures.fetch_add(1, std::memory_order_relaxed);
  core_.authentication_log.log(LogLevel::kWarning, [&] {
    return "refusing connection from " + peer_ + ": authentication failed: " + reason;
  });
  // With answer_buffered, the requests read behind it are answered 1004
  // (dispatch continues while draining, as at a stop); nothing more is read.
  authentication_refused_ = true;
  if (state_ == State::kOpen) {
    close_reason_ = CloseReason::kUnauthenticated;
    frames_ended_ = !answer_buffered;
    transition(State::kDraining);
  } else if (!answer_buffered) {
    frames_ended_ = true;
  }
}

void ServerConnection::authenticate_partial_frame() {
  io_thread_.assert_in_loop_thread();
  FrameDecoder::PendingHeader header;
  if (!decoder_.peek_header(&header))
    return;
  if (header.stream) {
    refuse_connection("a stream frame before any request", /*answer_buffered=*/false);
    return;
  }
  // A credential fits in far less; a stranger may not make the server hold
  // a meta of up to max_body_bytes.
  if (header.meta_bytes > kMaxUnauthenticatedMetaBytes) {
    refuse_connection("the first request's meta has " + std::to_string(header.meta_bytes) +
                          " bytes, more than the " +
                          std::to_string(kMaxUnauthenticatedMetaBytes) +
                          " allowed before authentication",
                      /*answer_buffered=*/false);
    return;
  }
  wire::RpcMeta meta;
  if (!decoder_.peek_meta(meta) || !meta.has_request())
    return;  // Not in yet; or bad, and rejected once whole (bounded by the meta check).
  const std::string refusal = authentication_refusal(meta);
  if (refusal.empty())
    return;  // Verified: the body is read as usual, the frame dispatched when whole.
  // Answered now, before its body is read; the body never will be.
  frames_ended_ = true;
  IoThread::StreamReply stream_reply{
      meta.has_stream_settings() && meta.stream_settings().stream_id() >= 0
          ? meta.stream_settings().stream_id()
          : kInvalidStreamId,
      meta.stream_settings().need_feedback(), nullptr};
  io_thread_.answer(*this, meta.correlation_id(), nullptr, to_int(ErrorCode::kUnauthorized),
                    refusal, nullptr, std::string(), last_read_at_, CompressType::kNone, {},
                    stream_reply.remote_id >= 0 ? &stream_reply : nullptr);
}

void ServerConnection::on_stream_frame(const StreamFrame& frame) {
  const auto found = streams_.find(frame.stream_id());
  if (found == streams_.end()) {
    // What the peer had in flight when its stream ended here (a FEEDBACK
    // for messages before our CLOSE, a CLOSE that crossed ours, its RST to
    // our last DATA) is expected: dropped quietly. DATA is answered RST, as
    // brpc answers it.
    const auto remembered = recently_ended_.begin() + recently_ended_count_;
    if (frame.type() != wire::FRAME_TYPE_DATA &&
        std::find(recently_ended_.begin(), remembered, frame.stream_id()) != remembered)
      return;
    core_.stream_frames_for_unknown_streams.fetch_add(1, std::memory_order_relaxed);
    // brpc answers a frame for a stream it does not know with RST to the
    // sender's stream; an RST is never answered (it carries no source).
    if (frame.type() != wire::FRAME_TYPE_RST && frame.meta.has_source_stream_id()) {
      encode_stream_frame(rst_frame_meta(frame.meta.source_stream_id()), std::string(),
                          core_.options.max_body_bytes, pending_output_);
    }
    return;
  }
  std::shared_ptr<StreamCore> stream = found->second;
  if (frame.type() == wire::FRAME_TYPE_DATA &&
      (streams_with_input_.empty() || streams_with_input_.back() != stream)) {
    streams_with_input_.push_back(stream);
  }
  stream->on_frame(frame);
  if (stream->ended())
    forget_stream(stream->id());
}

void ServerConnection::deliver_stream_input() {
  // A stream may appear twice (input interleaved with another's): deliver()
  // is then a no-op the second time.
  for (const std::shared_ptr<StreamCore>& stream : streams_with_input_)
    stream->deliver();
  streams_with_input_.clear();
}

void ServerConnection::add_stream(std::shared_ptr<StreamCore> stream, StreamId remote_id,
                                  bool remote_needs_feedback, bool remote_writable) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kOpen) {
    // The connection reads no more: the stream could never hear back.
    stream->end(StreamEndReason::kConnectionBroken);
    return;
  }
  if (stream_carrier_ == nullptr)
    stream_carrier_ = std::make_shared<ConnectionStreamCarrier>(io_thread_, id_);
  if (!stream->connect(remote_id, remote_needs_feedback, remote_writable, stream_carrier_))
    return;  // The handler's side already ended it.
  streams_.emplace(stream->id(), stream);
  core_.streams_accepted.fetch_add(1, std::memory_order_relaxed);
  take_stream_output(stream);
}

void ServerConnection::forget_stream(StreamId id) {
  streams_.erase(id);
  recently_ended_[recently_ended_next_] = id;
  recently_ended_next_ = (recently_ended_next_ + 1) % recently_ended_.size();
  recently_ended_count_ = std::min(recently_ended_count_ + 1, recently_ended_.size());
}

void ServerConnection::stream_call_answered() {
  io_thread_.assert_in_loop_thread();
  if (stream_calls_in_flight_ > 0)
    --stream_calls_in_flight_;
}

void ServerConnection::take_stream_output(const std::shared_ptr<StreamCore>& stream) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed || streams_.count(stream->id()) == 0)
    return;
  if (const std::optional<StreamEndReason> end = stream->take_outbox(pending_output_)) {
    forget_stream(stream->id());
    stream->end(*end);
  }
  if (!in_pass_)
    pump();
}

void ServerConnection::end_streams(bool send_close, StreamEndReason reason) {
  if (streams_.empty())
    return;
  // Messages decoded in this pass before the end are the handlers' first.
  deliver_stream_input();
  std::unordered_map<StreamId, std::shared_ptr<StreamCore>> streams;
  streams.swap(streams_);
  for (auto& [id, stream] : streams) {
    if (send_close) {
      stream->Close();
      const std::optional<StreamEndReason> end = stream->take_outbox(pending_output_);
      stream->end(end.value_or(reason));
    } else {
      stream->end(reason);
    }
  }
}

void ServerConnection::call_answered() {
  io_thread_.assert_in_loop_thread();
  PERCORE_ASSERT(in_flight_calls_ > 0);
  --in_flight_calls_;
  // Inside a read pass (an inline handler) the pass's event pumps at its end.
  if (!in_pass_ && state_ != State::kClosed)
    pump();
}

void ServerConnection::flush() {
  if (writing_ || in_pass_ || state_ == State::kClosed)
    return;
  if (writing_output_.empty()) {
    if (pending_output_.empty())
      return;
    pending_output_.swap(writing_output_);
  }
  write_buffers_.clear();
  if (socket_.is_tls() && writing_output_.chunk_count() > 1) {
    // Asio's TLS stream writes only a sequence's first buffer per call:
    // answers are gathered into one record's worth instead.
    tls_write_buffer_.clear();
    for (size_t i = 0; i < writing_output_.chunk_count(); ++i) {
      const std::string_view chunk = writing_output_.chunk(i);
      const size_t room = kTlsRecordBytes - tls_write_buffer_.size();
      tls_write_buffer_.append(chunk.substr(0, room));
      if (chunk.size() >= room)
        break;
    }
    write_buffers_.emplace_back(tls_write_buffer_.data(), tls_write_buffer_.size());
  } else {
    for (size_t i = 0; i < writing_output_.chunk_count() && i < kMaxWriteBuffers; ++i) {
      const std::string_view chunk = writing_output_.chunk(i);
      write_buffers_.emplace_back(chunk.data(), chunk.size());
    }
  }
  writing_ = true;
  if (state_ != State::kOpen)
    write_stalled_since_ = Clock::now();
  auto on_written = [self = shared_from_this()](const boost::system::error_code& error,
                                                size_t bytes) { self->on_written(error, bytes); };
  // One write_some at a time, not async_write: each completion is progress
  // (a slow reader that keeps reading is never taken for a stalled one), and
  // the rest follows from on_written. The handler keeps a copy of the buffer
  // sequence: a vector would be copied (allocated) per write, so the usual
  // single-chunk batch goes as one buffer.
  if (write_buffers_.size() == 1) {
    socket_.async_write_some(write_buffers_.front(), std::move(on_written));
  } else {
    socket_.async_write_some(write_buffers_, std::move(on_written));
  }
}

void ServerConnection::on_written(const boost::system::error_code& error, size_t bytes) {
  io_thread_.assert_in_loop_thread();
  writing_ = false;
  if (state_ == State::kClosed) {
    writing_output_.clear();
    return;
  }
  if (error) {
    abort(CloseReason::kConnectionError);
    return;
  }
  writing_output_.consume(bytes);
  bytes_written_ += bytes;
  if (core_.options.idle_timeout_ms > 0 || state_ != State::kOpen) {
    // Only the idle timeout and a closing connection's linger need the time.
    last_write_at_ = write_stalled_since_ = Clock::now();
  }
  if (write_backpressure_ &&
      unwritten_bytes() <= core_.options.max_unwritten_bytes_per_connection / 2) {
    write_backpressure_ = false;
  }
  pump();
}

void ServerConnection::advance() {
  if (state_ == State::kOpen)
    return;
  if (state_ == State::kDraining && in_flight_calls_ == 0 && !write_backpressure_) {
    // process_frames() ran just before: with nothing in flight and no
    // back-pressure, it dispatched every complete frame there was.
    transition(State::kFlushing);
  }
  if (state_ == State::kFlushing && !writing_ && pending_output_.empty()) {
    // The peer that already sent its FIN needs no lingering.
    transition(input_ended_ ? State::kClosed : State::kLingering);
  }
  // Not before close_notify has gone (its write starts with Asio's
  // shutdown, once a cancelled read is out of the way).
  if (state_ == State::kLingering && !close_notify_pending_ &&
      (input_ended_ || peer_has_everything()))
    transition(State::kClosed);
}

void ServerConnection::note_peer_progress(Clock::time_point now) {
  // Bytes the peer has taken: written by us, less what still waits in the
  // kernel (SIOCOUTQ: unacknowledged bytes; for a Unix socket, bytes the peer
  // has not read). A write completes only when half the socket's buffer is
  // free, so a slow but steady reader shows its progress here first.
  int unacknowledged = 0;
  if (::ioctl(socket_.tcp().native_handle(), SIOCOUTQ, &unacknowledged) != 0)
    return;
  const uint64_t taken = bytes_written_ - static_cast<uint64_t>(std::max(0, unacknowledged));
  if (taken > bytes_taken_by_peer_) {
    bytes_taken_by_peer_ = taken;
    write_stalled_since_ = now;
  }
}

bool ServerConnection::peer_has_everything() const {
  // Nothing unread here (a close would then send a reset, which some stacks
  // let destroy answers the peer has not read yet), and every byte written is
  // acknowledged by the peer (SIOCOUTQ: unacknowledged bytes; for a Unix
  // socket, bytes the peer has not read).
  const int fd = const_cast<ServerSocket&>(socket_).tcp().native_handle();
  int unread = 0;
  int unacknowledged = 0;
  return ::ioctl(fd, FIONREAD, &unread) == 0 && unread == 0 &&
         ::ioctl(fd, SIOCOUTQ, &unacknowledged) == 0 && unacknowledged == 0;
}

void ServerConnection::begin_close(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kOpen)
    return;
  close_reason_ = reason;
  if (handshaking_) {
    abort(reason);  // Nothing is owed before TLS is up.
    return;
  }
  // At a stop the requests already buffered are answered (2003); after a
  // timeout only a partial frame is buffered, and it is dropped.
  frames_ended_ = reason != CloseReason::kServerStopped;
  transition(State::kDraining);
  pump();
}

void ServerConnection::abort(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if (state_ == State::kOpen)
    close_reason_ = reason;
  // A reset, not a FIN: the kernel drops what is unsent at once instead of
  // keeping it for a peer that does not read.
  boost::system::error_code ignored;
  socket_.tcp().set_option(boost::asio::socket_base::linger(true, 0), ignored);
  transition(State::kClosed);
}

bool ServerConnection::has_unread_input() {
  int unread = 0;
  return ::ioctl(socket_.tcp().native_handle(), FIONREAD, &unread) == 0 && unread > 0;
}

void ServerConnection::check_timeouts(Clock::time_point now) {
  io_thread_.assert_in_loop_thread();
  const ServerOptions& options = core_.options;
  const auto linger = std::chrono::milliseconds(options.close_linger_ms);
  if (!streams_.empty()) {
    std::vector<std::shared_ptr<StreamCore>> streams;
    for (const auto& entry : streams_)
      streams.push_back(entry.second);
    for (const std::shared_ptr<StreamCore>& stream : streams)
      stream->check_idle(now);  // Queues CLOSE: take_stream_output ends it.
  }
  switch (state_) {
    case State::kOpen:
      if (handshaking_) {
        // A TLS handshake is bounded as a partial frame is.
        if (options.partial_frame_timeout_ms > 0 &&
            now - last_read_at_ >= std::chrono::milliseconds(options.partial_frame_timeout_ms)) {
          core_.tls_handshake_failures.fetch_add(1, std::memory_order_relaxed);
          core_.tls_log.log(LogLevel::kWarning, [&] {
            return "TLS handshake with " + peer_ + " failed: not done within " +
                   std::to_string(options.partial_frame_timeout_ms) +
                   " ms (partial_frame_timeout_ms)";
          });
          abort(CloseReason::kTlsFailed);
        }
        break;
      }
      // Buffered bytes with nothing blocking dispatch are a partial frame
      // (with TLS, also a record not whole yet, held below the decoder).
      if (options.partial_frame_timeout_ms > 0 &&
          (decoder_.buffered_bytes() > 0 || socket_.tls_input_pending()) &&
          wants_input() &&
          now - last_read_at_ >= std::chrono::milliseconds(options.partial_frame_timeout_ms)) {
        core_.incomplete_frames.fetch_add(1, std::memory_order_relaxed);
        begin_close(CloseReason::kPartialFrameTimeout);
      } else if (options.idle_timeout_ms > 0 && in_flight_calls_ == 0 && unwritten_bytes() == 0 &&
                 streams_.empty() &&
                 (decoder_.buffered_bytes() == 0 || wants_input()) &&
                 now - std::max(last_read_at_, last_write_at_) >=
                     std::chrono::milliseconds(options.idle_timeout_ms) &&
                 !has_unread_input()) {
        // (Bytes in the kernel not read yet, because this sweep ran before
        // their read event, are a request: closing now would discard it
        // after the client sent it.)
        // A partial frame does not make a silent connection busy.
        if (decoder_.buffered_bytes() > 0)
          core_.incomplete_frames.fetch_add(1, std::memory_order_relaxed);
        begin_close(CloseReason::kIdleTimeout);
      }
      break;
    case State::kDraining:
    case State::kFlushing:
      // Waiting for handlers has no bound here (Stop bounds them); answers
      // the peer does not take for close_linger_ms do.
      if (writing_) {
        note_peer_progress(now);
        if (now - write_stalled_since_ >= linger)
          abort(close_reason_);
      }
      break;
    case State::kLingering:
      if (now >= linger_deadline_) {
        abort(close_reason_);
      } else {
        advance();  // The peer may have acknowledged everything since.
      }
      break;
    case State::kClosed:
      break;
  }
}

void ServerConnection::transition(State next) {
  io_thread_.assert_in_loop_thread();
  // Forward only; any state may end in kClosed.
  PERCORE_ASSERT(next == State::kClosed || static_cast<int>(next) == static_cast<int>(state_) + 1);
  PERCORE_ASSERT(state_ != State::kClosed);
  state_ = next;
  boost::system::error_code ignored;
  switch (next) {
    case State::kOpen:
      break;
    case State::kDraining:
      write_stalled_since_ = Clock::now();
      // Nothing more is read, so no stream could hear back: each is closed,
      // its frames written first; after the peer's FIN it is broken.
      end_streams(!input_ended_, input_ended_ ? StreamEndReason::kConnectionBroken
                                               : StreamEndReason::kClosedByUs);
      break;
    case State::kFlushing:
      if (input_ended_ && !frames_ended_ && decoder_.buffered_bytes() > 0)
        core_.incomplete_frames.fetch_add(1, std::memory_order_relaxed);
      break;
    case State::kLingering:
      linger_deadline_ = Clock::now() + std::chrono::milliseconds(core_.options.close_linger_ms);
      if (socket_.is_tls() && !tls_failed_) {
        // TLS ends with close_notify (RFC 8446, 6.1), then TCP's FIN. A read
        // still waiting (no write is, by now) is cancelled first: Asio's
        // shutdown needs the stream to itself.
        close_notify_pending_ = true;
        if (reading_)
          socket_.tcp().cancel();
        else
          start_close_notify();
      } else {
        socket_.tcp().shutdown(boost::asio::ip::tcp::socket::shutdown_send, ignored);
      }
      break;
    case State::kClosed:
      if (handed_over_) {
        io_thread_.remove_connection(id_);  // It is counted open as HTTP now.
        break;
      }
      if (unwritten_bytes() > 0 || in_flight_calls_ > 0) {
        core_.closes_without_flush.fetch_add(1, std::memory_order_relaxed);
        core_.unflushed_close_log.log(LogLevel::kWarning, [&] {
          return "connection from " + peer_ + " closed (" + close_reason_name(close_reason_) +
                 ") with " + std::to_string(unwritten_bytes()) + " answer bytes unwritten and " +
                 std::to_string(in_flight_calls_) + " calls unanswered";
        });
      }
      end_streams(false, StreamEndReason::kConnectionBroken);
      socket_.tcp().close(ignored);
      core_.count_close(close_reason_);
      core_.open_connections.leave();
      io_thread_.remove_connection(id_);
      break;
  }
}

}  // namespace percore::detail
