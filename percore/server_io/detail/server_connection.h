#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/server_io/detail/asio.h>
#include <percore/server_io/detail/server_call.h>
#include <percore/server_io/detail/server_socket.h>
#include <percore/server_io/server_stats.h>

namespace percore::detail {

class IoThread;
struct ServerCore;

// One accepted connection: reads and decodes requests, dispatches them, and
// writes answers. A connection whose first bytes are an HTTP request line is
// handed, with those bytes, to an HttpConnection (brpc serves both on one
// port the same way); as many as are ready per gathered write (one write in
// flight at a time, the next batch collecting meanwhile).
//
// TLS (ServerOptions::tls): a first byte 0x16 (a ClientHello's record) makes
// the socket a TLS stream (ServerSocket) and starts the handshake with the
// bytes read so far; once it completes, the first plaintext bytes choose
// baidu_std or HTTP as above. The handshake is bounded by
// partial_frame_timeout_ms; a failure is counted, logged and closes the
// connection (kTlsFailed) after OpenSSL's alert is written. With
// tls_required a clear-text first byte closes it (kClearTextRefused). A TLS
// connection's close sends close_notify before TCP's FIN.
//
// Its life is a state machine that only moves forward, and every move goes
// through transition():
//
//   kOpen ──► kDraining ──► kFlushing ──► kLingering ──► kClosed
//     │  reads no more,    all answered;   answers written,      ▲
//     │  answers what it   writing them    FIN sent; input       │
//     │  read                              discarded until the   │
//     │                                    peer's FIN, or until  │
//     │                                    it has acknowledged   │
//     │                                    every byte            │
//     └── abort(): a reset or a read/write error, or the linger ─┘
//         clock running out — from any state
//
// The linger clock (close_linger_ms) runs while a closing connection waits
// on its peer: answers written but not taken (it restarts whenever the peer
// takes bytes — a write completes, or the kernel's unacknowledged bytes
// shrink — so a slow reader that keeps reading is served), then the peer's
// FIN or acknowledgement. Waiting for handlers has no clock here:
// Stop bounds them.
//
// Whatever starts a close (the peer's end of stream, a rejected frame, a
// timeout, Stop) answers every request read before it and flushes the
// answers; only a reset, a write error or the end of close_linger_ms drops
// them. The peer's FIN ends only its input: the connection then answers
// what it read and closes (a half-closed peer is still reading).
//
// Back-pressure: the socket is not read, nor buffered frames dispatched,
// while max_inflight_per_connection calls are unanswered or more than
// max_unwritten_bytes_per_connection bytes wait to be written (until half of
// that is written). A quiet connection waits for input with a 512-byte wake
// buffer of its own and no read block; a busy one reads into a block of the
// I/O thread's pool, given back once no partial frame is buffered, so an
// idle connection holds no read buffer and a busy one allocates none.
//
// Streams (brpc's Streaming RPC): a stream the handler accepted is added
// when the call's answer is encoded (the answer travels in a DATA frame to
// the client's stream, as brpc sends it); STRM frames are decoded beside
// requests, handed to their stream, and its received messages delivered at
// the end of each read pass; frames for a stream this side does not know are
// answered RST. When the connection stops reading (the peer's FIN, a
// rejection, Stop) every stream ends: their queued frames are written, then
// CLOSE (kClosedByUs) — or, after the peer's FIN or a reset,
// kConnectionBroken. A connection with streams open is not idle.
//
// Owns: the socket, the decoder, the output buffers and the open streams. Kept alive by its I/O
// thread's table and by its own pending Asio operations (shared_ptr); others
// refer to it by id.
// Threads: its I/O thread only (checked in every method).
class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  using Clock = ServerCall::Clock;

  enum class State { kOpen, kDraining, kFlushing, kLingering, kClosed };

  ServerConnection(IoThread& io_thread, ServerCore& core, boost::asio::ip::tcp::socket socket,
                   uint64_t id);

