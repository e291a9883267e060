#include <percore/server_io/detail/io_thread.h>

#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/server_io/detail/http_connection.h>
#include <percore/server_io/detail/process_pool.h>
#include <percore/server_io/detail/server_connection.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/web_socket_session.h>
#include <percore/server_io/detail/worker_pool.h>

namespace percore::detail {
namespace {

// Error texts are cut to this many bytes (at a UTF-8 boundary).
constexpr size_t kMaxErrorTextBytes = 1024;

std::string bounded_error_text(const std::string& text) {
  if (text.size() <= kMaxErrorTextBytes)
    return text;
  size_t cut = kMaxErrorTextBytes - 64;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  return text.substr(0, cut) + "... (" + std::to_string(text.size()) + " bytes in all)";
}

uint64_t microseconds_since(ServerCall::Clock::time_point start) {
  const auto elapsed = ServerCall::Clock::now() - start;
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()));
}

}  // namespace

// Read blocks: 64 KiB, the most one read takes in the common case; a few
// cached per thread, enough for the connections that are read in one loop
// pass.
constexpr size_t kReadBlockBytes = 64 * 1024;
constexpr size_t kCachedReadBlocks = 16;

IoThread::IoThread(ServerCore& core, int index)
    : core_(core),
      index_(index),
      read_blocks_(kReadBlockBytes, kCachedReadBlocks),
      call_pool_(core.services.method_count()),
      unanswered_calls_(*core.unanswered_calls_by_thread.at(static_cast<size_t>(index))) {}

IoThread::~IoThread() {
  stream_gate_->close();  // Writers of streams stop posting here.
  join();
  for (std::vector<ServerCall*>& calls : call_pool_) {
    for (ServerCall* call : calls)
      delete call;
  }
}

ServerCall* IoThread::acquire_call(MethodEntry& method, uint64_t connection_id,
                                   int64_t correlation_id,
                                   ServerCall::Clock::time_point received_at) {
  assert_in_loop_thread();
  if (method.index >= call_pool_.size())
    call_pool_.resize(method.index + 1);  // A method added after this thread was made.
  std::vector<ServerCall*>& pool = call_pool_[method.index];
  ServerCall* call;
  if (pool.empty()) {
    call = new ServerCall(*this, method);
  } else {
    call = pool.back();
    pool.pop_back();
  }
  call->begin(connection_id, correlation_id, received_at);
  return call;
}

void IoThread::recycle(ServerCall* call) {
  assert_in_loop_thread();
  // Bounded: a burst larger than this frees its extra calls, and a call that
  // held large messages is freed, so the pool holds at most
  // kMaxPooledPerMethod x (kMaxPooledBytes + the call's own size) per method.
  constexpr size_t kMaxPooledPerMethod = 1024;
  std::vector<ServerCall*>& pool = call_pool_[call->method().index];
  if (pool.size() >= kMaxPooledPerMethod || call->held_large_data()) {
    delete call;
  } else {
    pool.push_back(call);
  }
}

void IoThread::start() {
  work_guard_.emplace(context_.get_executor());
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    for (;;) {
      try {
        context_.run();
        return;
      } catch (const std::bad_alloc&) {
        // Out of memory in a handler: the server keeps serving. The
        // connection being read closes itself (ServerConnection::on_read);
        // anything else in that handler is lost, and said so.
        core_.allocation_failures.fetch_add(1, std::memory_order_relaxed);
        core_.allocation_failure_log.log(LogLevel::kError, [] {
          return std::string("out of memory in an I/O thread handler; continuing");
        });
      }
    }
  });
}

void IoThread::join() {
  if (!thread_.joinable())
    return;
  boost::asio::post(context_, [this] {
    joining_ = true;
    sweep_timer_.cancel();
  });
  work_guard_.reset();
  thread_.join();
}

void IoThread::assert_in_loop_thread() const {
  PERCORE_ASSERT(in_loop_thread());
}

void IoThread::adopt(boost::asio::ip::tcp::socket socket) {
  boost::asio::post(context_, [this, socket = std::move(socket)]() mutable {
    // The thread index in the high bits keeps ids unique across threads.
    const uint64_t id = (static_cast<uint64_t>(index_) << 48) | ++next_connection_serial_;
    auto connection = std::make_shared<ServerConnection>(*this, core_, std::move(socket), id);
    connections_.emplace(id, connection);
    core_.connections_accepted.fetch_add(1, std::memory_order_relaxed);
    arm_sweep();
    connection->start();
  });
}

void IoThread::arm_sweep() {
  assert_in_loop_thread();
  if (sweep_armed_ || joining_)
    return;
  sweep_armed_ = true;
  sweep_timer_.expires_after(core_.sweep_interval());
  sweep_timer_.async_wait([this](const boost::system::error_code& error) {
    sweep_armed_ = false;
    if (!error)
      sweep();
  });
}

