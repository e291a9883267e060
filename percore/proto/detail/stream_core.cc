#include <percore/proto/detail/stream_core.h>

#include <span>

namespace percore::detail {
namespace {

// Room for a DATA frame's meta, so that a message that Write accepts always
// encodes.
constexpr size_t kDataMetaBytes = 40;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             StreamCore::Clock::now().time_since_epoch())
      .count();
}

}  // namespace

StreamId next_stream_id() {
  static std::atomic<StreamId> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

StreamCore::StreamCore(StreamId id, StreamOptions options, size_t max_body_bytes)
    : id_(id),
      options_(std::move(options)),
      max_body_bytes_(max_body_bytes),
      window_(options_.max_buf_size),
      last_received_ns_(now_ns()),
      handler_(std::move(options_.handler)) {}

StreamCore::~StreamCore() = default;

std::shared_ptr<StreamCore> StreamCore::make_relay(StreamId id, bool far_end_needs_feedback,
                                                   size_t max_body_bytes,
                                                   std::shared_ptr<StreamRelayTarget> target) {
  StreamOptions options;
  options.max_buf_size = far_end_needs_feedback ? 1 : 0;  // Only needs_feedback() reads it.
  options.idle_timeout_ms = 0;  // The far end keeps its own idle timeout.
  auto relay = std::make_shared<StreamCore>(id, std::move(options), max_body_bytes);
  relay->relay_ = std::move(target);
  return relay;
}

bool StreamCore::relay_output(GatherBuffer&& frames, std::optional<StreamEndReason> end_after) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || end_.ended())
      return false;
    outbox_.append(std::move(frames));
    if (end_after.has_value()) {
      closing_ = true;
      end_after_outbox_ = end_after;
      far_end_closed_ = true;  // Its CLOSE or RST is in the outbox.
    }
    if (!wake_pending_) {
      wake_pending_ = true;
      wake = carrier_ != nullptr;
    }
  }
  if (end_after.has_value())
    writable_.notify_all();
  if (wake)
    wake_carrier();
  return true;
}

void StreamCore::relay_reset() {
  end_after_last_frame(/*reset=*/true, StreamEndReason::kResetByPeer);
}

void StreamCore::end_after_last_frame(bool reset, StreamEndReason reason) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || end_.ended())
      return;
    closing_ = true;
    end_after_outbox_ = reason;
    // Not connected yet: connect() queues a CLOSE.
    if (carrier_ != nullptr) {
      wake = queue_frame_locked(reset ? rst_frame_meta(remote_id_) : close_frame_meta(remote_id_, id_),
                                std::string());
    }
  }
  writable_.notify_all();
  if (wake)
    wake_carrier();
}

size_t StreamCore::max_message_bytes_for(size_t max_body_bytes) {
  return max_body_bytes > kDataMetaBytes ? max_body_bytes - kDataMetaBytes : 0;
}

size_t StreamCore::max_message_bytes() const { return max_message_bytes_for(max_body_bytes_); }

StreamWriteStatus StreamCore::Write(std::string&& message) {
  if (message.size() > max_message_bytes())
    return StreamWriteStatus::kTooLarge;
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || end_.ended())
      return StreamWriteStatus::kEnded;
    if (!peer_writable_)
      return StreamWriteStatus::kPeerNotWritable;
    if (!window_.can_write()) {
      blocked_ = true;
      return StreamWriteStatus::kFull;
    }
    window_.on_written(message.size());
    // Before connect() the peer's id is not known: frames are encoded then.
    if (carrier_ == nullptr) {
      early_writes_.push_back(std::move(message));
      return StreamWriteStatus::kOk;
    }
    wake = queue_frame_locked(data_frame_meta(remote_id_, id_), std::move(message));
  }
  if (wake)
    wake_carrier();
  return StreamWriteStatus::kOk;
}

bool StreamCore::WaitWritable(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const bool ready = writable_.wait_for(lock, timeout, [&] {
    return closing_ || end_.ended() || window_.can_write();
  });
  return ready && !closing_ && !end_.ended();
}

