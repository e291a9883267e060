#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <percore/server_io/detail/asio.h>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/proto/detail/stream_window.h>
#include <percore/server_io/detail/server_call.h>
#include <percore/server_io/detail/watched_socket.h>
#include <percore/server_io/server_stats.h>

namespace google::protobuf {
class Message;
}

namespace percore::detail {

class IoThread;
struct ServerCore;
struct MethodEntry;

// The WebSocket close code for a call that failed with percore error `code`:
// 2003 → 1001 (going away); 1011, 2004 → 1013 (try again later); 1001,
// 1002, 1003, 1004 → 1008 (policy violation: the client asked for what is
// not there or not allowed); anything else → 1011 (internal error).
uint16_t web_socket_close_code_for(int32_t code);

// A browser's stream: `GET /ws/<package.Service>/<Method>?<query>` with a
// WebSocket upgrade. HttpConnection hands over its socket and the parsed
// upgrade request; the session completes the handshake (101), runs the call
// (its request from the query, as `GET /<package.Service>/<Method>`) with a
// remote stream attached, sends the call's response as JSON in the first
// message, then carries the stream: one WebSocket message per stream message
// each way, JSON when ServiceOptions::method_stream_types names the types.
//
// The session is the stream's peer, and speaks to the handler's StreamCore
// exactly as a baidu_std client's frames would: the client's messages go in
// as DATA frames (on_frame + deliver), its close as CLOSE, a refusal as RST,
// and what the handler writes is read back from the stream's outbox (DATA,
// FEEDBACK, CLOSE, RST). Flow control, both ways, by the stream's windows:
//  - client → handler: the session writes with a window of
//    kClientWindowBytes; it reads the next WebSocket message only while the
//    window has room, and the handler's FEEDBACK (sent once a batch was
//    handed to on_received_messages) reopens it. One message is at most
//    the stream's largest (max_body_bytes − 40), refused 1009 at the frame
//    header that would pass it.
//
// The client's frames are checked as they arrive, before Beast parses them
// (WatchedSocket's WebSocketFrameWatch): a frame that breaks RFC 6455 closes
// 1002 or 1007 with a reason, and a message or frame begun and not finished
// within partial_frame_timeout_ms (while the session reads) closes 1008.
// Beast then no longer writes: the close frame is written to the socket
// here (close_raw()).
//  - handler → client: FEEDBACK for a message is given only once its
//    WebSocket write completed, so a client that stops reading fills the
//    handler's window (StreamOptions::max_buf_size) and the handler's Write
//    says kFull; the queue of messages to write holds at most that window
//    plus one message, plus the response.
//
// Its life moves forward only, through transition():
//
//   kHandshaking ──► kCalling ──► kOpen ──► kClosing ──► kClosed
//    101 being        the call     stream    close frame    ▲
//    written          runs         carried   sent; waiting  │
//                                            for the peer's │
//   any: a read/write error, the peer's close frame, a     ─┘
//   reset, the linger clock (close_linger_ms)
//
// How the stream ends (StreamEnd tells the handler once): the handler's
// Close → close 1000 after the messages it wrote; the stream's idle timeout
// → close 1000 "idle timeout"; the client's close frame → kClosedByPeer; EOF,
// a reset or an error → kConnectionBroken; a client message past the
// stream's largest → kMessageTooLarge, close 1009; a text message that is
// not JSON of the input type, a frame that breaks RFC 6455 or one not
// finished in time → kResetByPeer, close 1007, 1002 or 1008; Stop → the handler's
// messages, then kClosedByUs and close 1001. A failed call closes with
// web_socket_close_code_for(code) and "code N: text"; a call whose handler
// did not accept the stream sends its response, then closes 1008.
//
// Owns: the WebSocket and its socket, the upgrade request until the call
// is made, the messages waiting to be written, the message being read, and
// the stream while it is open. Kept alive by its I/O thread's table and by
// its pending operations; others refer to it by id.
// Threads: its I/O thread only (checked in every method); the stream's
// carrier posts take_stream_output() there.
class WebSocketSession : public std::enable_shared_from_this<WebSocketSession> {
 public:
  using Clock = ServerCall::Clock;
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  enum class State { kHandshaking, kCalling, kOpen, kClosing, kClosed };

  // The client's window: bytes of its messages handed to the handler and
  // not yet reported consumed, at most (plus one message). brpc's default
  // max_buf_size.
  static constexpr uint64_t kClientWindowBytes = 2u << 20;

  // `request`: the upgrade request HttpConnection read (no byte followed
  // it); `received_at`: when its first byte came.
  WebSocketSession(IoThread& io_thread, ServerCore& core, ServerSocket socket,
                   uint64_t id, std::string peer, Request request, Clock::time_point received_at);
  ~WebSocketSession();
  // Who the upgrade request proved to be (ServerOptions::authenticator),
  // for the call's handler; before start().
  void set_auth_context(std::shared_ptr<const AuthContext> context) {
    auth_context_ = std::move(context);
  }

