#include <percore/server_io/detail/web_socket_session.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <utility>

#include <percore/base/log.h>
#include <percore/base/utf8.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/error_code.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/server_io/detail/http_mapping.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/service_table.h>

namespace percore::detail {
namespace {

namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;

// A close frame's reason: UTF-8 (RFC 6455 5.5.1; a path or query may bring
// other bytes into an error text: each is written \xHH, as are control
// characters), at most 123 bytes (5.5: 125 with the code), cut between
// characters.
constexpr size_t kMaxCloseReasonBytes = 123;

std::string bounded_reason(std::string_view text) {
  bool cut = false;
  std::string reason = printable_utf8(text, kMaxCloseReasonBytes, &cut);
  if (!cut)
    return reason;
  return printable_utf8(text, kMaxCloseReasonBytes - 3) + "...";
}

// "code N: text", the reason of a failed call's close.
std::string call_failure_reason(int32_t code, std::string_view text) {
  std::string reason = "code ";
  reason += std::to_string(code);
  reason += ": ";
  reason += text;
  return reason;
}

// Wakes the session's I/O thread for the stream's queued frames. Holds the
// session weakly: the stream (which holds its carrier) may outlive it.
class WebSocketStreamCarrier final : public StreamCarrier {
 public:
  WebSocketStreamCarrier(IoThread& io_thread, std::weak_ptr<WebSocketSession> session)
      : io_thread_(io_thread), gate_(io_thread.stream_gate()), session_(std::move(session)) {}
  void wake(const std::shared_ptr<StreamCore>& stream) override {
    gate_->run_if_open([&] {
      boost::asio::post(io_thread_.context(), [session = session_, stream] {
        if (std::shared_ptr<WebSocketSession> alive = session.lock()) {
          alive->take_stream_output();
        } else {
          stream->end(StreamEndReason::kConnectionBroken);
        }
      });
    });
  }

 private:
  IoThread& io_thread_;
  const std::shared_ptr<CarrierGate> gate_;  // Closed when the I/O thread goes.
  const std::weak_ptr<WebSocketSession> session_;
};

// A message as one line of JSON: message_to_json() ends an HTTP body with a
// newline, which a WebSocket message does not need.
bool message_to_json_line(const google::protobuf::Message& message, std::string* json,
                          std::string* error) {
  if (!message_to_json(message, json, error))
    return false;
  while (!json->empty() && json->back() == '\n')
    json->pop_back();
  return true;
}

FrameDecoderOptions outbox_decoder_options(const ServerOptions& options) {
  FrameDecoderOptions decoder;
  decoder.max_body_bytes = options.max_body_bytes;
  decoder.accept_stream_frames = true;
  return decoder;
}

}  // namespace

uint16_t web_socket_close_code_for(int32_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kServerStopping:
      return websocket::close_code::going_away;
    case ErrorCode::kOvercrowded:
    case ErrorCode::kServerLimitReached:
      return websocket::close_code::try_again_later;
    case ErrorCode::kNoService:
    case ErrorCode::kNoMethod:
    case ErrorCode::kBadRequest:
    case ErrorCode::kUnauthorized:
      return websocket::close_code::policy_error;
    default:
      return websocket::close_code::internal_error;
  }
}

WebSocketSession::WebSocketSession(IoThread& io_thread, ServerCore& core,
                                   ServerSocket socket, uint64_t id,
                                   std::string peer, Request request,
                                   Clock::time_point received_at)
    : io_thread_(io_thread),
      core_(core),
      ws_(std::move(socket), StreamCore::max_message_bytes_for(core.options.max_body_bytes),
          "max_body_bytes less 40 for the stream frame"),
      id_(id),
      peer_(std::move(peer)),
      request_(std::move(request)),
      received_at_(received_at),
      peer_stream_id_(next_stream_id()),
      outbox_decoder_(outbox_decoder_options(core.options)) {}

WebSocketSession::~WebSocketSession() = default;