void IoThread::sweep() {
  assert_in_loop_thread();
  const ServerCall::Clock::time_point now = ServerCall::Clock::now();
  // Closing only posts the removal from the table, so iterating is safe.
  for (auto& [id, connection] : connections_)
    connection->check_timeouts(now);
  for (auto& [id, connection] : http_connections_)
    connection->check_timeouts(now);
  for (auto& [id, session] : web_sockets_)
    session->check_timeouts(now);
  if (!connections_.empty() || !http_connections_.empty() || !web_sockets_.empty())
    arm_sweep();
}

void IoThread::finish_call(ServerCall* call) {
  if (in_loop_thread()) {
    complete_call(call);
  } else {
    boost::asio::post(context_, [this, call] { complete_call(call); });
  }
}

void IoThread::track(ServerCall* call) {
  assert_in_loop_thread();
  call->next_in_flight = in_flight_head_;
  if (in_flight_head_ != nullptr)
    in_flight_head_->previous_in_flight = call;
  in_flight_head_ = call;
  unanswered_calls_.enter();
}

void IoThread::run_call(ServerCall* call) {
  assert_in_loop_thread();
  track(call);
  const ExecutionMode mode = call->method().mode;
  if (mode == ExecutionMode::kInline) {
    call->execute();
  } else if (mode == ExecutionMode::kProcessPool) {
    if (!core_.processes->try_submit(call)) {
      call->controller().SetFailed(ErrorCode::kServerLimitReached,
                                   std::string("worker process queue is full (") +
                                       std::to_string(core_.options.process_queue_capacity) +
                                       " requests waiting)");
      call->Run();
    }
  } else if (!core_.workers->try_submit(call)) {
    call->controller().SetFailed(ErrorCode::kServerLimitReached,
                                 "worker queue is full (" +
                                     std::to_string(core_.options.worker_queue_capacity) +
                                     " requests waiting)");
    call->Run();
  }
}

void IoThread::adopt_http(uint64_t connection_id, ServerSocket socket,
                          const std::string& peer, std::string_view received) {
  assert_in_loop_thread();
  auto connection = std::make_shared<HttpConnection>(*this, core_, std::move(socket),
                                                     connection_id, peer, received);
  http_connections_.emplace(connection_id, connection);
  connection->start();
}

void IoThread::remove_http_connection(uint64_t connection_id) {
  assert_in_loop_thread();
  boost::asio::post(context_, [this, connection_id] { http_connections_.erase(connection_id); });
}

void IoThread::add_web_socket(std::shared_ptr<WebSocketSession> session) {
  assert_in_loop_thread();
  // The HTTP connection of the same id leaves the table at the end of this
  // pass (posted); the session is found first meanwhile (complete_call).
  web_sockets_.emplace(session->id(), session);
  arm_sweep();
  session->start();
}

void IoThread::remove_web_socket(uint64_t connection_id) {
  assert_in_loop_thread();
  boost::asio::post(context_, [this, connection_id] { web_sockets_.erase(connection_id); });
}

void IoThread::untrack(ServerCall* call) {
  if (call->previous_in_flight != nullptr) {
    call->previous_in_flight->next_in_flight = call->next_in_flight;
  } else {
    in_flight_head_ = call->next_in_flight;
  }
  if (call->next_in_flight != nullptr) {
    call->next_in_flight->previous_in_flight = call->previous_in_flight;
  }
}

void IoThread::complete_call(ServerCall* call) {
  assert_in_loop_thread();
  untrack(call);
  if (!call->abandoned.load(std::memory_order_acquire)) {
    unanswered_calls_.leave();
    ServerController& controller = call->controller();
    const int32_t code = controller.ErrorCode();
    std::shared_ptr<ServerConnection> connection = find_connection(call->connection_id());
    std::shared_ptr<HttpConnection> http;
    std::shared_ptr<WebSocketSession> web_socket;
    if (connection == nullptr &&
        (web_socket = find_web_socket(call->connection_id())) != nullptr) {
      web_socket->answer_call(*call);  // Takes the accepted stream when it connects it.
    } else if (connection == nullptr &&
               (http = find_http_connection(call->connection_id())) != nullptr) {
      http->answer_call(*call);
    } else if (connection == nullptr) {
      if (std::shared_ptr<StreamCore> stream = call->take_accepted_stream())
        stream->end(StreamEndReason::kConnectionBroken);
      count_dropped(&call->method(), code, call->received_at());
      call->note_answer_bytes(call->response()->ByteSizeLong() +
                              controller.response_attachment().size());
    } else {
      // Run() compressed the response when the handler asked and it could.
      const CompressType compress_type = call->compressed_response().empty()
                                             ? CompressType::kNone
                                             : controller.response_compress_type();
      StreamReply stream{call->remote_stream_id(), call->remote_stream_needs_feedback(),
                         call->take_accepted_stream(), /*dispatched=*/true,
                         call->remote_stream_writable()};
      call->note_answer_bytes(answer(*connection, call->correlation_id(), &call->method(), code,
                                     controller.ErrorText(), call->response(),
                                     std::move(controller.response_attachment()),
                                     call->received_at(), compress_type,
                                     call->compressed_response(),
                                     stream.remote_id >= 0 ? &stream : nullptr, call));
      connection->call_answered();  // Writes the answer.
    }
  }
  // A stream accepted by a call that was abandoned (Stop) never connects.
  if (std::shared_ptr<StreamCore> stream = call->take_accepted_stream())
    stream->end(StreamEndReason::kNotAccepted);
  if (google::protobuf::Closure* on_end = call->take_end_callback())
    on_end->Run();
  recycle(call);
}

