#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/stream_end.h>
#include <percore/proto/detail/stream_frame.h>
#include <percore/proto/detail/stream_window.h>
#include <percore/proto/stream.h>

namespace percore::detail {

class StreamCore;

// A new id for this process's end of a stream: unique in the process (as
// brpc's), from 1 up. Any thread.
StreamId next_stream_id();

// Lets a carrier reach the thread that owns it only while that thread's
// owner exists: an application thread may Write (and so wake a carrier)
// while the server or client group is being destroyed. The owner closes the
// gate before it goes; a wake after that is dropped (its stream has ended).
//
// Threads: any.
class CarrierGate {
 public:
  // Runs `post` under the gate's lock if the gate is open.
  template <typename Post>
  void run_if_open(Post&& post) {
    std::lock_guard lock(mutex_);
    if (open_)
      post();
  }
  void close() {
    std::lock_guard lock(mutex_);
    open_ = false;
  }

 private:
  std::mutex mutex_;
  bool open_ = true;
};

// The connection side of a stream: where its frames go. Implemented by the
// server's connection and by the client's thread group.
class StreamCarrier {
 public:
  virtual ~StreamCarrier() = default;
  // Any thread (never under the stream's lock): `stream` has frames in its
  // outbox; the carrier calls take_outbox() soon on the thread that writes
  // the connection. Called once each time the outbox stops being empty.
  virtual void wake(const std::shared_ptr<StreamCore>& stream) = 0;
};

// The far end of a relayed stream (StreamCore::make_relay): a server whose
// handler runs in a worker process (ExecutionMode::kProcessPool) keeps, on
// the client's connection, a StreamCore that only relays; the stream's real
// end, window and handler live in the worker. Implemented by the process
// pool.
class StreamRelayTarget {
 public:
  virtual ~StreamRelayTarget() = default;
  // A frame from the peer, to pass on unchanged (the carrier's reading
  // thread). CLOSE and RST are passed on too, then the relay ends.
  virtual void forward(const StreamFrame& frame) = 0;
  // The relay ended with `reason` (any thread, once): the far end is told
  // unless the end came from it or was a frame passed on.
  virtual void on_relay_end(StreamEndReason reason) = 0;
};

// One end of a stream, the same on client and server: the write window
// (StreamWriteWindow), the outbox of encoded frames waiting for the
// carrier, the batching of received messages and their FEEDBACK
// (StreamReadProgress), and the end (StreamEnd), which tells the handler
// exactly once.
//
// Owns: the options (the handler until on_closed has returned), the outbox,
// the inbox of messages not yet delivered, a partial message.
// Threads: the Stream methods and end() from any thread. The carrier's
// methods (connect, take_outbox, on_frame, deliver, check_idle) are called
// by its carrier only, from the methods that check their thread
// (ServerConnection's, on its I/O thread; the client's ReceiveThread and
// SendThread); on_frame() and deliver() from one reading thread. The
// handler's callbacks are serialized by callback_mutex_.
class StreamCore final : public Stream, public std::enable_shared_from_this<StreamCore> {
 public:
  using Clock = std::chrono::steady_clock;

  // `max_body_bytes`: the largest frame body the connection carries; a
  // message (and a joined multi-frame message) may not exceed it.
  StreamCore(StreamId id, StreamOptions options, size_t max_body_bytes);
  ~StreamCore() override;
  // A relay (see StreamRelayTarget): frames from the peer go to `target`
  // as they are; frames from the far end come in through relay_output().
  // Its window is the far end's: it has no handler, and Write is not used.
  // `far_end_needs_feedback`: the far end's StreamSettings.need_feedback.
  static std::shared_ptr<StreamCore> make_relay(StreamId id, bool far_end_needs_feedback,
                                                size_t max_body_bytes,
                                                std::shared_ptr<StreamRelayTarget> target);

  // The largest message a stream on a connection whose frame bodies are at
  // most `max_body_bytes` carries: less room for a DATA frame's meta.
  static size_t max_message_bytes_for(size_t max_body_bytes);

  // --- Stream: any thread ---
  StreamId id() const override { return id_; }
  size_t max_message_bytes() const override;
  StreamWriteStatus Write(std::string&& message) override;
  bool WaitWritable(std::chrono::milliseconds timeout) override;
  void Close() override;
  std::optional<StreamEndReason> end_reason() const override { return end_.reason(); }
  uint64_t bytes_written() const override;
  uint64_t bytes_acknowledged() const override;
  uint64_t bytes_received() const override;