void WebSocketSession::start() {
  io_thread_.assert_in_loop_thread();
  websocket::stream_base::timeout timeout;
  // Bounds the opening handshake's answer and the closing handshake; the
  // stream's own idle timeout applies in between.
  timeout.handshake_timeout = std::chrono::milliseconds(core_.options.close_linger_ms);
  timeout.idle_timeout = websocket::stream_base::none();
  timeout.keep_alive_pings = false;
  ws_.set_option(timeout);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& response) { response.set(http::field::server, "percore"); }));
  // The frame watch refuses a message past the limit at its header, with a
  // reason: Beast's own read_message_max would close 1009 with none, and
  // Boost 1.74's teardown then closes the socket with the message's bytes
  // unread, a reset that can destroy the close frame.
  ws_.read_message_max(0);
  ws_.auto_fragment(false);
  ws_.next_layer().set_on_close_held([session = weak_from_this()] {
    if (std::shared_ptr<WebSocketSession> alive = session.lock())
      alive->on_client_close();
  });
  ws_.async_accept(*request_, [self = shared_from_this()](const boost::system::error_code& error) {
    self->on_accepted(error);
  });
}

void WebSocketSession::on_accepted(const boost::system::error_code& error) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if (error) {
    core_.web_socket_log.log(LogLevel::kWarning, [&] {
      return "WebSocket handshake with " + peer_ + " failed: " + error.message();
    });
    close_reason_ = CloseReason::kConnectionError;
    transition(State::kClosed);
    return;
  }
  core_.web_sockets_accepted.fetch_add(1, std::memory_order_relaxed);
  core_.web_sockets_open.fetch_add(1, std::memory_order_relaxed);
  counted_open_ = true;
  // From here the sweep bounds the closing handshake (check_timeouts), which
  // chooses between a FIN and a reset; Beast's own clock would race it.
  websocket::stream_base::timeout timeout;
  timeout.handshake_timeout = websocket::stream_base::none();
  timeout.idle_timeout = websocket::stream_base::none();
  timeout.keep_alive_pings = false;
  ws_.set_option(timeout);
  dispatch();
}

void WebSocketSession::dispatch() {
  io_thread_.assert_in_loop_thread();
  const Request& request = *request_;
  const std::string_view target(request.target().data(), request.target().size());
  const size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  auto fail_call = [&](MethodEntry* method, ErrorCode code, const std::string& text) {
    io_thread_.count_answer(method, to_int(code), received_at_);
    close_after_writes(web_socket_close_code_for(to_int(code)),
                       call_failure_reason(to_int(code), text));
  };
  if (core_.stopping.load(std::memory_order_acquire) || stopping_) {
    close_reason_ = CloseReason::kServerStopped;
    fail_call(nullptr, ErrorCode::kServerStopping, "server is stopping");
    return;
  }
  // /ws/<package.Service>/<Method>
  const std::string_view rest = path.substr(std::min<size_t>(path.size(), 4));
  const size_t slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) {
    fail_call(nullptr, ErrorCode::kNoService,
              "streams are at /ws/<package.Service>/<Method>, not " + std::string(path));
    return;
  }
  const std::string service_name(rest.substr(0, slash));
  const std::string method_name(rest.substr(slash + 1));
  const auto* methods = core_.services.find_service(service_name);
  if (methods == nullptr) {
    fail_call(nullptr, ErrorCode::kNoService, "no such service: " + service_name);
    return;
  }
  MethodEntry* method = ServiceTable::find_method(*methods, method_name);
  if (method == nullptr) {
    fail_call(nullptr, ErrorCode::kNoMethod,
              "no such method: " + service_name + "." + method_name);
    return;
  }
  method_ = method;
  ServerCall* call = io_thread_.acquire_call(*method, id_, 0, received_at_);
  std::string parse_error;
  if (!message_from_query(query, *call->request(), &parse_error)) {
    io_thread_.recycle(call);
    core_.bad_request_log.log(LogLevel::kWarning, [&] {
      return "closing WebSocket from " + peer_ + " with 1008: request to " + method->full_name +
             " " + parse_error;
    });
    fail_call(method, ErrorCode::kBadRequest, "request " + parse_error);
    return;
  }
  call->set_request_context(peer_, auth_context_, wire::RpcRequestMeta(), std::string_view(),
                            query.size());
  if (ws_.next_layer().stream().is_tls()) {
    std::string subject = ws_.next_layer().stream().peer_certificate_subject();
    if (!subject.empty())
      call->set_peer_certificate_subject(std::make_shared<const std::string>(std::move(subject)));
  }
  // In a worker process (kProcessPool) the handler's end is the worker's,
  // and this session drives the server's relay of it as it would a stream.
  call->set_remote_stream(peer_stream_id_, /*remote_needs_feedback=*/true,
                          /*remote_writable=*/true,
                          core_.options.max_streams_per_connection > 0);
  request_.reset();
  transition(State::kCalling);
  io_thread_.run_call(call);
}