size_t IoThread::answer(ServerConnection& connection, int64_t correlation_id, MethodEntry* method,
                        int32_t code, const std::string& text,
                        const google::protobuf::Message* response, std::string&& attachment,
                        ServerCall::Clock::time_point received_at, CompressType compress_type,
                        std::string_view compressed_response, StreamReply* stream,
                        ServerCall* response_of) {
  assert_in_loop_thread();
  std::string error_text;
  if (code == 0 && response != nullptr && !response->IsInitialized()) {
    code = to_int(ErrorCode::kInternal);
    error_text = "response misses required fields: " + response->InitializationErrorString();
  }
  const size_t output_before = connection.output().size();
  // A stream call's answer is encoded aside, then wrapped.
  GatherBuffer& output = stream != nullptr ? stream_reply_ : connection.output();
#if !defined(NDEBUG)
  // Debug builds of generated code log each string that is not UTF-8 when
  // it is serialized; an echoed peer string must not make a line per answer.
  google::protobuf::LogSilencer silence_protobuf;
#endif
  std::string bounded_text;
  for (int attempt = 0; attempt < 2; ++attempt) {
    // Written without an RpcMeta (ResponseMetaEncoder): per answer, that is
    // a few bytes, not a protobuf message to clear, size and serialize.
    ResponseMetaEncoder::Fields meta;
    meta.correlation_id = correlation_id;
    const bool ok = code == 0;
    if (!ok) {
      meta.error_code = code;
      // Bounded, so that an error answer always fits (names in it come from
      // the peer).
      bounded_text = bounded_error_text(error_text.empty() ? text : error_text);
      meta.error_text = bounded_text;
    } else if (stream != nullptr && stream->accepted != nullptr) {
      meta.stream_id = stream->accepted->id();
      meta.stream_need_feedback = stream->accepted->needs_feedback();
    }
    EncodeStatus status;
    if (ok && compress_type != CompressType::kNone) {
      // brpc writes the response's compress_type in its meta
      // (baidu_rpc_protocol.cpp, SendRpcResponse); the attachment stays raw.
      meta.compress_type = static_cast<int32_t>(compress_type);
      status = encode_frame(meta, compressed_response, std::move(attachment),
                            core_.options.max_body_bytes, output);
    } else {
      // Cleared rather than `ok ? move : std::string()`, which would build a
      // temporary string for every answer.
      if (!ok)
        attachment.clear();
      if (ok && response != nullptr && response_of != nullptr) {
        // A large response is referenced, not copied: the call lends it to
        // the output until written.
        status = encode_frame_referencing(
            meta, *response, [response_of] { return response_of->lend_response(); },
            std::move(attachment), core_.options.max_body_bytes, output);
      } else {
        status = encode_frame(meta, ok ? response : nullptr, std::move(attachment),
                              core_.options.max_body_bytes, output);
      }
    }
    if (status == EncodeStatus::kOk)
      break;
    // The reply is too large for the limit: answer with an error instead.
    code = to_int(ErrorCode::kInternal);
    error_text =
        "response exceeds max_body_bytes (" + std::to_string(core_.options.max_body_bytes) + ")";
  }
  if (stream != nullptr)
    wrap_stream_reply(connection, code == 0, *stream);
  count_answer(method, code, received_at);
  return connection.output().size() - output_before;
}