void StreamCore::Close() {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (closing_ || end_.ended())
      return;
    closing_ = true;
    end_after_outbox_ = StreamEndReason::kClosedByUs;
    reading_stopped_.store(true, std::memory_order_relaxed);
    if (carrier_ != nullptr) {
      wake = queue_frame_locked(close_frame_meta(remote_id_, id_), std::string());
    }
    // Not connected yet: connect() queues the CLOSE after the early writes.
  }
  writable_.notify_all();
  if (wake)
    wake_carrier();
}

uint64_t StreamCore::bytes_written() const {
  std::lock_guard lock(mutex_);
  return window_.written();
}

uint64_t StreamCore::bytes_acknowledged() const {
  std::lock_guard lock(mutex_);
  return window_.acknowledged();
}

uint64_t StreamCore::bytes_received() const {
  return received_bytes_.load(std::memory_order_relaxed);
}

bool StreamCore::connect(StreamId remote_id, bool peer_needs_feedback, bool peer_writable,
                         std::shared_ptr<StreamCarrier> carrier) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (end_.ended())
      return false;
    remote_id_ = remote_id;
    peer_writable_ = peer_writable;
    if (!peer_writable)
      early_writes_.clear();  // Not for this peer: brpc would refuse them too.
    carrier_ = std::move(carrier);
    read_progress_.set_peer_needs_feedback(peer_needs_feedback);
    for (std::string& message : early_writes_)
      wake = queue_frame_locked(data_frame_meta(remote_id_, id_), std::move(message)) || wake;
    early_writes_.clear();
    early_writes_.shrink_to_fit();
    if (closing_ && !far_end_closed_)
      wake = queue_frame_locked(close_frame_meta(remote_id_, id_), std::string()) || wake;
  }
  if (wake)
    wake_carrier();
  return true;
}

bool StreamCore::connected() const {
  std::lock_guard lock(mutex_);
  return carrier_ != nullptr;
}

StreamId StreamCore::remote_id() const {
  std::lock_guard lock(mutex_);
  return remote_id_;
}

bool StreamCore::queue_frame_locked(const wire::StreamFrameMeta& meta, std::string&& data) {
  // Write() checked the size against max_body_bytes_ with room for the meta.
  encode_stream_frame(meta, std::move(data), max_body_bytes_, outbox_);
  if (wake_pending_)
    return false;
  wake_pending_ = true;
  return true;
}

void StreamCore::wake_carrier() {
  std::shared_ptr<StreamCarrier> carrier;
  {
    std::lock_guard lock(mutex_);
    carrier = carrier_;
  }
  if (carrier != nullptr)
    carrier->wake(shared_from_this());
}

std::optional<StreamEndReason> StreamCore::take_outbox(GatherBuffer& out) {
  std::lock_guard lock(mutex_);
  wake_pending_ = false;
  out.append(std::move(outbox_));
  if (closing_ && carrier_ != nullptr)
    return end_after_outbox_;
  return std::nullopt;
}