void WebSocketSession::answer_call(ServerCall& call) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kCalling)
    return;
  MethodEntry* method = &call.method();
  int32_t code = call.controller().ErrorCode();
  std::string text = code == 0 ? std::string() : call.controller().ErrorText();
  std::string json;
  if (code == 0) {
    std::string error;
    if (!call.response()->IsInitialized()) {
      code = to_int(ErrorCode::kInternal);
      text = "response misses required fields: " + call.response()->InitializationErrorString();
    } else if (!message_to_json_line(*call.response(), &json, &error)) {
      code = to_int(ErrorCode::kInternal);
      text = std::move(error);
    } else if (json.size() > core_.options.max_body_bytes) {
      code = to_int(ErrorCode::kInternal);
      text = "response exceeds max_body_bytes (" + std::to_string(core_.options.max_body_bytes) +
             ") as JSON";
    }
    call.note_answer_bytes(json.size());
  }
  io_thread_.count_answer(method, code, received_at_);
  if (code != 0) {
    // An accepted stream stays in the call: IoThread ends it kNotAccepted.
    close_after_writes(web_socket_close_code_for(code), call_failure_reason(code, text));
    return;
  }
  std::shared_ptr<StreamCore> stream = call.take_accepted_stream();
  if (stream == nullptr) {
    queue_message(std::move(json), /*text=*/true, 0);
    close_after_writes(websocket::close_code::policy_error, "the handler did not accept a stream");
    return;
  }
  carrier_ = std::make_shared<WebSocketStreamCarrier>(io_thread_, weak_from_this());
  if (!stream->connect(peer_stream_id_, /*peer_needs_feedback=*/true, /*peer_writable=*/true,
                       carrier_)) {
    queue_message(std::move(json), /*text=*/true, 0);
    close_after_writes(websocket::close_code::internal_error,
                       "the stream ended before it connected");
    return;
  }
  stream_ = std::move(stream);
  if (method->stream_input_prototype != nullptr)
    input_message_.reset(method->stream_input_prototype->New());
  if (method->stream_output_prototype != nullptr)
    output_message_.reset(method->stream_output_prototype->New());
  // Counted before the response goes (the client may read it at once); the
  // handler's early messages follow it (take_stream_output, below or posted).
  core_.streams_accepted.fetch_add(1, std::memory_order_relaxed);
  queue_message(std::move(json), /*text=*/true, 0);
  transition(State::kOpen);
  if (stopping_)
    stream_->Close();  // Stop came while the call ran.
  take_stream_output();
  read_message();
}

void WebSocketSession::answer_abandoned_call(MethodEntry* method) {
  io_thread_.assert_in_loop_thread();
  if (state_ != State::kCalling)
    return;
  const int32_t code = to_int(ErrorCode::kServerStopping);
  io_thread_.count_answer(method, code, received_at_);
  close_after_writes(web_socket_close_code_for(code),
                     call_failure_reason(code, "server stopped before the handler finished"));
}

