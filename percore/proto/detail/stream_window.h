#pragma once

#include <cstdint>

// Flow control of one brpc stream, without I/O: the numbers and the rules,
// for the stream layer to act on. Facts from brpc's src/brpc/stream.cpp
// (Stream::AppendIfNotFull, SetRemoteConsumed, Consume, SendFeedback,
// FillSettings) and src/brpc/stream.h (StreamOptions):
//  - The unit is bytes of message data: what the user wrote (StreamWrite's
//    message length) on one side, what was handed to the reader's handler on
//    the other. Frame headers, StreamFrameMeta, RST/CLOSE/FEEDBACK frames and
//    the RPC response that travels as the stream's first DATA frame are not
//    counted.
//  - FEEDBACK.consumed_size is cumulative since the stream began, not a
//    delta; a value at or below the last one is ignored.
//  - The limit is the writer's own setting (StreamOptions.max_buf_size,
//    default 2 MiB; <= 0 means none); it is never sent. The writer says
//    need_feedback in its StreamSettings iff it has a limit.
//  - A message is accepted whenever the window is not full, whatever its
//    size (the check comes before the message is counted), so the
//    unacknowledged bytes may exceed the limit by up to one message; this is
//    also why a message larger than the limit can be written at all.
//  - The reader sends one FEEDBACK after each batch of messages it handed to
//    its handler (up to StreamOptions.messages_in_batch, 128, at a time), if
//    the batch had data and the writer asked for feedback.
namespace percore {

// The writer's side: bytes written, the peer's last reported consumption,
// and this side's limit on the difference.
//
// Owns: three counters. Threads: one owner thread at a time (the stream's
// owner), or the caller's lock.
class StreamWriteWindow {
 public:
  // `limit_bytes`: the most unacknowledged bytes before writes must wait; 0:
  // no limit (and no feedback asked for).
  explicit StreamWriteWindow(uint64_t limit_bytes) : limit_(limit_bytes) {}

  // Whether to say need_feedback in this side's StreamSettings.
  bool limited() const { return limit_ != 0; }
  // Whether a message (of any size) may be written now: brpc's rule, the
  // window is not full.
  bool can_write() const { return limit_ == 0 || unacknowledged() < limit_; }
  // Counts a written message of `message_bytes` (saturating, never wraps).
  void on_written(uint64_t message_bytes);
  // A FEEDBACK frame's consumed_size. Stale or regressing values (at or below
  // the last one) and negative ones are ignored; one past what was written
  // (a broken peer) counts as all of it. Returns true when this made a full
  // window writable again (the moment to wake blocked writers).
  bool on_feedback(int64_t consumed_size);

  uint64_t limit() const { return limit_; }
  uint64_t written() const { return written_; }
  uint64_t acknowledged() const { return acknowledged_; }
  // Written but not yet reported consumed; never underflows.
  uint64_t unacknowledged() const { return written_ - acknowledged_; }

 private:
  uint64_t limit_;
  uint64_t written_ = 0;
  uint64_t acknowledged_ = 0;  // <= written_.
};

// The reader's side: bytes handed to the reader, and whether a FEEDBACK is
// owed to the writer.
//
// Owns: a counter and a flag. Threads: one owner thread at a time.
class StreamReadProgress {
 public:
  // `peer_needs_feedback`: the writer's StreamSettings.need_feedback; a
  // client learns it from the response, so it may come later (set_...).
  explicit StreamReadProgress(bool peer_needs_feedback = false)
      : peer_needs_feedback_(peer_needs_feedback) {}

  // Learns (or changes) whether the writer asked for feedback. Bytes
  // consumed before it is known are reported at once (brpc sends that first
  // FEEDBACK when the stream connects).
  void set_peer_needs_feedback(bool needs);
  bool peer_needs_feedback() const { return peer_needs_feedback_; }
  // Counts `message_bytes` of message data handed to the reader: one batch,
  // of one or more whole messages (a message's DATA frames joined).
  void on_consumed(uint64_t message_bytes);
  // Whether a FEEDBACK should be sent now.
  bool feedback_due() const { return feedback_due_; }
  // The consumed_size of that FEEDBACK (cumulative, capped at the int64
  // wire field's maximum); clears feedback_due().
  int64_t take_feedback();

  uint64_t consumed() const { return consumed_; }

 private:
  uint64_t consumed_ = 0;
  bool peer_needs_feedback_;
  bool feedback_due_ = false;
};

}  // namespace percore
