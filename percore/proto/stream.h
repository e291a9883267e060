#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

// Streams: ordered, flow-controlled messages both ways beside a call, on the
// call's connection. Wire-compatible with brpc's Streaming RPC
// (docs/PROTOCOL.md, "Streams"; docs/ARCHITECTURE.md, "Streams", for how
// percore carries them).
//
// The client opens a stream with the call that carries it (percore::Controller
// ::open_stream); the server's handler accepts it
// (percore::ServerController::AcceptStream). Once the call's response has
// arrived the stream is connected and either side may write messages, and
// either side may close it.
namespace percore {

using StreamId = int64_t;
// brpc's INVALID_STREAM_ID.
inline constexpr StreamId kInvalidStreamId = -1;

// Why a stream ended. brpc (src/brpc/stream.cpp, Stream::OnReceived) ends a
// stream on a CLOSE frame without an error and on an RST frame with
// ECONNRESET; a local close sends CLOSE to the peer; the host connection
// failing ends every stream on it.
enum class StreamEndReason : uint8_t {
  kClosedByUs = 1,    // This side closed it (a CLOSE frame went to the peer).
  kClosedByPeer,      // A CLOSE frame arrived.
  kResetByPeer,       // An RST frame arrived (the peer did not know the stream).
  kConnectionBroken,  // The connection carrying it failed or closed.
  kIdleTimeout,       // Nothing arrived for StreamOptions::idle_timeout_ms; a
                      // CLOSE went to the peer.
  kNotAccepted,       // The call that opens it failed, or its handler did not
                      // accept the stream (client side), or the call failed
                      // after the handler accepted it (server side).
  kMessageTooLarge,   // The peer sent a message larger than
                      // Stream::max_message_bytes(); an RST went to the peer.
};

// "closed_by_us", "closed_by_peer", "reset_by_peer", "connection_broken",
// "idle_timeout", "not_accepted", "message_too_large": for logs and
// metrics.
std::string_view stream_end_reason_name(StreamEndReason reason);

// What Stream::Write says. brpc's StreamWrite returns 0, EAGAIN and EINVAL for
// the first three.
enum class StreamWriteStatus : uint8_t {
  kOk,        // Queued; it goes out in order after every message before it.
  kFull,      // Back-pressure: max_buf_size bytes are written and not yet
              // reported consumed by the peer. Nothing was queued; try again
              // after StreamHandler::on_writable or Stream::WaitWritable.
  kEnded,     // The stream has ended or is closing; nothing was queued.
  kTooLarge,  // Longer than Stream::max_message_bytes(); nothing was queued.
  kPeerNotWritable,  // The peer's StreamSettings said writable = false: it
                     // takes no messages (brpc's EBADF). Nothing was queued.
};

class Stream;

// What a stream's owner is told. Callbacks run on a percore I/O thread (the
// server connection's I/O thread; the client group's receive or send
// thread), one at a time for a stream, never concurrently; they must not
// block. They may call Write and Close on the stream.
class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // Messages that arrived, in the order written, at most
  // StreamOptions::messages_in_batch at a time. The handler may move them
  // out. The peer is told they were consumed when this returns (FEEDBACK).
  virtual void on_received_messages(Stream& stream, std::span<std::string> messages) = 0;
  // A Write that said kFull may now succeed (the peer consumed enough).
  virtual void on_writable(Stream& /*stream*/) {}
  // The stream ended, for `reason`: called exactly once, after every other
  // callback; no callback follows it.
  virtual void on_closed(Stream& stream, StreamEndReason reason) = 0;
};

// A stream's settings, on either side.
struct StreamOptions {
  // Told of messages and of the end (may be null: messages are consumed and
  // dropped). Kept by the stream until on_closed has returned.
  std::shared_ptr<StreamHandler> handler = nullptr;
  // The most bytes of message data this side may have written and not yet
  // seen consumed by the peer: past it Write says kFull. brpc's
  // StreamOptions::max_buf_size, 2 MiB by default; 0: no limit (then the
  // peer is not asked for feedback, and nothing bounds what waits in this
  // side's buffers: avoid). One message is accepted whenever the window is
  // not full, so at most max_buf_size plus one message is outstanding.
  uint64_t max_buf_size = 2 * 1024 * 1024;
  // Messages handed to on_received_messages at most at a time (brpc's
  // messages_in_batch, 128). At least 1.
  int messages_in_batch = 128;
  // Ends the stream (kIdleTimeout, CLOSE to the peer) when nothing arrives
  // for this long, in ms. 0 (the default): never. Checked every 100 ms or so
  // (a server's I/O thread sweep; a client group's send thread; a worker
  // process's loop), so it ends up to that much later.
  int idle_timeout_ms = 0;
};

// One end of a stream. Made by percore (Controller::open_stream on a client,
// ServerController::AcceptStream in a handler) and shared: percore keeps it
// while it is open, the application as long as it likes.
//
// Threads: every method from any thread.
class Stream {
 public:
  virtual ~Stream() = default;

  // This side's id of the stream (the peer addresses its frames to it).
  virtual StreamId id() const = 0;
  // The largest message Write takes, and the largest this side accepts from
  // the peer (a larger one ends the stream, kMessageTooLarge): the
  // connection's max_body_bytes less 40 bytes for the frame's meta.
  virtual size_t max_message_bytes() const = 0;
  // Queues `message` for the peer. Never blocks; see StreamWriteStatus. The
  // message is moved from only when kOk: on kFull it is still the caller's,
  // to write again later. Messages written before the stream connects
  // (client: before the call's response) wait and go once it does.
  virtual StreamWriteStatus Write(std::string&& message) = 0;
  // Waits until a Write may succeed (the window has room) or the stream has
  // ended, at most `timeout`. True: writable; false: ended or timed out.
  // Not from a handler callback nor from a handler on an inline method
  // (those run on the I/O thread that must deliver the peer's FEEDBACK).
  virtual bool WaitWritable(std::chrono::milliseconds timeout) = 0;
  // Ends the stream: the messages already written go first, then a CLOSE
  // frame; the handler's on_closed(kClosedByUs) follows once that is
  // queued on the connection. Idempotent; does nothing once ended.
  virtual void Close() = 0;
  // Whether it has ended, and why; none while open (or closing).
  virtual std::optional<StreamEndReason> end_reason() const = 0;
  // Bytes of message data written so far, and of those reported consumed by
  // the peer.
  virtual uint64_t bytes_written() const = 0;
  virtual uint64_t bytes_acknowledged() const = 0;
  // Bytes of message data received so far.
  virtual uint64_t bytes_received() const = 0;
};

}  // namespace percore