void WebSocketSession::read_message() {
  io_thread_.assert_in_loop_thread();
  if (reading_ || state_ != State::kOpen || close_ || stream_ == nullptr)
    return;
  // Between messages, the handler may not have reported enough consumed:
  // then wait for its FEEDBACK.
  if (read_buffer_.size() == 0 && !client_window_.can_write()) {
    read_paused_ = true;
    return;
  }
  if (read_paused_) {
    // What the client sent meanwhile waited on us, not on it.
    read_paused_ = false;
    ws_.next_layer().watch().restart_clock(Clock::now());
  }
  reading_ = true;
  // The watch keeps a message within the stream's largest.
  const size_t limit =
      StreamCore::max_message_bytes_for(core_.options.max_body_bytes) + 1 - read_buffer_.size();
  ws_.async_read_some(
      read_buffer_, limit,
      [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
        self->on_read(error, bytes);
      });
}

void WebSocketSession::on_read(const boost::system::error_code& error, size_t) {
  io_thread_.assert_in_loop_thread();
  reading_ = false;
  if (state_ == State::kClosed || error == boost::asio::error::operation_aborted)
    return;  // A close or a reset took over.
  if (error == websocket::error::closed) {
    // The client's close frame; Beast answered it and closes the socket.
    if (std::shared_ptr<StreamCore> stream = std::move(stream_)) {
      StreamFrame close;
      close.meta = close_frame_meta(stream->id(), peer_stream_id_);
      stream->on_frame(close);  // kClosedByPeer, after what came before.
    }
    close_reason_ = CloseReason::kPeerClosed;
    transition(State::kClosed);
    return;
  }
  if (error && ws_.next_layer().watch().violation()) {
    refuse_violation();
    return;
  }
  if (error) {
    fail(error);
    return;
  }
  if (stream_ == nullptr || close_) {
    read_buffer_.consume(read_buffer_.size());
    return;  // Ending: nobody takes it.
  }
  if (!ws_.is_message_done()) {
    // Begun: it must end within partial_frame_timeout_ms (check_timeouts).
    read_message();  // The rest of the message.
    return;
  }
  const auto bytes = read_buffer_.cdata();
  const std::string_view received(static_cast<const char*>(bytes.data()), bytes.size());
  std::string data;
  if (input_message_ != nullptr && ws_.got_text()) {
    std::string parse_error;
    input_message_->Clear();
    if (!message_from_json(received, *input_message_, &parse_error)) {
      read_buffer_.consume(read_buffer_.size());
      refuse(websocket::close_code::bad_payload,
             "not a " + input_message_->GetDescriptor()->full_name() + ": " + parse_error,
             StreamEndReason::kResetByPeer);
      return;
    }
    if (!input_message_->IsInitialized()) {
      read_buffer_.consume(read_buffer_.size());
      refuse(websocket::close_code::bad_payload,
             "not a " + input_message_->GetDescriptor()->full_name() +
                 ": missing required fields " + input_message_->InitializationErrorString(),
             StreamEndReason::kResetByPeer);
      return;
    }
    input_message_->SerializeToString(&data);
  } else {
    data.assign(received);
  }
  read_buffer_.consume(read_buffer_.size());
  if (data.size() > stream_->max_message_bytes()) {
    refuse(websocket::close_code::too_big,
           "a message of " + std::to_string(data.size()) + " bytes as protobuf exceeds " +
               std::to_string(stream_->max_message_bytes()) +
               " (max_body_bytes less 40 for the stream frame)",
           StreamEndReason::kMessageTooLarge);
    return;
  }
  client_window_.on_written(data.size());
  StreamFrame frame;
  frame.meta = data_frame_meta(stream_->id(), peer_stream_id_);
  frame.data = data;
  frame.body_bytes = static_cast<uint32_t>(data.size());
  // As a peer's DATA: handed to the handler at once (one message a batch),
  // and its FEEDBACK comes back through the outbox.
  std::shared_ptr<StreamCore> stream = stream_;
  stream->on_frame(frame);
  stream->deliver();
  read_message();
}

