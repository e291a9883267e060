#include <percore/client_proxy/detail/receive_thread.h>

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <percore/client_proxy/controller.h>
#include <percore/client_proxy/detail/send_thread.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/health_check.h>

namespace percore::detail {
namespace {

constexpr size_t kReadBytes = 64 * 1024;

}  // namespace

ReceiveThread::ReceiveThread(GroupState& group, SendThread& send)
    : group_(group), send_(send), loop_(group.receive_loop) {}

void ReceiveThread::run() {
  loop_.run(*this);
}

void ReceiveThread::post_adopt(ClientConnection& connection, int fd) {
  loop_.post([this, &connection, fd] { adopt(connection, fd); });
}

void ReceiveThread::post_release(uint64_t connection_id) {
  loop_.post([this, connection_id] { release(connection_id); });
}

void ReceiveThread::post_shutdown() {
  loop_.post([this] { loop_.stop(); });
}

void ReceiveThread::adopt(ClientConnection& connection, int fd) {
  loop_.assert_in_loop_thread();
  connection.receive_side().fd = fd;
  adopted_.emplace(connection.id, &connection);
  loop_.watch(fd, EPOLLIN, connection.id);
}

void ReceiveThread::release(uint64_t connection_id) {
  loop_.assert_in_loop_thread();
  const auto found = adopted_.find(connection_id);
  // Already let go (it failed here first): the send thread has been told.
  if (found != adopted_.end())
    let_go(*found->second, ConnectionPool::LetGo::kAsked, std::string());
}

void ReceiveThread::on_event(uint64_t tag, uint32_t) {
  loop_.assert_in_loop_thread();
  // Looked up, not taken from the event: the connection may have been let go
  // earlier in this batch.
  const auto found = adopted_.find(tag);
  if (found != adopted_.end())
    read(*found->second);
}

void ReceiveThread::read(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ClientConnection::ReceiveSide& side = connection.receive_side();
  if (connection.tls != nullptr && tls_input_ == nullptr)
    tls_input_ = std::make_unique<char[]>(kReadBytes);
  for (;;) {
    // Clear text lands in the decoder; TLS records in a buffer of this
    // thread's, decrypted into the decoder.
    const std::span<char> space = connection.tls != nullptr
                                      ? std::span<char>(tls_input_.get(), kReadBytes)
                                      : side.decoder.prepare(kReadBytes);
    const ssize_t bytes = ::read(side.fd, space.data(), space.size());
    if (bytes < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      let_go(connection, ConnectionPool::LetGo::kError,
             std::string("read failed: ") + std::strerror(errno));
      return;
    }
    if (bytes == 0) {
      if (connection.tls != nullptr && !connection.tls->handshake_done()) {
        // A server that does not speak TLS on this port closes at the
        // ClientHello's first byte.
        let_go(connection, ConnectionPool::LetGo::kTlsFailed,
               "TLS handshake with " + connection.remote_side +
                   " failed: the server closed the connection (does it serve TLS on this port?)");
        return;
      }
      let_go(connection, ConnectionPool::LetGo::kEndOfStream, "closed by the server");
      return;
    }
    // Progress for the send thread's liveness check; this thread alone writes.
    connection.reads.store(connection.reads.load(std::memory_order_relaxed) + 1,
                           std::memory_order_relaxed);
    if (connection.tls != nullptr) {
      if (!decrypt(connection, std::string_view(space.data(), static_cast<size_t>(bytes))))
        return;
    } else {
      side.decoder.commit(static_cast<size_t>(bytes));
      if (!decode_frames(connection))
        return;
    }
    // A short read means the socket is drained; epoll will say when more comes.
    if (static_cast<size_t>(bytes) < space.size())
      return;
  }
}

bool ReceiveThread::decrypt(ClientConnection& connection, std::string_view bytes) {
  loop_.assert_in_loop_thread();
  size_t plain_bytes = 0;
  bool wants_flush = false;
  std::string failure;
  const TlsSession::Status status = connection.tls->decrypt(
      bytes, connection.receive_side().decoder, &plain_bytes, &wants_flush, &failure);
  if (wants_flush)
    send_.post_flush(connection.id);
  // Answers decrypted before a close or a failure are answers all the same.
  if (plain_bytes > 0 && !decode_frames(connection))
    return false;
  if (status == TlsSession::Status::kFailed) {
    let_go(connection, ConnectionPool::LetGo::kTlsFailed, std::move(failure));
    return false;
  }
  if (status == TlsSession::Status::kClosed) {
    let_go(connection, ConnectionPool::LetGo::kEndOfStream, "closed by the server");
    return false;
  }
  return true;
}

bool ReceiveThread::decode_frames(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ClientConnection::ReceiveSide& side = connection.receive_side();
  {
    for (;;) {
      const DecodeStatus status = side.decoder.next(side.frame, side.stream_frame);
      if (status == DecodeStatus::kNeedMore)
        break;
      if (is_rejection(status)) {
        deliver_stream_input();
        RouteCounters::bump(connection.counters.malformed_responses);
        let_go(connection, ConnectionPool::LetGo::kError,
               "malformed frame from the server: " + std::string(decode_status_text(status)));
        return false;
      }
      const bool kept = status == DecodeStatus::kStreamFrame
                            ? handle_stream_frame(connection, side.stream_frame)
                            : handle_frame(connection, side.frame);
      if (!kept) {
        deliver_stream_input();
        return false;
      }
    }
    deliver_stream_input();
  }
  return true;
}

bool ReceiveThread::handle_stream_frame(ClientConnection& connection, const StreamFrame& frame) {
  loop_.assert_in_loop_thread();
  const StreamRegistry::Entry entry = group_.streams.find(frame.stream_id());
  const bool known = entry.stream != nullptr &&
                     (entry.connection_id == 0 || entry.connection_id == connection.id);
  if (known && entry.connection_id == connection.id) {
    // A connected stream's frame.
    const std::shared_ptr<StreamCore>& stream = entry.stream;
    if (frame.type() == wire::FRAME_TYPE_DATA &&
        (streams_with_input_.empty() || streams_with_input_.back() != stream)) {
      streams_with_input_.push_back(stream);
    }
    stream->on_frame(frame);
    if (stream->ended())
      group_.streams.remove(stream->id());
    return true;
  }
  if (known && frame.type() == wire::FRAME_TYPE_DATA) {
    // Not connected yet: this DATA carries the response of the call that
    // attached the stream (brpc's SendRpcResponse with a remote stream).
    FrameDecoder inner(FrameDecoderOptions{connection.receive_side().decoder.max_body_bytes()});
    const std::span<char> space = inner.prepare(frame.data.size());
    std::copy(frame.data.begin(), frame.data.end(), space.begin());
    inner.commit(frame.data.size());
    Frame response;
    const DecodeStatus status = inner.next(response);
    if (status != DecodeStatus::kFrame || inner.buffered_bytes() != 0) {
      RouteCounters::bump(connection.counters.malformed_responses);
      let_go(connection, ConnectionPool::LetGo::kError,
             "malformed response inside a stream's first DATA frame from the server");
      return false;
    }
    const CallTable::Slot slot = CallTable::slot_of(response.meta.correlation_id());
    const bool ours =
        group_.table.is_pending(slot) &&
        group_.records[slot.index].queued_on.load(std::memory_order_acquire) == connection.id;
    const bool accepted = response.meta.has_stream_settings() &&
                          response.meta.response().error_code() == 0;
    if (ours && accepted && group_.streams.bind(entry.stream->id(), connection.id)) {
      const wire::StreamSettings& settings = response.meta.stream_settings();
      // Connected before the call completes: the caller may write at once.
      entry.stream->connect(settings.stream_id(), settings.need_feedback(),
                            !settings.has_writable() || settings.writable(),
                            send_.stream_carrier(connection.id));
    } else if (!ours && response.meta.has_stream_settings()) {
      // The call ended already: the server's stream is refused (brpc RSTs).
      GatherBuffer rst;
      encode_stream_frame(rst_frame_meta(response.meta.stream_settings().stream_id()),
                          std::string(), kDefaultMaxBodyBytes, rst);
      send_rst(connection.id, rst);
    }
    return handle_frame(connection, response, /*stream_call=*/true);
  }
  RouteCounters::bump(connection.counters.stale_replies);
  // A frame for a stream this group does not know here: RST to its sender,
  // as brpc does; an RST is never answered.
  if (frame.type() != wire::FRAME_TYPE_RST && frame.meta.has_source_stream_id() &&
      frame.meta.source_stream_id() >= 0) {
    GatherBuffer rst;
    encode_stream_frame(rst_frame_meta(frame.meta.source_stream_id()), std::string(),
                        kDefaultMaxBodyBytes, rst);
    send_rst(connection.id, rst);
  }
  return true;
}

void ReceiveThread::send_rst(uint64_t connection_id, const GatherBuffer& frame) {
  std::string bytes;
  for (size_t i = 0; i < frame.chunk_count(); ++i)
    bytes.append(frame.chunk(i));
  send_.post_stream_frame(connection_id, std::move(bytes));
}

void ReceiveThread::deliver_stream_input() {
  loop_.assert_in_loop_thread();
  for (const std::shared_ptr<StreamCore>& stream : streams_with_input_)
    stream->deliver();
  streams_with_input_.clear();
}

bool ReceiveThread::handle_frame(ClientConnection& connection, const Frame& frame,
                                 bool stream_call) {
  loop_.assert_in_loop_thread();
  if (frame.is_request()) {
    RouteCounters::bump(connection.counters.malformed_responses);
    let_go(connection, ConnectionPool::LetGo::kError, "the server sent a request frame");
    return false;
  }
  const CallTable::Slot slot = CallTable::slot_of(frame.meta.correlation_id());
  // A reply counts only for a pending call queued on this very connection:
  // ids are the group's, and the group's connections go to the servers of
  // every Channel that shares it. Anything else is late, doubled or forged.
  if (!group_.table.is_pending(slot) ||
      group_.records[slot.index].queued_on.load(std::memory_order_acquire) != connection.id) {
    if (frame.meta.correlation_id() == kHealthProbeCorrelationId) {
      if (frame.meta.response().error_code() == to_int(ErrorCode::kUnauthorized)) {
        // The hello (or a probe) carried a credential the server refused.
        let_go(connection, ConnectionPool::LetGo::kUnauthorized,
               "the server refused this connection (1004): " +
                   frame.meta.response().error_text());
        return false;
      }
      send_.post_probe_answered(connection.id);  // Any answer: it is alive.
    } else {
      RouteCounters::bump(connection.counters.stale_replies);
    }
    return true;
  }
  const int32_t code = frame.meta.response().error_code();
  if (code == to_int(ErrorCode::kServerStopping) && !stream_call) {
    // The server did not run it: the send thread sends it elsewhere.
    send_.post_resend(slot, connection.id);
    return true;
  }
  if (!group_.table.try_complete(slot)) {
    RouteCounters::bump(connection.counters.stale_replies);
    return true;
  }
  connection.outstanding.fetch_sub(1, std::memory_order_relaxed);
  const CallRecord::Call& call = group_.records[slot.index].call;
  if (code != 0) {
    const std::string& text = frame.meta.response().error_text();
    const bool refused = code == to_int(ErrorCode::kUnauthorized) &&
                         text.starts_with(kAuthenticationFailedText);
    std::string why;
    if (refused)
      why = "the server refused this connection (1004): " + text;
    CallCompleter::finish(group_, slot, static_cast<ErrorCode>(code), text,
                          connection.remote_side);
    if (refused) {
      // The server closes this connection after its answers: the calls
      // behind this one end 1004 too rather than find it broken.
      let_go(connection, ConnectionPool::LetGo::kUnauthorized, std::move(why));
      return false;
    }
    return true;
  }
  const int32_t compress_type = frame.meta.compress_type();
  if (!is_supported_compress_type(compress_type)) {
    CallCompleter::finish(group_, slot, ErrorCode::kBadResponse,
                          "response uses compress_type " + std::to_string(compress_type) +
                              ", which is not one of 0 none, 1 snappy, 2 gzip, 3 zlib",
                          connection.remote_side);
    return true;
  }
  // Decompressed here, where responses are parsed: bounded by the
  // Channel's max_body_bytes (docs/ARCHITECTURE.md says why here).
  std::string parse_error;
  if (call.response != nullptr &&
      !response_parser_.parse(frame.message, static_cast<CompressType>(compress_type),
                              call.route->options.max_body_bytes, *call.response,
                              &parse_error)) {
    CallCompleter::finish(group_, slot, ErrorCode::kBadResponse, "response " + parse_error,
                          connection.remote_side);
    return true;
  }
  call.controller->response_compress_type_ = static_cast<CompressType>(compress_type);
  call.controller->response_attachment().assign(frame.attachment.data(), frame.attachment.size());
  CallCompleter::finish(group_, slot, ErrorCode::kOk, std::string(), connection.remote_side);
  return true;
}

void ReceiveThread::let_go(ClientConnection& connection, ConnectionPool::LetGo how,
                           std::string reason) {
  loop_.assert_in_loop_thread();
  ClientConnection::ReceiveSide& side = connection.receive_side();
  loop_.unwatch(side.fd);
  side.fd = -1;
  adopted_.erase(connection.id);
  send_.post_released(connection.id, how, std::move(reason));
  // `connection` may be freed by the send thread from here on.
}

}  // namespace percore::detail