  void start();
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }
  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }

  // Where answers are encoded (IoThread::answer); flushed at the end of the
  // current event.
  GatherBuffer& output() { return pending_output_; }
  // A dispatched call of this connection was answered (or answered 2003 on
  // its behalf by Stop).
  void call_answered();

  // A close the server decides: reads no more, answers every request already
  // read (with kServerStopped the complete frames still buffered are
  // dispatched too, and answered 2003), writes the answers, sends FIN and
  // closes once the peer's FIN comes or close_linger_ms has passed.
  void begin_close(CloseReason reason);
  // Closes at once with a reset; answers not yet written are dropped.
  void abort(CloseReason reason);
  // The I/O thread's periodic sweep: idle, partial-frame and linger timeouts,
  // and the streams' idle timeouts.
  void check_timeouts(Clock::time_point now);

  // A stream the handler of one of this connection's calls accepted, now
  // that its answer is encoded: connected to the client's `remote_id`.
  void add_stream(std::shared_ptr<StreamCore> stream, StreamId remote_id,
                  bool remote_needs_feedback, bool remote_writable);
  // Moves `stream`'s queued frames into the output (and ends it when they
  // end with its CLOSE).
  void take_stream_output(const std::shared_ptr<StreamCore>& stream);
  size_t open_streams() const { return streams_.size(); }
  // A dispatched call that carried StreamSettings was answered.
  void stream_call_answered();

 private:
  // Bytes the kernel holds for this connection that it has not read yet.
  bool has_unread_input();
  // After every event: dispatch what the limits allow, write what is ready,
  // move the state on when its work is done, and wait for input if wanted.
  void pump();
  void wait_readable();
  void on_read(const boost::system::error_code& error, size_t bytes);
  // More reads straight into the decoder after a read that filled its space.
  void read_input();
  void end_input_if_finished();
  void discard_input();
  bool wants_input() const;
  // Decodes and dispatches buffered frames while the limits allow.
  void process_frames();
  // Before the first frame: whether the input is HTTP (then the connection
  // is handed to an HttpConnection), baidu_std, or not known yet.
  enum class Protocol { kUnknown, kBaiduStd, kHttp };
  Protocol sniff_protocol() const;
  // Before the first frame: TLS or clear text, from the first byte. False
  // while it cannot go on to frames: no byte yet, a handshake started, or
  // clear text refused (tls_required).
  bool choose_transport();
  void start_tls_handshake();
  void on_tls_handshake(const boost::system::error_code& error);
  // Counts and logs a failed handshake, and closes (its alert is written).
  void fail_tls(const std::string& reason);
  // Starts Asio's TLS shutdown (close_notify) once no read waits.
  void start_close_notify();
  // close_notify was written and the peer's read (or its FIN, or a failure).
  void on_tls_shutdown();
  void hand_over_to_http();
  void dispatch(const Frame& frame);
  // ServerOptions::authenticator: empty when `meta` may be served on this
  // connection (verified when it is the first request, or every one with
  // authenticate_every_call); otherwise the text to answer it with (1004),
  // and the connection closes after answering the requests read behind it
  // (1004 too).
  std::string authentication_refusal(const wire::RpcMeta& meta);
  // Counts and logs a refused connection and begins its close; with
  // `answer_buffered`, the complete requests read behind are answered 1004.
  void refuse_connection(const std::string& reason, bool answer_buffered);
  // An unauthenticated connection's frame is not whole yet: judges it by
  // its header and meta (refused at once, answered 1004 when its meta is
  // in), so that a stranger's body is never buffered.
  void authenticate_partial_frame();
  // The largest meta of a connection's first request before it is verified.
  static constexpr uint32_t kMaxUnauthenticatedMetaBytes = 64 * 1024;
  void on_stream_frame(const StreamFrame& frame);
  // Removes an ended stream, remembering its id for a while.
  void forget_stream(StreamId id);
  // Hands each stream the messages of this read pass.
  void deliver_stream_input();
  // Ends every stream: with `send_close`, their queued frames and a CLOSE
  // go out first.
  void end_streams(bool send_close, StreamEndReason reason);
  void reject(DecodeStatus status, std::string_view text);
  void flush();
  void on_written(const boost::system::error_code& error, size_t bytes);
  void advance();
  bool peer_has_everything() const;
  // Closing: restarts the linger clock if the peer took bytes since.
  void note_peer_progress(Clock::time_point now);
  // The only place state_ changes; keeps the server's counters right.
  void transition(State next);
  size_t unwritten_bytes() const { return pending_output_.size() + writing_output_.size(); }

  IoThread& io_thread_;
  ServerCore& core_;
  ServerSocket socket_;
  const uint64_t id_;
  std::string peer_;

  // The decoder's inline space: where a quiet connection's next read lands
  // and is decoded (most requests fit), so a waiting connection holds no
  // read block. Also the sink of input discarded while lingering.
  std::array<char, 512> wake_buffer_;
  FrameDecoder decoder_;
  Frame frame_;  // Reused for every frame.
  StreamFrame stream_frame_;
  std::unordered_map<StreamId, std::shared_ptr<StreamCore>> streams_;
  // The last streams that ended here: the peer's FEEDBACK, CLOSE and RST
  // still in flight to them are not "unknown" (dropped, not counted).
  std::array<StreamId, 16> recently_ended_{};
  size_t recently_ended_next_ = 0;
  size_t recently_ended_count_ = 0;
  // Streams given DATA in this read pass (deliver_stream_input()).
  std::vector<std::shared_ptr<StreamCore>> streams_with_input_;
  std::shared_ptr<StreamCarrier> stream_carrier_;  // Made with the first stream.
  size_t stream_calls_in_flight_ = 0;  // Dispatched with StreamSettings, not answered.
  Clock::time_point last_read_at_;
  Clock::time_point last_write_at_;  // Kept only with an idle timeout, or closing.
  // Closing: when the output last made progress (or began to wait).
  Clock::time_point write_stalled_since_;
  Clock::time_point linger_deadline_;  // kLingering: when it gives up on the peer.
  uint64_t bytes_written_ = 0;         // Handed to the kernel, over the connection's life.
  uint64_t bytes_taken_by_peer_ = 0;   // Of those, acknowledged (note_peer_progress).

  GatherBuffer pending_output_;  // Answers not yet handed to the socket.
  GatherBuffer writing_output_;  // Answers of the write in flight.
  std::vector<boost::asio::const_buffer> write_buffers_;

  State state_ = State::kOpen;
  CloseReason close_reason_ = CloseReason::kPeerClosed;
  int in_flight_calls_ = 0;
  bool input_ended_ = false;        // The peer's FIN has been read.
  bool frames_ended_ = false;       // No further frame will be dispatched.
  bool frames_waiting_ = false;     // A limit stopped dispatch with bytes buffered.
  bool reading_ = false;            // An async read is outstanding.
  size_t offered_bytes_ = 0;           // The space it offers.
  bool last_read_was_small_ = true;    // It fitted wake_buffer_ with room to spare.
  bool in_pass_ = false;            // Inside process_frames(): flush at its end.
  bool writing_ = false;            // An async write is outstanding.
  bool write_backpressure_ = false;  // Over the unwritten-bytes limit.
  bool protocol_known_ = false;      // The first bytes were read and classified.
  bool handed_over_ = false;         // It lives on as an HttpConnection.
  bool transport_known_ = false;     // TLS (handshake done) or clear text.
  bool handshaking_ = false;         // A TLS handshake is outstanding.
  bool tls_failed_ = false;          // It failed: no close_notify.
  bool close_notify_pending_ = false;  // Lingering: close_notify not started yet.
  std::string tls_hello_;            // The handshake's first input.
  std::string tls_write_buffer_;     // Answers gathered into one TLS record.
  // mTLS: the client certificate's subject, given to every call's handler.
  std::shared_ptr<const std::string> peer_certificate_subject_;
  // Call authentication: who the peer proved to be (set once verified), and
  // whether it failed (every request read after it is answered 1004).
  std::shared_ptr<const AuthContext> auth_context_;
  bool authentication_refused_ = false;
};

}  // namespace percore::detail