void WebSocketSession::refuse_violation() {
  io_thread_.assert_in_loop_thread();
  // Beast failed the read: it writes nothing more, and its write in flight
  // (if any) ends, so the close goes out raw once that one is done.
  raw_close_ = true;
  read_buffer_.consume(read_buffer_.size());
  const WebSocketFrameWatch::Violation violation = *ws_.next_layer().watch().violation();
  if (violation.close_code == websocket::close_code::too_big) {
    core_.count_rejected(DecodeStatus::kBodyTooLarge);
    refuse(violation.close_code, violation.reason, StreamEndReason::kMessageTooLarge);
  } else {
    refuse(violation.close_code, violation.reason, StreamEndReason::kResetByPeer);
  }
}

void WebSocketSession::on_client_close() {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed || client_closing_)
    return;
  client_closing_ = true;
  linger_deadline_ = Clock::now() + std::chrono::milliseconds(core_.options.close_linger_ms);
  if (std::shared_ptr<StreamCore> stream = stream_) {
    StreamFrame close;
    close.meta = close_frame_meta(stream->id(), peer_stream_id_);
    // The stream ends here (kClosedByPeer, after the messages before it):
    // as brpc's, a stream's close is both ways, so what the handler wrote
    // until then is all it owes.
    stream->on_frame(close);
    take_stream_output();
    stream_.reset();
  }
  write_next();  // Once that is written, Beast answers the close.
}

void WebSocketSession::take_stream_output() {
  io_thread_.assert_in_loop_thread();
  if (stream_ == nullptr || state_ == State::kClosed)
    return;
  std::shared_ptr<StreamCore> stream = stream_;
  GatherBuffer output;
  const std::optional<StreamEndReason> end = stream->take_outbox(output);
  for (size_t i = 0; i < output.chunk_count(); ++i) {
    outbox_decoder_.feed(output.chunk(i));
    for (;;) {
      const DecodeStatus status = outbox_decoder_.next(frame_, stream_frame_);
      if (status == DecodeStatus::kNeedMore)
        break;
      // The stream encodes only stream frames within the limit.
      PERCORE_ASSERT(status == DecodeStatus::kStreamFrame);
      on_handler_frame(stream_frame_);
      if (state_ == State::kClosed || stream_ != stream)
        return;
    }
  }
  outbox_decoder_.release();
  if (end)
    end_stream(*end);
}

void WebSocketSession::on_handler_frame(const StreamFrame& frame) {
  switch (frame.type()) {
    case wire::FRAME_TYPE_DATA: {
      if (close_)
        return;  // Refused or closing: nothing more goes out.
      if (output_message_ != nullptr) {
        std::string json;
        std::string error;
        output_message_->Clear();
        if (!output_message_->ParseFromArray(frame.data.data(), static_cast<int>(frame.data.size())) ||
            !message_to_json_line(*output_message_, &json, &error)) {
          refuse(websocket::close_code::internal_error,
                 "the handler wrote a message that is not a " +
                     output_message_->GetDescriptor()->full_name(),
                 StreamEndReason::kResetByPeer);
          return;
        }
        queue_message(std::move(json), /*text=*/true, frame.data.size());
      } else {
        queue_message(std::string(frame.data), is_valid_utf8(frame.data), frame.data.size());
      }
      return;
    }
    case wire::FRAME_TYPE_FEEDBACK:
      // The handler consumed the client's messages: reading may resume.
      client_window_.on_feedback(frame.meta.feedback().consumed_size());
      read_message();
      return;
    default:
      // CLOSE and RST: take_outbox() said how the stream ends.
      return;
  }
}