void IoThread::wrap_stream_reply(ServerConnection& connection, bool ok, StreamReply& stream) {
  std::string frame;
  frame.reserve(stream_reply_.size());
  for (size_t i = 0; i < stream_reply_.chunk_count(); ++i)
    frame.append(stream_reply_.chunk(i));
  stream_reply_.clear();
  const bool connects = ok && stream.accepted != nullptr;
  // The header and meta of the DATA frame come on top of an answer that fit
  // max_body_bytes; the client's decoder allows the same margin.
  encode_stream_frame(data_frame_meta(stream.remote_id,
                                      connects ? stream.accepted->id() : kInvalidStreamId),
                      std::move(frame), core_.options.max_body_bytes + kStreamWrapBytes,
                      connection.output());
  if (stream.dispatched)
    connection.stream_call_answered();
  if (connects) {
    connection.add_stream(std::move(stream.accepted), stream.remote_id,
                          stream.remote_needs_feedback, stream.remote_writable);
  } else if (stream.accepted != nullptr) {
    stream.accepted->end(StreamEndReason::kNotAccepted);
  }
}

void IoThread::flush_stream(uint64_t connection_id, const std::shared_ptr<StreamCore>& stream) {
  assert_in_loop_thread();
  if (std::shared_ptr<ServerConnection> connection = find_connection(connection_id)) {
    connection->take_stream_output(stream);
  } else {
    stream->end(StreamEndReason::kConnectionBroken);
  }
}

void IoThread::count_answer(MethodEntry* method, int32_t code,
                            ServerCall::Clock::time_point received_at) {
  assert_in_loop_thread();  // This thread's shard of the counters.
  const uint64_t latency_us = microseconds_since(received_at);
  if (method != nullptr)
    method->counters.record(index_, code, latency_us);
  core_.answers.record(index_, code, latency_us);
}

void IoThread::count_dropped(MethodEntry* method, int32_t code,
                             ServerCall::Clock::time_point received_at) {
  count_answer(method, code, received_at);
  core_.replies_dropped.fetch_add(1, std::memory_order_relaxed);
}

void IoThread::remove_connection(uint64_t connection_id) {
  assert_in_loop_thread();
  // Deferred: the connection may be on the stack of its own handler.
  boost::asio::post(context_, [this, connection_id] { connections_.erase(connection_id); });
}

void IoThread::abandon_in_flight_calls() {
  assert_in_loop_thread();
  for (ServerCall* call = in_flight_head_; call != nullptr; call = call->next_in_flight) {
    if (call->abandoned.exchange(true, std::memory_order_acq_rel))
      continue;
    unanswered_calls_.leave();
    const int32_t code = to_int(ErrorCode::kServerStopping);
    std::shared_ptr<ServerConnection> connection = find_connection(call->connection_id());
    if (connection == nullptr) {
      if (std::shared_ptr<WebSocketSession> web_socket = find_web_socket(call->connection_id())) {
        web_socket->answer_abandoned_call(&call->method());
      } else if (std::shared_ptr<HttpConnection> http =
                     find_http_connection(call->connection_id())) {
        http->answer_abandoned_call(&call->method(), call->received_at());
      } else {
        count_dropped(&call->method(), code, call->received_at());
      }
      continue;
    }
    StreamReply stream{call->remote_stream_id(), call->remote_stream_needs_feedback(), nullptr,
                       /*dispatched=*/true};
    answer(*connection, call->correlation_id(), &call->method(), code,
           call->handler_started.load(std::memory_order_relaxed)
               ? "server stopped before the handler finished"
               : "server stopped before the handler ran (it never started)",
           nullptr, std::string(), call->received_at(), CompressType::kNone, {},
           stream.remote_id >= 0 ? &stream : nullptr);
    connection->call_answered();
  }
}

void IoThread::begin_close_connections(CloseReason reason) {
  assert_in_loop_thread();
  // Closing only posts the removal from the table, so iterating is safe.
  for (auto& [id, connection] : connections_)
    connection->begin_close(reason);
  for (auto& [id, connection] : http_connections_)
    connection->begin_close(reason);
  for (auto& [id, session] : web_sockets_)
    session->begin_close(reason);
}

void IoThread::abort_connections() {
  assert_in_loop_thread();
  for (auto& [id, connection] : connections_)
    connection->abort(CloseReason::kServerStopped);
  for (auto& [id, connection] : http_connections_)
    connection->abort(CloseReason::kServerStopped);
  for (auto& [id, session] : web_sockets_)
    session->abort(CloseReason::kServerStopped);
}

std::shared_ptr<ServerConnection> IoThread::find_connection(uint64_t connection_id) const {
  const auto found = connections_.find(connection_id);
  if (found == connections_.end() || found->second->closed())
    return nullptr;
  return found->second;
}

std::shared_ptr<WebSocketSession> IoThread::find_web_socket(uint64_t connection_id) const {
  const auto found = web_sockets_.find(connection_id);
  if (found == web_sockets_.end() || found->second->closed())
    return nullptr;
  return found->second;
}

std::shared_ptr<HttpConnection> IoThread::find_http_connection(uint64_t connection_id) const {
  const auto found = http_connections_.find(connection_id);
  if (found == http_connections_.end() || found->second->closed())
    return nullptr;
  return found->second;
}

}  // namespace percore::detail
