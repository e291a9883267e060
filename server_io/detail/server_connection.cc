#include "server_io/detail/server_connection.h"

#include <cstdio>

#include "proto/assert.h"
#include "proto/frame.h"
#include "server_io/detail/io_thread.h"
#include "server_io/detail/server_core.h"
#include "server_io/detail/worker_pool.h"

namespace percore::detail {
namespace {

// Free space offered to each read; a known larger frame gets room for all of
// it (FrameDecoder::prepare).
constexpr size_t kReadBytes = 64 * 1024;

std::string describe_peer(const boost::asio::ip::tcp::socket& socket) {
  boost::system::error_code error;
  const auto endpoint = socket.remote_endpoint(error);
  if (error)
    return "unknown peer";
  const auto address = endpoint.address();
  return (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
         std::to_string(endpoint.port());
}

}  // namespace

ServerConnection::ServerConnection(IoThread& io_thread, ServerCore& core,
                                   boost::asio::ip::tcp::socket socket, uint64_t id)
    : io_thread_(io_thread),
      core_(core),
      socket_(std::move(socket)),
      id_(id),
      peer_(describe_peer(socket_)),
      decoder_(FrameDecoderOptions{core.options.max_body_bytes}) {}

void ServerConnection::start() {
  io_thread_.assert_in_loop_thread();
  boost::system::error_code ignored;
  socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
  read_more();
}

void ServerConnection::read_more() {
  if (reading_ || read_paused_ || closing_ || closed_)
    return;
  reading_ = true;
  std::span<char> space = decoder_.prepare(kReadBytes);
  socket_.async_read_some(
      boost::asio::buffer(space.data(), space.size()),
      [self = shared_from_this()](const boost::system::error_code& error, size_t bytes) {
        self->on_read(error, bytes);
      });
}

void ServerConnection::on_read(const boost::system::error_code& error, size_t bytes) {
  io_thread_.assert_in_loop_thread();
  reading_ = false;
  if (closed_)
    return;
  if (error) {
    // EOF or a reset: the peer is gone; answers still queued cannot be sent.
    close();
    return;
  }
  decoder_.commit(bytes);
  if (closing_)
    return;
  last_read_at_ = ServerCall::Clock::now();
  process_frames();
  flush();
  read_more();
}

void ServerConnection::process_frames() {
  if (in_read_pass_)
    return;
  in_read_pass_ = true;
  const int limit = core_.options.max_inflight_per_connection;
  while (!closed_ && !closing_) {
    if (in_flight_calls_ >= limit) {
      read_paused_ = true;
      break;
    }
    const DecodeStatus status = decoder_.next(frame_);
    if (status == DecodeStatus::kNeedMore)
      break;
    if (is_rejection(status)) {
      reject(status);
      break;
    }
    dispatch(frame_);
  }
  in_read_pass_ = false;
}

void ServerConnection::reject(DecodeStatus status) {
  core_.count_rejected(status);
  std::fprintf(stderr, "percore: closing connection from %s: %.*s\n", peer_.c_str(),
               static_cast<int>(decode_status_text(status).size()),
               decode_status_text(status).data());
  close();
}

void ServerConnection::dispatch(const Frame& frame) {
  const wire::RpcMeta& meta = frame.meta;
  const int64_t correlation_id = meta.correlation_id();
  if (!frame.is_request()) {
    // A server never sent a request, so a response here is a broken peer.
    std::fprintf(stderr, "percore: closing connection from %s: response frame sent to a server\n",
                 peer_.c_str());
    core_.count_rejected(DecodeStatus::kNeitherRequestNorResponse);
    close();
    return;
  }
  const wire::RpcRequestMeta& request_meta = meta.request();
  auto answer_error = [&](MethodEntry* method, ErrorCode code, const std::string& text) {
    io_thread_.answer(*this, correlation_id, method, to_int(code), text, nullptr, std::string(),
                      last_read_at_);
  };

  if (core_.stopping.load(std::memory_order_acquire)) {
    answer_error(nullptr, ErrorCode::kServerStopping, "server is stopping");
    return;
  }
  const auto* methods = core_.services.find_service(request_meta.service_name());
  if (methods == nullptr) {
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
  if (meta.compress_type() != static_cast<int32_t>(CompressType::kNone)) {
    answer_error(method, ErrorCode::kBadRequest,
                 "unsupported compress_type " + std::to_string(meta.compress_type()) +
                     " (only 0, none, is supported)");
    return;
  }

  ServerCall* raw_call = io_thread_.acquire_call(*method, id_, correlation_id, last_read_at_);
  if (!raw_call->request()->ParseFromArray(frame.message.data(),
                                           static_cast<int>(frame.message.size()))) {
    const std::string type = raw_call->request()->GetTypeName();
    io_thread_.recycle(raw_call);
    answer_error(method, ErrorCode::kBadRequest, "request does not parse as " + type);
    return;
  }
  raw_call->set_request_context(peer_, request_meta.log_id(), request_meta.timeout_ms(),
                                frame.attachment);
  // Owned by the in-flight list from here.
  io_thread_.track(raw_call);
  ++in_flight_calls_;
  if (method->mode == ExecutionMode::kInline) {
    raw_call->execute();
  } else if (!core_.workers->try_submit(raw_call)) {
    raw_call->controller().SetFailed(ErrorCode::kServerLimitReached,
                                     "worker queue is full (" +
                                         std::to_string(core_.options.worker_queue_capacity) +
                                         " requests waiting)");
    raw_call->Run();
  }
}

void ServerConnection::answer_queued() {
  // Inside a read pass the pass flushes once at its end, batching answers.
  if (!in_read_pass_)
    flush();
}

void ServerConnection::call_answered() {
  io_thread_.assert_in_loop_thread();
  PERCORE_ASSERT(in_flight_calls_ > 0);
  --in_flight_calls_;
  if (read_paused_ && in_flight_calls_ < core_.options.max_inflight_per_connection &&
      !in_read_pass_) {
    read_paused_ = false;
    // Frames already buffered go first, then the socket again.
    process_frames();
    flush();
    read_more();
  }
}

void ServerConnection::flush() {
  if (writing_ || closed_ || in_read_pass_)
    return;
  if (pending_output_.empty()) {
    if (closing_)
      close();
    return;
  }
  pending_output_.swap(writing_output_);
  write_buffers_.clear();
  for (size_t i = 0; i < writing_output_.chunk_count(); ++i) {
    const std::string_view chunk = writing_output_.chunk(i);
    write_buffers_.emplace_back(chunk.data(), chunk.size());
  }
  writing_ = true;
  auto on_written = [self = shared_from_this()](const boost::system::error_code& error, size_t) {
    self->on_written(error);
  };
  // async_write keeps a copy of the buffer sequence: a vector would be
  // copied (allocated) per write, so the usual single-chunk batch goes as one
  // buffer.
  if (write_buffers_.size() == 1) {
    boost::asio::async_write(socket_, write_buffers_.front(), std::move(on_written));
  } else {
    boost::asio::async_write(socket_, write_buffers_, std::move(on_written));
  }
}

void ServerConnection::on_written(const boost::system::error_code& error) {
  io_thread_.assert_in_loop_thread();
  writing_ = false;
  writing_output_.clear();
  if (closed_)
    return;
  if (error) {
    close();
    return;
  }
  flush();
}

void ServerConnection::close_after_flush() {
  io_thread_.assert_in_loop_thread();
  if (closed_)
    return;
  closing_ = true;
  if (!writing_ && !in_read_pass_)
    flush();
}

void ServerConnection::close() {
  io_thread_.assert_in_loop_thread();
  if (closed_)
    return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  core_.connections_closed.fetch_add(1, std::memory_order_relaxed);
  io_thread_.remove_connection(id_);
}

}  // namespace percore::detail