void WebSocketSession::end_stream(StreamEndReason reason) {
  std::shared_ptr<StreamCore> stream = std::move(stream_);
  if (stream == nullptr)
    return;
  stream->end(reason);
  if (client_closing_) {
    write_next();  // What is queued, then Beast answers the client's close.
    return;
  }
  switch (reason) {
    case StreamEndReason::kClosedByUs:
      if (stopping_ || core_.stopping.load(std::memory_order_acquire)) {
        close_after_writes(websocket::close_code::going_away, "server stopping");
      } else {
        close_after_writes(websocket::close_code::normal, "");
      }
      return;
    case StreamEndReason::kIdleTimeout:
      close_reason_ = CloseReason::kIdleTimeout;
      close_after_writes(websocket::close_code::normal, "idle timeout");
      return;
    case StreamEndReason::kMessageTooLarge:
      close_after_writes(websocket::close_code::too_big, "message too large");
      return;
    case StreamEndReason::kResetByPeer:
      // The handler's end reset the stream, or its worker process died.
      close_after_writes(websocket::close_code::internal_error,
                         "the handler's stream was reset (its worker process may have died)");
      return;
    default:
      close_after_writes(websocket::close_code::internal_error,
                         "stream ended: " + std::string(stream_end_reason_name(reason)));
      return;
  }
}

void WebSocketSession::refuse(uint16_t code, std::string text, StreamEndReason reason) {
  core_.web_socket_log.log(LogLevel::kWarning, [&] {
    return "closing WebSocket from " + peer_ + " with " + std::to_string(code) + ": " + text;
  });
  if (code != websocket::close_code::internal_error) {
    close_reason_ = CloseReason::kRejectedFrame;
    core_.web_socket_messages_rejected.fetch_add(1, std::memory_order_relaxed);
  }
  if (std::shared_ptr<StreamCore> stream = std::move(stream_)) {
    if (reason == StreamEndReason::kResetByPeer) {
      StreamFrame rst;
      rst.meta = rst_frame_meta(stream->id());
      stream->on_frame(rst);
    } else {
      stream->end(reason);
    }
  }
  // What waits to be written is dropped (but the write in flight).
  while (outgoing_.size() > (writing_ ? 1u : 0u))
    outgoing_.pop_back();
  close_after_writes(code, std::move(text));
}

void WebSocketSession::queue_message(std::string payload, bool text, uint64_t stream_bytes) {
  outgoing_.push_back(Outgoing{std::move(payload), text, stream_bytes});
  write_next();
}

void WebSocketSession::write_next() {
  io_thread_.assert_in_loop_thread();
  if (writing_ || state_ == State::kClosing || state_ == State::kClosed)
    return;
  if (outgoing_.empty()) {
    if (close_ && raw_close_) {
      close_raw();
    } else if (client_closing_ && !close_) {
      // Everything owed is written once the stream has ended: Beast reads
      // the client's close and answers it (echoing its code).
      if (stream_ == nullptr)
        ws_.next_layer().release_close();
    } else if (close_) {
      transition(State::kClosing);
      // Beast's close reads until the client's close: hold it no longer.
      ws_.next_layer().release_close();
      ws_.async_close(*close_, [self = shared_from_this()](const boost::system::error_code& error) {
        self->on_closed(error);
      });
    }
    return;
  }
  Outgoing& next = outgoing_.front();
  writing_ = true;
  ws_.text(next.text);
  ws_.async_write(boost::asio::buffer(next.payload),
                  [self = shared_from_this()](const boost::system::error_code& error,
                                              size_t bytes) { self->on_written(error, bytes); });
}