  // --- the carrier ---
  // Whether this side's settings say need_feedback (it has a window).
  bool needs_feedback() const { return options_.max_buf_size != 0; }
  int idle_timeout_ms() const { return options_.idle_timeout_ms; }
  uint64_t max_buf_size() const { return options_.max_buf_size; }
  // Connects to the peer's stream `remote_id` through `carrier`: frames
  // written before go now. `peer_needs_feedback`: the peer's StreamSettings.
  // False when the stream has already ended.
  // `peer_writable`: the peer's StreamSettings.writable (false: Write says
  // kPeerNotWritable).
  bool connect(StreamId remote_id, bool peer_needs_feedback, bool peer_writable,
               std::shared_ptr<StreamCarrier> carrier);
  bool connected() const;
  StreamId remote_id() const;
  // Moves the queued frames into `out`, in order. When they end with this
  // side's CLOSE, returns the reason to end the stream with once they are
  // written (the carrier then calls end() with it).
  std::optional<StreamEndReason> take_outbox(GatherBuffer& out);
  // A frame addressed to this stream (reading thread). DATA is batched:
  // deliver() hands it over, at the end of the read pass or at once when a
  // batch is full. FEEDBACK may wake writers; CLOSE and RST end the stream.
  void on_frame(const StreamFrame& frame);
  // Hands batched messages to the handler and queues the FEEDBACK owed
  // (reading thread).
  void deliver();
  bool has_undelivered() const { return !inbox_.empty(); }
  // Ends the stream with `reason` unless it has ended: writers wake, the
  // handler's on_closed runs (here, on this thread). True if this call
  // ended it. Any thread.
  bool end(StreamEndReason reason);
  bool ended() const { return end_.ended(); }
  // A relay's frames from its far end, encoded, for the peer (any thread).
  // `end_after`: the far end closed or reset its stream with these frames;
  // the relay ends with that reason once they are written. False (and
  // nothing queued) when the relay is ending already.
  bool relay_output(GatherBuffer&& frames, std::optional<StreamEndReason> end_after);
  // The far end is gone (its worker died): RST to the peer, then the relay
  // ends kResetByPeer. Any thread.
  void relay_reset();
  // The idle timeout: when nothing arrived for idle_timeout_ms by `now`,
  // queues CLOSE (the stream then ends kIdleTimeout). Carrier's thread.
  void check_idle(Clock::time_point now);

 private:
  // A message past max_message_bytes() arrived: RST to the peer, and the
  // stream ends kMessageTooLarge once that is queued. Reading thread.
  void refuse_oversized_message();
  // Queues this side's last frame (RST if `reset`, else CLOSE) unless a
  // close is under way; the stream ends with `reason` once it is written.
  // Any thread, not under mutex_.
  void end_after_last_frame(bool reset, StreamEndReason reason);
  // Encodes a frame into the outbox; true when the carrier must be woken.
  // Under mutex_.
  bool queue_frame_locked(const wire::StreamFrameMeta& meta, std::string&& data);
  void wake_carrier();

  const StreamId id_;
  std::shared_ptr<StreamRelayTarget> relay_;  // Set by make_relay() only.
  // Without its handler, which handler_ holds: a handler that holds its
  // stream makes a cycle that only end() may break.
  StreamOptions options_;
  const size_t max_body_bytes_;
  StreamEnd end_;

  mutable std::mutex mutex_;
  std::condition_variable writable_;
  StreamWriteWindow window_;           // Under mutex_.
  StreamReadProgress read_progress_;   // Under mutex_.
  GatherBuffer outbox_;                // Under mutex_.
  std::shared_ptr<StreamCarrier> carrier_;  // Under mutex_; set by connect().
  StreamId remote_id_ = kInvalidStreamId;   // Under mutex_.
  bool wake_pending_ = false;   // The carrier was woken and has not taken the outbox.
  bool closing_ = false;        // A CLOSE is queued: no more writes.
  bool far_end_closed_ = false;  // A relay's far end queued its own CLOSE or RST.
  bool peer_writable_ = true;   // Under mutex_; the peer's StreamSettings.writable.
  std::optional<StreamEndReason> end_after_outbox_;  // Under mutex_.
  bool blocked_ = false;        // A Write said kFull: tell on_writable.
  std::vector<std::string> early_writes_;  // Under mutex_; written before connect().
  std::atomic<uint64_t> received_bytes_{0};
  std::atomic<int64_t> last_received_ns_;

  // The reading thread's.
  std::vector<std::string> inbox_;
  std::string partial_;  // A message whose frames have not all arrived.
  bool peer_ended_ = false;  // Its CLOSE or RST came: nothing more goes to it.
  // Set once this side stops taking the peer's messages (its own close, or
  // a refused message): later DATA is dropped and no FEEDBACK is sent.
  std::atomic<bool> reading_stopped_{false};

  std::mutex callback_mutex_;  // Serializes the handler's callbacks.
  std::shared_ptr<StreamHandler> handler_;  // Under callback_mutex_; dropped after on_closed.
};

}  // namespace percore::detail