  // Answers the handshake (I/O thread, once, after the session is in its
  // thread's table).
  void start();
  uint64_t id() const { return id_; }
  bool closed() const { return state_ == State::kClosed; }

  // The call this session made has finished: its response goes first, then
  // the stream connects (or the WebSocket closes with the failure).
  void answer_call(ServerCall& call);
  // Stop() answered the call on the handler's behalf (2003).
  void answer_abandoned_call(MethodEntry* method);
  // Stop: the handler's messages are written, the stream ends kClosedByUs
  // and the WebSocket closes 1001.
  void begin_close(CloseReason reason);
  // Closes at once with a reset; the stream ends kConnectionBroken.
  void abort(CloseReason reason);
  // The I/O thread's sweep: the stream's idle timeout, the linger clock.
  void check_timeouts(Clock::time_point now);
  // The stream has frames in its outbox (its carrier's wake).
  void take_stream_output();

 private:
  struct Outgoing {
    std::string payload;
    bool text = true;
    uint64_t stream_bytes = 0;  // The stream message's size (0: the response).
  };

  void on_accepted(const boost::system::error_code& error);
  // Makes and runs the call, or closes with why it cannot run.
  void dispatch();
  void read_message();
  void on_read(const boost::system::error_code& error, size_t bytes);
  // The frame watch found a violation: closes with its code and reason.
  void refuse_violation();
  // The client's close frame came (WatchedSocket holds it): the stream hears
  // the CLOSE after the messages before it, the session writes what the
  // handler owes for them, then lets Beast read and answer the close.
  void on_client_close();
  // A frame the handler's stream queued for its peer.
  void on_handler_frame(const StreamFrame& frame);
  // The stream ended for `reason` (told to the handler here), then the
  // WebSocket closes after what is queued.
  void end_stream(StreamEndReason reason);
  // The client broke the rules (`code` 1007, 1009, ...): the stream ends
  // `reason` and the WebSocket closes with `text`, dropping what is queued.
  void refuse(uint16_t code, std::string text, StreamEndReason reason);
  void queue_message(std::string payload, bool text, uint64_t stream_bytes);
  void write_next();
  void on_written(const boost::system::error_code& error, size_t bytes);
  // Closes with `code` and `reason` once the queued messages are written.
  void close_after_writes(uint16_t code, std::string reason);
  void on_closed(const boost::system::error_code& error);
  // Once Beast failed (a violation): writes the close frame to the socket,
  // half-closes and waits for the client's FIN (close_linger_ms).
  void close_raw();
  void drain_until_eof();
  // The connection ended under the session (error, EOF, reset).
  void fail(const boost::system::error_code& error);
  void transition(State next);

  IoThread& io_thread_;
  ServerCore& core_;
  boost::beast::websocket::stream<WatchedSocket> ws_;
  const uint64_t id_;
  std::shared_ptr<const AuthContext> auth_context_;
  const std::string peer_;
  std::optional<Request> request_;  // Until dispatch().
  const Clock::time_point received_at_;
  MethodEntry* method_ = nullptr;

  // The stream, from the call's answer until it ends; the id the session
  // goes by as its peer.
  std::shared_ptr<StreamCore> stream_;
  const StreamId peer_stream_id_;
  std::shared_ptr<StreamCarrier> carrier_;
  // The client's messages to the handler.
  StreamWriteWindow client_window_{kClientWindowBytes};
  // The handler's messages the client has taken (cumulative FEEDBACK).
  uint64_t written_to_client_ = 0;
  FrameDecoder outbox_decoder_;
  Frame frame_;
  StreamFrame stream_frame_;
  std::unique_ptr<google::protobuf::Message> input_message_;
  std::unique_ptr<google::protobuf::Message> output_message_;

  boost::beast::flat_buffer read_buffer_;
  std::deque<Outgoing> outgoing_;
  State state_ = State::kHandshaking;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  bool reading_ = false;
  bool writing_ = false;
  bool stopping_ = false;  // Stop: the stream's end closes 1001.
  bool counted_open_ = false;
  // Reading stopped for the client's window: a message begun is timed anew
  // when it resumes.
  bool read_paused_ = false;
  // Beast failed on a violation: the close goes out through close_raw().
  bool raw_close_ = false;
  // The client's close frame is held until what is owed is written.
  bool client_closing_ = false;
  std::string raw_close_frame_;
  std::array<char, 4096> drain_buffer_{};
  // Set once a close is decided; sent when nothing is left to write.
  std::optional<boost::beast::websocket::close_reason> close_;
  Clock::time_point linger_deadline_;  // While a close is pending.
};

}  // namespace percore::detail