void WebSocketSession::on_written(const boost::system::error_code& error, size_t) {
  io_thread_.assert_in_loop_thread();
  writing_ = false;
  if (state_ == State::kClosed)
    return;
  // Beast says aborted for a write it finished once the stream failed.
  if (error && !(raw_close_ && error == boost::asio::error::operation_aborted)) {
    fail(error);
    return;
  }
  const uint64_t stream_bytes = outgoing_.front().stream_bytes;
  outgoing_.pop_front();
  if (close_ || client_closing_)
    linger_deadline_ = Clock::now() + std::chrono::milliseconds(core_.options.close_linger_ms);
  written_to_client_ += stream_bytes;
  if (stream_bytes > 0 && stream_ != nullptr && stream_->needs_feedback()) {
    // The client has the message: the handler's window reopens by it.
    std::shared_ptr<StreamCore> stream = stream_;
    StreamFrame feedback;
    feedback.meta = feedback_frame_meta(stream->id(), peer_stream_id_,
                                        static_cast<int64_t>(written_to_client_));
    stream->on_frame(feedback);
  }
  write_next();
}

void WebSocketSession::close_after_writes(uint16_t code, std::string reason) {
  io_thread_.assert_in_loop_thread();
  if (close_ || state_ == State::kClosing || state_ == State::kClosed)
    return;
  close_.emplace(websocket::close_reason(static_cast<websocket::close_code>(code), bounded_reason(std::move(reason))));
  linger_deadline_ = Clock::now() + std::chrono::milliseconds(core_.options.close_linger_ms);
  write_next();
}

void WebSocketSession::on_closed(const boost::system::error_code& error) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if (error && error != boost::asio::error::operation_aborted) {
    core_.web_socket_log.log(LogLevel::kInfo, [&] {
      return "WebSocket from " + peer_ + " did not finish its close handshake: " + error.message();
    });
  }
  transition(State::kClosed);
}

void WebSocketSession::close_raw() {
  io_thread_.assert_in_loop_thread();
  transition(State::kClosing);
  // RFC 6455 5.5.1: FIN and opcode 8, unmasked from a server; the payload
  // is the code (big-endian) and the reason, 125 bytes at most.
  const std::string_view reason(close_->reason.data(), close_->reason.size());
  raw_close_frame_.clear();
  raw_close_frame_ += static_cast<char>(0x88);
  raw_close_frame_ += static_cast<char>(2 + reason.size());
  raw_close_frame_ += static_cast<char>(close_->code >> 8);
  raw_close_frame_ += static_cast<char>(close_->code & 0xFF);
  raw_close_frame_.append(reason);
  boost::asio::async_write(
      ws_.next_layer().stream(), boost::asio::buffer(raw_close_frame_),
      [self = shared_from_this()](const boost::system::error_code& error, size_t) {
        if (self->state_ == State::kClosed)
          return;
        if (error) {
          self->transition(State::kClosed);
          return;
        }
        // Half-close, then wait for the client's FIN: closing now, with its
        // frames unread, would reset the connection and could destroy the
        // close frame before the client reads it.
        boost::system::error_code ignored;
        self->ws_.next_layer().next_layer().shutdown(boost::asio::socket_base::shutdown_send,
                                                     ignored);
        self->drain_until_eof();
      });
}

void WebSocketSession::drain_until_eof() {
  ws_.next_layer().next_layer().async_read_some(
      boost::asio::buffer(drain_buffer_),
      [self = shared_from_this()](const boost::system::error_code& error, size_t) {
        if (self->state_ == State::kClosed)
          return;
        if (error) {
          self->transition(State::kClosed);  // EOF: the client closed too.
          return;
        }
        self->drain_until_eof();  // Bounded by close_linger_ms.
      });
}

void WebSocketSession::fail(const boost::system::error_code& error) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if (std::shared_ptr<StreamCore> stream = std::move(stream_))
    stream->end(StreamEndReason::kConnectionBroken);
  close_reason_ = error == boost::asio::error::eof ? CloseReason::kPeerClosed
                                                   : CloseReason::kConnectionError;
  if (!outgoing_.empty()) {
    core_.closes_without_flush.fetch_add(1, std::memory_order_relaxed);
    core_.unflushed_close_log.log(LogLevel::kWarning, [&] {
      return "WebSocket from " + peer_ + " ended (" + error.message() + ") with " +
             std::to_string(outgoing_.size()) + " messages unwritten";
    });
  }
  transition(State::kClosed);
}