void StreamCore::on_frame(const StreamFrame& frame) {
  last_received_ns_.store(now_ns(), std::memory_order_relaxed);
  if (relay_ != nullptr) {
    if (end_.ended())
      return;
    if (frame.type() == wire::FRAME_TYPE_DATA)
      received_bytes_.fetch_add(frame.data.size(), std::memory_order_relaxed);
    relay_->forward(frame);
    if (frame.type() == wire::FRAME_TYPE_CLOSE)
      end(StreamEndReason::kClosedByPeer);
    else if (frame.type() == wire::FRAME_TYPE_RST)
      end(StreamEndReason::kResetByPeer);
    return;
  }
  switch (frame.type()) {
    case wire::FRAME_TYPE_DATA: {
      if (end_.ended() || reading_stopped_.load(std::memory_order_relaxed))
        return;  // This side stopped reading: what was in flight is dropped.
      received_bytes_.fetch_add(frame.data.size(), std::memory_order_relaxed);
      // A message, joined or not, is at most what this side may write: an
      // echo of it always fits, and a peer that never ends a message cannot
      // grow this without bound.
      if (partial_.size() + frame.data.size() > max_message_bytes()) {
        refuse_oversized_message();
        return;
      }
      if (frame.meta.has_continuation()) {
        partial_.append(frame.data);
        return;
      }
      if (partial_.empty()) {
        inbox_.emplace_back(frame.data);
      } else {
        partial_.append(frame.data);
        inbox_.push_back(std::move(partial_));
        partial_.clear();
      }
      if (inbox_.size() >= static_cast<size_t>(std::max(1, options_.messages_in_batch)))
        deliver();
      return;
    }
    case wire::FRAME_TYPE_FEEDBACK: {
      bool reopened = false;
      bool tell_handler = false;
      {
        std::lock_guard lock(mutex_);
        reopened = window_.on_feedback(frame.meta.feedback().consumed_size());
        // The handler hears of it after a Write said kFull; WaitWritable
        // may be waiting without one.
        tell_handler = reopened && blocked_;
        if (tell_handler)
          blocked_ = false;
      }
      if (reopened)
        writable_.notify_all();
      if (tell_handler) {
        std::lock_guard callbacks(callback_mutex_);
        if (handler_ != nullptr && !end_.ended())
          handler_->on_writable(*this);
      }
      return;
    }
    case wire::FRAME_TYPE_CLOSE:
      // What came before the CLOSE is the handler's first, without a
      // FEEDBACK: the peer's end is gone, and would answer it RST.
      peer_ended_ = true;
      deliver();
      end(StreamEndReason::kClosedByPeer);
      return;
    case wire::FRAME_TYPE_RST:
      peer_ended_ = true;
      deliver();
      end(StreamEndReason::kResetByPeer);
      return;
    default:
      return;  // An unknown type from a newer peer: ignored.
  }
}

void StreamCore::refuse_oversized_message() {
  reading_stopped_.store(true, std::memory_order_relaxed);
  partial_.clear();
  partial_.shrink_to_fit();
  end_after_last_frame(/*reset=*/true, StreamEndReason::kMessageTooLarge);
}

void StreamCore::deliver() {
  if (inbox_.empty())
    return;
  std::vector<std::string> batch;
  batch.swap(inbox_);
  uint64_t consumed = 0;
  {
    std::lock_guard callbacks(callback_mutex_);
    const size_t step = static_cast<size_t>(std::max(1, options_.messages_in_batch));
    for (size_t begin = 0; begin < batch.size(); begin += step) {
      const size_t count = std::min(step, batch.size() - begin);
      for (size_t i = begin; i < begin + count; ++i)
        consumed += batch[i].size();
      if (handler_ != nullptr && !end_.ended())
        handler_->on_received_messages(*this, std::span<std::string>(batch.data() + begin, count));
    }
  }
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    read_progress_.on_consumed(consumed);
    // Nothing follows this side's CLOSE or RST (a brpc peer would RST it).
    if (read_progress_.feedback_due() && carrier_ != nullptr && !end_.ended() && !closing_ &&
        !peer_ended_) {
      wake = queue_frame_locked(feedback_frame_meta(remote_id_, id_, read_progress_.take_feedback()),
                                std::string());
    }
  }
  if (wake)
    wake_carrier();
}

bool StreamCore::end(StreamEndReason reason) {
  if (!end_.end(reason))
    return false;
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  writable_.notify_all();
  std::shared_ptr<StreamHandler> handler;
  std::lock_guard callbacks(callback_mutex_);
  handler.swap(handler_);
  if (handler != nullptr)
    handler->on_closed(*this, reason);
  if (relay_ != nullptr)
    relay_->on_relay_end(reason);
  return true;
}

void StreamCore::check_idle(Clock::time_point now) {
  if (options_.idle_timeout_ms <= 0 || end_.ended())
    return;
  const int64_t idle_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() -
      last_received_ns_.load(std::memory_order_relaxed);
  if (idle_ns < int64_t{options_.idle_timeout_ms} * 1000000)
    return;
  end_after_last_frame(/*reset=*/false, StreamEndReason::kIdleTimeout);
}

}  // namespace percore::detail