void WebSocketSession::begin_close(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed || stopping_)
    return;
  stopping_ = true;
  if (close_ || state_ == State::kClosing)
    return;
  close_reason_ = reason;
  if (state_ == State::kOpen && stream_ != nullptr) {
    // The handler's messages go first, then its stream ends kClosedByUs and
    // end_stream() closes 1001.
    stream_->Close();
    take_stream_output();
  } else if (state_ == State::kOpen) {
    close_after_writes(websocket::close_code::going_away, "server stopping");
  }
  // kHandshaking: dispatch() sees the stop; kCalling: the call's answer
  // (or Stop's 2003 for it) closes.
}

void WebSocketSession::abort(CloseReason reason) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if (!stopping_ && !close_)
    close_reason_ = reason;
  if (!outgoing_.empty() || state_ == State::kCalling) {
    core_.closes_without_flush.fetch_add(1, std::memory_order_relaxed);
    core_.unflushed_close_log.log(LogLevel::kWarning, [&] {
      return "WebSocket from " + peer_ + " reset (" + close_reason_name(close_reason_) +
             ") with its messages unwritten";
    });
  }
  boost::system::error_code ignored;
  ws_.next_layer().next_layer().set_option(boost::asio::socket_base::linger(true, 0), ignored);
  transition(State::kClosed);
}

void WebSocketSession::check_timeouts(Clock::time_point now) {
  io_thread_.assert_in_loop_thread();
  if (state_ == State::kClosed)
    return;
  if ((close_ || client_closing_) && now >= linger_deadline_) {
    // The client neither took what was owed nor answered the close (or,
    // having closed, did not take what was owed). With all of it in the
    // client's hands a FIN ends the connection; with some still unsent (here
    // or in the kernel) a reset, which frees it at once.
    int unsent = 0;
    const bool all_sent = outgoing_.empty() && !writing_ &&
                          ::ioctl(ws_.next_layer().next_layer().native_handle(), SIOCOUTQ,
                                  &unsent) == 0 &&
                          unsent == 0;
    if (all_sent) {
      transition(State::kClosed);
    } else {
      abort(close_reason_);
    }
    return;
  }
  // A frame or message begun (a half header too) and not finished in time,
  // as a request over HTTP; only while the session waits on the client.
  const int partial_ms = core_.options.partial_frame_timeout_ms;
  const std::optional<Clock::time_point> begun = ws_.next_layer().watch().incomplete_since();
  if (state_ == State::kOpen && reading_ && !close_ && begun && partial_ms > 0 &&
      now - *begun >= std::chrono::milliseconds(partial_ms)) {
    refuse(websocket::close_code::policy_error,
           "a message was begun and not finished within " + std::to_string(partial_ms) +
               " ms (partial_frame_timeout_ms)",
           StreamEndReason::kResetByPeer);
    return;
  }
  if (state_ == State::kOpen && stream_ != nullptr)
    stream_->check_idle(now);  // Queues CLOSE: take_stream_output() ends it.
}

void WebSocketSession::transition(State next) {
  io_thread_.assert_in_loop_thread();
  PERCORE_ASSERT(state_ != State::kClosed);
  state_ = next;
  if (next != State::kClosed)
    return;
  if (std::shared_ptr<StreamCore> stream = std::move(stream_))
    stream->end(StreamEndReason::kConnectionBroken);
  ws_.next_layer().abort_waiting_read();
  // outgoing_ stays: a write in flight still refers to its front.
  boost::system::error_code ignored;
  ws_.next_layer().next_layer().close(ignored);
  if (counted_open_)
    core_.web_sockets_open.fetch_sub(1, std::memory_order_relaxed);
  core_.count_close(close_reason_);
  core_.open_connections.leave();
  io_thread_.remove_web_socket(id_);
}

}  // namespace percore::detail
