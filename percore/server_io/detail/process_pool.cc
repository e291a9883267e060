#include <percore/server_io/detail/process_pool.h>

#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <percore/base/log.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/error_code.h>
#include <percore/server_io/detail/server_call.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/service_table.h>
#include <percore/server_io/detail/worker_process.h>

namespace percore::detail {
namespace {

// Room for the meta on top of max_body_bytes on the worker socket.
constexpr size_t kMetaAllowance = 64 * 1024;
constexpr auto kFirstBackoff = std::chrono::milliseconds(10);
constexpr auto kMaxBackoff = std::chrono::milliseconds(1000);

int64_t milliseconds_between(ServerCall::Clock::time_point from,
                             ServerCall::Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

std::string flatten(const GatherBuffer& buffer) {
  std::string bytes;
  bytes.reserve(buffer.size());
  for (size_t i = 0; i < buffer.chunk_count(); ++i)
    bytes.append(buffer.chunk(i));
  return bytes;
}

}  // namespace

// The far end of a relayed stream, as its StreamCore relay sees it: posts
// the client's frames and the relay's end to the pool's thread (through the
// pool's gate: a relay may outlive the pool's thread).
//
// Owns: nothing but ids. Threads: forward() on the connection's I/O thread,
// on_relay_end() on any; far_end_done on the pool's thread only.
class ProcessPool::StreamRelay final : public StreamRelayTarget,
                                       public std::enable_shared_from_this<StreamRelay> {
 public:
  StreamRelay(ProcessPool& pool, StreamId id, StreamId client_id, size_t max_frame_bytes)
      : id(id), client_id(client_id), pool_(pool), gate_(pool.relay_gate_),
        max_frame_bytes_(max_frame_bytes) {}

  void forward(const StreamFrame& frame) override {
    GatherBuffer encoded;
    if (encode_stream_frame(frame.meta, std::string(frame.data), max_frame_bytes_, encoded) !=
        EncodeStatus::kOk)
      return;  // Cannot happen: it was decoded within the same bound.
    post([bytes = flatten(encoded)](ProcessPool& pool,
                                    const std::shared_ptr<StreamRelay>& self) mutable {
      pool.relay_to_worker(self, std::move(bytes));
    });
  }
  void on_relay_end(StreamEndReason reason) override {
    post([reason](ProcessPool& pool, const std::shared_ptr<StreamRelay>& self) {
      pool.on_relay_end(self, reason);
    });
  }

  const StreamId id;         // The relay's, and the worker's end's.
  const StreamId client_id;  // The client's end.
  // Pool thread: the worker's end is over (it closed or reset it, or died):
  // nothing more is said to it.
  bool far_end_done = false;
  // Pool thread: reset for a window overrun; the client's frames still in
  // flight are dropped.
  bool overran = false;

 private:
  template <typename Task>
  void post(Task&& task) {
    gate_->run_if_open([&] {
      boost::asio::post(pool_.context_, [&pool = pool_, self = shared_from_this(),
                                         task = std::forward<Task>(task)]() mutable {
        task(pool, self);
      });
    });
  }

  ProcessPool& pool_;
  const std::shared_ptr<CarrierGate> gate_;
  const size_t max_frame_bytes_;
};

ProcessPool::ProcessPool(ServerCore& core)
    : core_(core), target_workers_(std::max(1, core.options.process_workers)) {}

ProcessPool::~ProcessPool() {
  shutdown();
}

void ProcessPool::assert_in_pool_thread() const {
  PERCORE_ASSERT(std::this_thread::get_id() == thread_id_.load());
}

bool ProcessPool::start_zygote(std::string* error) {
  ServerCore* core = &core_;
  return zygote_.start(
      [core](int socket_fd) {
        WorkerProcess::run(socket_fd, core->services, core->options.max_body_bytes,
                           core->options.process_worker_start);
      },
      core_.options.process_memory_limit_bytes, error);
}

void ProcessPool::start() {
  zygote_events_ =
      std::make_unique<boost::asio::posix::stream_descriptor>(context_, ::dup(zygote_.control_fd()));
  work_guard_.emplace(context_.get_executor());
  {
    std::lock_guard lock(submit_mutex_);
    open_ = true;
  }
  thread_ = std::thread([this] {
    thread_id_.store(std::this_thread::get_id());
    context_.run();
  });
  boost::asio::post(context_, [this] {
    spawns_wanted_ = target_workers_;
    pump_spawns();
    watch_zygote();
  });
}

bool ProcessPool::try_submit(ServerCall* call) {
  {
    std::lock_guard lock(submit_mutex_);
    if (open_) {
      // As for worker threads: the workers free now take calls at once, and
      // process_queue_capacity more may wait.
      const size_t alive = alive_.load(std::memory_order_relaxed);
      const size_t busy = busy_.load(std::memory_order_relaxed);
      const size_t free_workers = alive > busy ? alive - busy : 0;
      if (queued_.load(std::memory_order_relaxed) >=
          core_.options.process_queue_capacity + free_workers)
        return false;
      queued_.fetch_add(1, std::memory_order_relaxed);
      boost::asio::post(context_, [this, call] {
        queue_.push_back(call);
        dispatch();
        // Still waiting: answered 1008 when its deadline passes, not only
        // when a worker frees up.
        if (!queue_.empty() && queue_.back() == call &&
            call->controller().deadline() != Clock::time_point::max())
          arm_queue_timer(call->controller().deadline());
      });
      return true;
    }
  }
  call->controller().SetFailed(ErrorCode::kServerStopping,
                               "server stopped before a worker process took the call");
  call->Run();
  return true;
}

void ProcessPool::shutdown() {
  {
    std::lock_guard lock(submit_mutex_);
    open_ = false;
  }
  if (thread_.joinable()) {
    boost::asio::post(context_, [this] { stop_in_thread(); });
    relay_gate_->close();  // After stop_in_thread() is queued: relays post nothing later.
    work_guard_.reset();
    thread_.join();
  }
  zygote_events_.reset();
  zygote_.stop(std::chrono::seconds(2));
}

void ProcessPool::close_streams_for_stop() {
  if (!thread_.joinable())
    return;
  boost::asio::post(context_, [this] {
    assert_in_pool_thread();
    closing_streams_ = true;
    for (const std::shared_ptr<Worker>& worker : workers_) {
      // The client gets the CLOSE after what the worker wrote; the relay's
      // end then replaces the worker (end_streaming).
      if (worker->relay != nullptr)
        worker->relay->Close();
    }
  });
}

void ProcessPool::stop_in_thread() {
  assert_in_pool_thread();
  stopping_ = true;
  backoff_timer_.cancel();
  queue_timer_.cancel();
  for (ServerCall* call : queue_)
    complete(call, to_int(ErrorCode::kServerStopping),
             "server stopped before a worker process took the call");
  queued_.fetch_sub(queue_.size(), std::memory_order_relaxed);
  queue_.clear();
  discard_workers(to_int(ErrorCode::kServerStopping),
                  "server stopped before the handler finished (its worker process was killed)");
  if (zygote_events_ != nullptr) {
    boost::system::error_code ignored;
    zygote_events_->close(ignored);
  }
}

void ProcessPool::discard_workers(int32_t code, const std::string& text) {
  assert_in_pool_thread();
  for (const std::shared_ptr<Worker>& worker : workers_) {
    if (worker->relay != nullptr) {
      worker->relay_target->far_end_done = true;
      worker->relay->relay_reset();
      worker->relay.reset();
      worker->relay_target.reset();
    }
    if (worker->call != nullptr) {
      if (!stopping_) {  // The zygote was killed: these workers died with it.
        crashes_.fetch_add(1, std::memory_order_relaxed);
        worker->call->method().worker_crashes.fetch_add(1, std::memory_order_relaxed);
      }
      complete(std::exchange(worker->call, nullptr), code, text);
    }
    if (worker->state != State::kKilled)
      signal_worker(worker->pid, worker->pidfd, SIGKILL);
    transition(*worker, State::kDead);
    worker->timer.cancel();
    boost::system::error_code ignored;
    worker->socket.close(ignored);
    if (worker->pidfd >= 0)
      ::close(std::exchange(worker->pidfd, -1));
  }
  workers_.clear();
}

void ProcessPool::transition(Worker& worker, State next) {
  const bool was_alive = worker.state != State::kDead;
  const bool now_alive = next != State::kDead;
  // A streaming worker is as busy as one running a call.
  const auto busy = [](State state) { return state == State::kBusy || state == State::kStreaming; };
  if (busy(worker.state) && !busy(next))
    busy_.fetch_sub(1, std::memory_order_relaxed);
  if (!busy(worker.state) && busy(next))
    busy_.fetch_add(1, std::memory_order_relaxed);
  worker.state = next;
  if (was_alive && !now_alive)
    alive_.fetch_sub(1, std::memory_order_relaxed);
  if (!was_alive && now_alive)
    alive_.fetch_add(1, std::memory_order_relaxed);
}

void ProcessPool::watch_zygote() {
  assert_in_pool_thread();
  zygote_events_->async_wait(boost::asio::posix::stream_descriptor::wait_read,
                             [this](const boost::system::error_code& error) {
                               if (!error && !stopping_)
                                 on_zygote_readable();
                             });
}

void ProcessPool::on_zygote_readable() {
  assert_in_pool_thread();
  for (;;) {
    const Zygote::Message message = zygote_.receive();
    switch (message.kind) {
      case Zygote::Message::Kind::kNone:
        watch_zygote();
        return;
      case Zygote::Message::Kind::kSpawned:
        add_worker(message);
        break;
      case Zygote::Message::Kind::kSpawnFailed:
        --spawns_pending_;
        pump_spawns();
        core_.worker_process_log.log(LogLevel::kError, [&] {
          return std::string("cannot start a worker process: ") + std::strerror(message.status);
        });
        spawn_replacement(true);
        break;
      case Zygote::Message::Kind::kExited:
        on_worker_exited(message.pid, message.status);
        break;
      case Zygote::Message::Kind::kGone: {
        // Only a kill from outside ends the zygote early; its workers die
        // with it (PR_SET_PDEATHSIG) and none can be started again.
        zygote_gone_ = true;
        zygote_.reap_if_exited();
        core_.worker_process_log.log(LogLevel::kError, [] {
          return std::string(
              "the worker processes' zygote is gone: process-pool methods answer 2001");
        });
        discard_workers(to_int(ErrorCode::kInternal),
                        "worker process died: its zygote was killed");
        dispatch();
        return;
      }
    }
  }
}

void ProcessPool::add_worker(const Zygote::Message& spawned) {
  assert_in_pool_thread();
  --spawns_pending_;
  pump_spawns();
  FrameDecoderOptions options;
  options.max_body_bytes = core_.options.max_body_bytes + kMetaAllowance;
  options.accept_stream_frames = true;  // A streaming worker's frames.
  auto worker = std::make_shared<Worker>(context_, options);
  worker->pid = spawned.pid;
  worker->pidfd = spawned.pidfd;
  boost::system::error_code error;
  worker->socket.assign(boost::asio::local::stream_protocol(), spawned.socket_fd, error);
  worker->state = State::kDead;
  transition(*worker, State::kStarting);
  workers_.push_back(worker);
  if (error) {
    ::close(spawned.socket_fd);
    signal_worker(worker->pid, worker->pidfd, SIGKILL);
    transition(*worker, State::kKilled);
    return;
  }
  // The ready byte first, then frames.
  auto ready = std::make_shared<char>(0);
  boost::asio::async_read(
      worker->socket, boost::asio::buffer(ready.get(), 1),
      [this, worker, ready](const boost::system::error_code& read_error, size_t) {
        if (read_error) {
          on_end_of_stream(worker);  // Dead before it was ready.
          return;
        }
        if (worker->state != State::kStarting)
          return;
        if (*ready != 'R') {
          kill_worker(*worker);
          return;
        }
        worker->ready_at = Clock::now();
        transition(*worker, State::kIdle);
        read_worker(worker);
        dispatch();
      });
}

void ProcessPool::read_worker(const std::shared_ptr<Worker>& worker) {
  assert_in_pool_thread();
  if (worker->reading || worker->state == State::kDead)
    return;
  worker->reading = true;
  const std::span<char> space = worker->decoder.prepare(4096);
  std::shared_ptr<Worker> self = worker;
  worker->socket.async_read_some(
      boost::asio::buffer(space.data(), space.size()),
      [this, self](const boost::system::error_code& error, size_t bytes) {
        self->reading = false;
        if (error == boost::asio::error::operation_aborted || self->state == State::kDead)
          return;
        if (error || bytes == 0) {
          on_end_of_stream(self);  // The worker died.
          return;
        }
        self->decoder.commit(bytes);
        on_worker_bytes(*self);
        if (self->decoder.buffered_bytes() == 0)
          self->decoder.release();  // A large answer's buffer is not kept.
        read_worker(self);
      });
}

void ProcessPool::on_worker_bytes(Worker& worker) {
  assert_in_pool_thread();
  Frame frame;
  StreamFrame stream_frame;
  for (;;) {
    const DecodeStatus status = worker.decoder.next(frame, stream_frame);
    if (status == DecodeStatus::kNeedMore)
      return;
    if (status == DecodeStatus::kStreamFrame) {
      on_worker_stream_frame(worker, stream_frame);
      continue;
    }
    if (status != DecodeStatus::kFrame) {
      core_.worker_process_log.log(LogLevel::kError, [&] {
        return std::string("worker process ") + std::to_string(worker.pid) +
               " sent a malformed answer (" + std::string(decode_status_text(status)) +
               "); killing it";
      });
      if (worker.call != nullptr) {
        crashes_.fetch_add(1, std::memory_order_relaxed);
        worker.call->method().worker_crashes.fetch_add(1, std::memory_order_relaxed);
        complete(std::exchange(worker.call, nullptr), to_int(ErrorCode::kInternal),
                 std::string("worker process sent a malformed answer (") +
                     std::string(decode_status_text(status)) + ")");
      }
      kill_worker(worker);
      return;
    }
    answer_from_worker(worker, frame);
  }
}

void ProcessPool::answer_from_worker(Worker& worker, const Frame& frame) {
  assert_in_pool_thread();
  if (worker.state == State::kKilled)
    return;  // Answered just as it was killed: its call is answered already.
  if (worker.state != State::kBusy || worker.call == nullptr || !frame.meta.has_response() ||
      frame.meta.correlation_id() != worker.correlation_id) {
    core_.worker_process_log.log(LogLevel::kError, [&] {
      return std::string("worker process ") + std::to_string(worker.pid) +
             " sent an answer to no call; killing it";
    });
    kill_worker(worker);
    return;
  }
  ServerCall* call = std::exchange(worker.call, nullptr);
  worker.timer.cancel();
  ++worker.answered;
  starts_failed_in_a_row_ = 0;
  ServerController& controller = call->controller();
  const int32_t code = frame.meta.response().error_code();
  // The handler accepted the call's stream under the id offered to it.
  const StreamId offered = worker.offered_stream_id;
  worker.offered_stream_id = kInvalidStreamId;
  if (code == 0 && offered != kInvalidStreamId && frame.meta.has_stream_settings() &&
      frame.meta.stream_settings().stream_id() == offered) {
    worker.relay_target = std::make_shared<StreamRelay>(
        *this, offered, call->remote_stream_id(), core_.options.max_body_bytes + kMetaAllowance);
    worker.relay = StreamCore::make_relay(offered, frame.meta.stream_settings().need_feedback(),
                                          core_.options.max_body_bytes, worker.relay_target);
    call->set_accepted_stream(worker.relay);
    worker.streaming_method = &call->method();
    const auto window = frame.meta.user_fields().find("stream_max_buf_size");
    worker.stream_window =
        window == frame.meta.user_fields().end() ? 0 : std::strtoull(window->second.c_str(), nullptr, 10);
    transition(worker, State::kStreaming);
    if (closing_streams_)
      worker.relay->Close();  // Stop began while it ran: as the others.
  } else {
    transition(worker, State::kIdle);
  }
  if (code != 0) {
    controller.SetFailed(static_cast<ErrorCode>(code), frame.meta.response().error_text());
  } else {
    const auto type = static_cast<CompressType>(frame.meta.compress_type());
    std::string error;
    if (!response_parser_.parse(frame.message, type, core_.options.max_body_bytes,
                                *call->response(), &error)) {
      controller.SetFailed(ErrorCode::kInternal,
                           std::string("worker process sent a response that ") + error);
    } else {
      // Compressed again for the client by Run() (HTTP answers in JSON).
      controller.set_response_compress_type(type);
      controller.response_attachment().assign(frame.attachment.data(), frame.attachment.size());
      call->note_answer_bytes(frame.body_bytes);
    }
  }
  call->Run();
  dispatch();
}

void ProcessPool::dispatch() {
  assert_in_pool_thread();
  if (stopping_)
    return;
  if (!queue_.empty() && alive_.load(std::memory_order_relaxed) == 0 &&
      (backing_off_ || zygote_gone_)) {
    fail_queue_while_backing_off();
    return;
  }
  for (const std::shared_ptr<Worker>& worker : workers_) {
    while (worker->state == State::kIdle && !queue_.empty()) {
      ServerCall* call = queue_.front();
      queue_.pop_front();
      queued_.fetch_sub(1, std::memory_order_relaxed);
      begin_call(worker, call);
    }
    if (queue_.empty())
      return;
  }
}

void ProcessPool::fail_queue_while_backing_off() {
  assert_in_pool_thread();
  std::string text;
  if (zygote_gone_) {
    text = "no worker process can be started: the zygote is gone";
  } else {
    const auto wait = std::max<int64_t>(0, milliseconds_between(Clock::now(), backoff_until_));
    text = std::string("no worker process is running: ") +
           std::to_string(starts_failed_in_a_row_) +
           " in a row died before they were ready; the next starts in " + std::to_string(wait) +
           " ms";
  }
  while (!queue_.empty()) {
    ServerCall* call = queue_.front();
    queue_.pop_front();
    queued_.fetch_sub(1, std::memory_order_relaxed);
    complete(call, to_int(ErrorCode::kInternal), text);
  }
}

void ProcessPool::begin_call(const std::shared_ptr<Worker>& self, ServerCall* call) {
  assert_in_pool_thread();
  Worker& worker = *self;
  if (call->abandoned.load(std::memory_order_acquire)) {
    call->Run();  // Answered 2003 by Stop(); hand it back to be recycled.
    return;
  }
  ServerController& controller = call->controller();
  const Clock::time_point now = Clock::now();
  if (now > controller.deadline()) {
    complete(call, to_int(ErrorCode::kTimedOut),
             std::string("deadline passed while the request waited for a worker process (") +
                 std::to_string(milliseconds_between(call->received_at(), now)) +
                 " ms); the handler did not run");
    return;
  }
  MethodEntry& method = call->method();
  wire::RpcMeta meta;
  meta.set_correlation_id(++worker.correlation_id);
  wire::RpcRequestMeta* request = meta.mutable_request();
  request->set_service_name(method.method->service()->full_name());
  request->set_method_name(method.method->name());
  request->set_log_id(controller.log_id());
  if (controller.trace_id() != 0) {
    request->set_trace_id(controller.trace_id());
    request->set_span_id(controller.span_id());
    request->set_parent_span_id(controller.parent_span_id());
  }
  if (controller.deadline() != Clock::time_point::max()) {
    const int64_t left = std::max<int64_t>(1, milliseconds_between(now, controller.deadline()));
    request->set_timeout_ms(static_cast<int32_t>(std::min<int64_t>(left, INT32_MAX)));
  }
  (*meta.mutable_user_fields())["remote_side"] = controller.remote_side();
  if (!controller.peer_certificate_subject().empty())
    (*meta.mutable_user_fields())["tls.peer_subject"] = controller.peer_certificate_subject();
  if (const AuthContext* auth = controller.auth_context()) {
    auto& fields = *meta.mutable_user_fields();
    fields["auth.user"] = auth->user;
    fields["auth.group"] = auth->group;
    fields["auth.roles"] = auth->roles;
    fields["auth.starter"] = auth->starter;
    fields["auth.is_service"] = auth->is_service ? "1" : "0";
  }
  if (call->remote_stream_id() != kInvalidStreamId && call->remote_stream_supported()) {
    // The client's stream, and the id its relay will have here: the
    // worker's end takes it, so frames pass unchanged both ways.
    wire::StreamSettings* settings = meta.mutable_stream_settings();
    settings->set_stream_id(call->remote_stream_id());
    settings->set_need_feedback(call->remote_stream_needs_feedback());
    settings->set_writable(call->remote_stream_writable());
    worker.offered_stream_id = next_stream_id();
    settings->add_extra_stream_ids(worker.offered_stream_id);
  } else {
    worker.offered_stream_id = kInvalidStreamId;
  }
  std::string serialized;
  std::string_view message;
  if (call->deferred_request_type() != CompressType::kNone) {
    meta.set_compress_type(static_cast<int32_t>(call->deferred_request_type()));
    message = call->deferred_request();
  } else {
    call->request()->SerializeToString(&serialized);
    message = serialized;
  }
  GatherBuffer encoded;
  if (encode_frame(meta, message, std::move(controller.request_attachment()),
                   core_.options.max_body_bytes + kMetaAllowance, encoded) != EncodeStatus::kOk) {
    complete(call, to_int(ErrorCode::kInternal),
             "request too large for the worker process channel");
    return;
  }
  worker.call = call;
  transition(worker, State::kBusy);

  call->handler_started.store(true, std::memory_order_relaxed);
  // The deadline runs from now; max_run_ms once the worker has the request
  // (a large request takes a while to copy): start_write() arms it.
  arm_run_timer(self, controller.deadline(), worker.correlation_id);
  worker.request_unwritten = true;
  for (size_t i = 0; i < encoded.chunk_count(); ++i)
    write_to_worker(self, encoded.chunk(i));
}

void ProcessPool::write_to_worker(const std::shared_ptr<Worker>& worker, std::string_view bytes) {
  assert_in_pool_thread();
  worker->write_queue.append(bytes);
  if (!worker->writing)
    start_write(worker);
}

void ProcessPool::start_write(const std::shared_ptr<Worker>& self) {
  assert_in_pool_thread();
  if (self->write_queue.empty())
    return;
  self->writing = true;
  self->output.swap(self->write_queue);
  self->write_queue.clear();
  const bool carries_request = self->request_unwritten;
  self->request_unwritten = false;
  const int64_t correlation_id = self->correlation_id;
  boost::asio::async_write(
      self->socket, boost::asio::buffer(self->output),
      [this, self, carries_request, correlation_id](const boost::system::error_code& error,
                                                    size_t) {
        self->writing = false;
        self->output.clear();
        if (self->output.capacity() > (size_t{1} << 20))
          std::string().swap(self->output);
        // A failed write means the worker died: its end answers the call.
        if (error || self->state == State::kDead || self->state == State::kKilled)
          return;
        if (carries_request && self->state == State::kBusy &&
            self->correlation_id == correlation_id && self->call != nullptr) {
          const int max_run_ms = self->call->method().max_run_ms;
          if (max_run_ms > 0) {
            arm_run_timer(self,
                          std::min(self->call->controller().deadline(),
                                   Clock::now() + std::chrono::milliseconds(max_run_ms)),
                          correlation_id);
          }
        }
        start_write(self);
      });
}

void ProcessPool::on_worker_stream_frame(Worker& worker, const StreamFrame& frame) {
  assert_in_pool_thread();
  // Frames of a stream the relay already ended (the client closed it, the
  // connection broke) were in flight: dropped, as a brpc peer drops them.
  if (worker.relay == nullptr || frame.stream_id() != worker.relay_target->client_id)
    return;
  GatherBuffer encoded;
  if (encode_stream_frame(frame.meta, std::string(frame.data),
                          core_.options.max_body_bytes + kMetaAllowance,
                          encoded) != EncodeStatus::kOk)
    return;
  const bool last =
      frame.type() == wire::FRAME_TYPE_CLOSE || frame.type() == wire::FRAME_TYPE_RST;
  if (last)
    worker.relay_target->far_end_done = true;
  // Ends the relay with kClosedByUs once written: on_relay_end() frees the worker.
  worker.relay->relay_output(std::move(encoded),
                             last ? std::optional(StreamEndReason::kClosedByUs) : std::nullopt);
}

void ProcessPool::relay_to_worker(const std::shared_ptr<StreamRelay>& target, std::string frame) {
  assert_in_pool_thread();
  const auto found = find_relay_worker(target);
  if (found == workers_.end())
    return;  // Its worker died or the stream ended: nobody to tell.
  Worker& worker = **found;
  if (target->overran)
    return;
  // A client that keeps to the worker's window never has more than the
  // window and one message unacknowledged, and so waiting here: past that
  // it ignores flow control (or the worker stopped reading), and the
  // stream is reset rather than held in memory.
  constexpr size_t kDefaultWindow = size_t{2} << 20;  // StreamOptions::max_buf_size's default.
  const size_t limit = std::max<size_t>(worker.stream_window, kDefaultWindow) +
                       core_.options.max_body_bytes + kMetaAllowance;
  if (worker.write_queue.size() + worker.output.size() + frame.size() > limit) {
    core_.stream_window_overruns.fetch_add(1, std::memory_order_relaxed);
    core_.worker_process_log.log(LogLevel::kWarning, [&] {
      return std::string("resetting a stream of ") +
             (worker.streaming_method != nullptr ? worker.streaming_method->full_name
                                                 : std::string("a worker process")) +
             ": the client wrote past the worker's window (" + std::to_string(limit) +
             " bytes waiting for the worker)";
    });
    target->overran = true;
    worker.relay->relay_reset();  // Its end resets the worker's end too.
    return;
  }
  write_to_worker(*found, frame);
}

void ProcessPool::on_relay_end(const std::shared_ptr<StreamRelay>& target,
                               StreamEndReason reason) {
  assert_in_pool_thread();
  const auto found = find_relay_worker(target);
  if (found == workers_.end())
    return;
  // A CLOSE or RST from the client was passed on before this; otherwise
  // (connection broken, Stop) the worker's end is reset, so its handler is
  // told and the worker is free for the next call.
  const bool passed_on =
      reason == StreamEndReason::kClosedByPeer || reason == StreamEndReason::kResetByPeer;
  if (!target->far_end_done && !passed_on) {
    GatherBuffer rst;
    encode_stream_frame(rst_frame_meta(target->id), std::string(),
                        core_.options.max_body_bytes + kMetaAllowance, rst);
    write_to_worker(*found, flatten(rst));
  }
  end_streaming(**found);
  dispatch();
}

void ProcessPool::end_streaming(Worker& worker) {
  assert_in_pool_thread();
  worker.relay.reset();
  worker.relay_target.reset();
  worker.streaming_method = nullptr;
  worker.stream_window = 0;
  // Its handler's threads may still run (one that ignores the stream's
  // end, a loop): the worker is replaced, and they go with it. Not a crash
  // nor an overrun kill; the replacement counts as a respawn.
  if (worker.state == State::kStreaming) {
    signal_worker(worker.pid, worker.pidfd, SIGKILL);
    transition(worker, State::kKilled);
  }
}

ProcessPool::WorkerList::iterator ProcessPool::find_relay_worker(
    const std::shared_ptr<StreamRelay>& target) {
  return std::find_if(workers_.begin(), workers_.end(),
                      [&](const std::shared_ptr<Worker>& worker) {
                        return worker->relay_target == target;
                      });
}

void ProcessPool::arm_run_timer(const std::shared_ptr<Worker>& worker, Clock::time_point limit,
                                int64_t correlation_id) {
  assert_in_pool_thread();
  if (limit == Clock::time_point::max())
    return;
  worker->timer.expires_at(limit);
  worker->timer.async_wait([this, worker, correlation_id](const boost::system::error_code& error) {
    if (!error && worker->state == State::kBusy && worker->correlation_id == correlation_id &&
        !worker->end_of_stream)
      on_overrun(*worker);
  });
}

void ProcessPool::arm_queue_timer(Clock::time_point deadline) {
  assert_in_pool_thread();
  if (queue_timer_armed_ && deadline >= queue_timer_at_)
    return;
  queue_timer_armed_ = true;
  queue_timer_at_ = deadline;
  queue_timer_.expires_at(deadline);
  queue_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error || stopping_)
      return;  // Re-armed earlier, or stopping.
    queue_timer_armed_ = false;
    expire_queued_calls();
  });
}

void ProcessPool::expire_queued_calls() {
  assert_in_pool_thread();
  const Clock::time_point now = Clock::now();
  Clock::time_point next = Clock::time_point::max();
  for (auto it = queue_.begin(); it != queue_.end();) {
    ServerCall* call = *it;
    const Clock::time_point deadline = call->controller().deadline();
    if (deadline > now) {
      next = std::min(next, deadline);
      ++it;
      continue;
    }
    it = queue_.erase(it);
    queued_.fetch_sub(1, std::memory_order_relaxed);
    complete(call, to_int(ErrorCode::kTimedOut),
             std::string("deadline passed while the request waited for a worker process (") +
                 std::to_string(milliseconds_between(call->received_at(), now)) +
                 " ms); the handler did not run");
  }
  if (next != Clock::time_point::max())
    arm_queue_timer(next);
}

void ProcessPool::on_overrun(Worker& worker) {
  assert_in_pool_thread();
  ServerCall* call = std::exchange(worker.call, nullptr);
  MethodEntry& method = call->method();
  const Clock::time_point now = Clock::now();
  const int64_t ran_ms = milliseconds_between(call->received_at(), now);
  std::string text;
  if (method.max_run_ms > 0 && now < call->controller().deadline()) {
    text = std::string("the handler ran past max_run_ms (") + std::to_string(method.max_run_ms) +
           " ms); its worker process was killed";
  } else {
    text = std::string("the call's deadline passed while its handler ran (") +
           std::to_string(ran_ms) + " ms since received); its worker process was killed";
  }
  kills_.fetch_add(1, std::memory_order_relaxed);
  method.worker_kills.fetch_add(1, std::memory_order_relaxed);
  core_.worker_process_log.log(LogLevel::kWarning, [&] {
    return std::string("killing worker process ") + std::to_string(worker.pid) + " running " +
           method.full_name + ": " + text;
  });
  kill_worker(worker);
  complete(call, to_int(ErrorCode::kTimedOut), std::move(text));
  dispatch();
}

void ProcessPool::kill_worker(Worker& worker) {
  assert_in_pool_thread();
  worker.timer.cancel();
  signal_worker(worker.pid, worker.pidfd, SIGKILL);
  if (worker.state != State::kDead)
    transition(worker, State::kKilled);
}

void ProcessPool::complete(ServerCall* call, int32_t code, std::string text) {
  call->controller().SetFailed(static_cast<ErrorCode>(code), std::move(text));
  call->Run();
}

ProcessPool::WorkerList::iterator ProcessPool::find_worker(pid_t pid) {
  return std::find_if(workers_.begin(), workers_.end(),
                      [pid](const std::shared_ptr<Worker>& worker) { return worker->pid == pid; });
}

void ProcessPool::on_worker_exited(pid_t pid, int status) {
  assert_in_pool_thread();
  const auto found = find_worker(pid);
  if (found == workers_.end())
    return;
  std::shared_ptr<Worker> worker = *found;
  worker->exited = true;
  worker->exit_status = status;
  if (worker->end_of_stream) {
    finish_exit(worker);
    return;
  }
  // What it wrote before it died is still to be read (an answer written just
  // before a clean exit, out of memory, is not lost): the read reaches the
  // end of stream and finishes. A descendant of the worker that kept its
  // socket open cannot hold that up for long.
  worker->timer.cancel();
  worker->timer.expires_after(std::chrono::milliseconds(200));
  worker->timer.async_wait([this, worker](const boost::system::error_code& error) {
    if (!error)
      finish_exit(worker);
  });
}

void ProcessPool::on_end_of_stream(const std::shared_ptr<Worker>& worker) {
  assert_in_pool_thread();
  worker->end_of_stream = true;
  if (worker->exited) {
    finish_exit(worker);
    return;
  }
  // Its socket closed: it died (or broke its end). The zygote's report names
  // the signal; a zygote that is stopped or slow must not hold the call.
  signal_worker(worker->pid, worker->pidfd, SIGKILL);
  worker->timer.cancel();
  worker->timer.expires_after(std::chrono::milliseconds(200));
  worker->timer.async_wait([this, worker](const boost::system::error_code& error) {
    if (!error)
      finish_exit(worker);
  });
}

void ProcessPool::finish_exit(const std::shared_ptr<Worker>& worker) {
  assert_in_pool_thread();
  const auto found = std::find(workers_.begin(), workers_.end(), worker);
  if (found == workers_.end())
    return;  // Finished already.
  const pid_t pid = worker->pid;
  const int status = worker->exit_status;
  // A start that failed: dead before it was ready, or idle soon after
  // without ever having had a call (not the fault of a call: a crash while
  // running one is the call's, and its replacement starts at once).
  const bool crashed_at_start =
      worker->state == State::kStarting ||
      (worker->state == State::kIdle && worker->answered == 0 &&
       Clock::now() - worker->ready_at < std::chrono::seconds(1));
  const std::string how =
      !worker->exited ? std::string("its connection closed and no exit status came")
      : WIFEXITED(status) && WEXITSTATUS(status) == WorkerProcess::kOutOfMemoryExit
          ? std::string("out of memory (std::bad_alloc; process_memory_limit_bytes ") +
                std::to_string(core_.options.process_memory_limit_bytes) + ")"
          : describe_wait_status(status);
  // The call the crash failed is answered last, after the death and its
  // replacement are counted: a client that sees the 2001 then sees them in
  // the stats too.
  ServerCall* crashed_call = nullptr;
  std::string crash_text;
  if (worker->state != State::kKilled) {
    crashes_.fetch_add(1, std::memory_order_relaxed);
    std::string running;
    if (worker->call != nullptr) {
      MethodEntry& method = worker->call->method();
      method.worker_crashes.fetch_add(1, std::memory_order_relaxed);
      running = method.full_name;
      crashed_call = std::exchange(worker->call, nullptr);
      crash_text = std::string("worker process died: ") + how + " (while running " + running + ")";
    } else if (worker->relay != nullptr && worker->streaming_method != nullptr) {
      worker->streaming_method->worker_crashes.fetch_add(1, std::memory_order_relaxed);
      running = worker->streaming_method->full_name + "'s stream";
    }
    core_.worker_process_log.log(LogLevel::kError, [&] {
      std::string text = std::string("worker process ") + std::to_string(pid) + " died: " + how;
      if (!running.empty())
        text += std::string(" while running ") + running;
      if (crashed_at_start)
        text += " as it started";
      return text;
    });
  }
  if (worker->relay != nullptr) {
    // Its stream's client is told by an RST (kResetByPeer there).
    worker->relay_target->far_end_done = true;
    worker->relay->relay_reset();
    worker->relay.reset();
    worker->relay_target.reset();
  }
  transition(*worker, State::kDead);
  worker->timer.cancel();
  boost::system::error_code ignored;
  worker->socket.close(ignored);
  if (worker->pidfd >= 0)
    ::close(std::exchange(worker->pidfd, -1));
  workers_.erase(found);
  spawn_replacement(crashed_at_start);
  if (crashed_call != nullptr)
    complete(crashed_call, to_int(ErrorCode::kInternal), std::move(crash_text));
  dispatch();
}

void ProcessPool::spawn_replacement(bool crashed_at_start) {
  assert_in_pool_thread();
  if (stopping_ || zygote_gone_)
    return;
  respawns_.fetch_add(1, std::memory_order_relaxed);
  if (crashed_at_start)
    ++starts_failed_in_a_row_;
  if (!crashed_at_start && !backing_off_) {
    ++spawns_wanted_;
    pump_spawns();
    return;
  }
  if (starts_failed_in_a_row_ < 2 && !backing_off_) {
    // One failed start may be bad luck (a first call that ran out of
    // memory): replaced at once. A second in a row starts the back-off.
    ++spawns_wanted_;
    pump_spawns();
    return;
  }
  ++respawns_waiting_;
  if (backing_off_)
    return;
  const int doublings = std::min(starts_failed_in_a_row_ - 2, 10);
  const auto delay = std::min<std::chrono::milliseconds>(
      kMaxBackoff, kFirstBackoff * (1 << std::max(0, doublings)));
  backing_off_ = true;
  backoff_until_ = Clock::now() + delay;
  backoff_timer_.expires_at(backoff_until_);
  backoff_timer_.async_wait([this](const boost::system::error_code& error) {
    if (error || stopping_)
      return;
    backing_off_ = false;
    spawns_wanted_ += std::exchange(respawns_waiting_, 0);
    pump_spawns();
    dispatch();
  });
}

}  // namespace percore::detail

namespace percore::detail {

void ProcessPool::pump_spawns() {
  assert_in_pool_thread();
  // A few requests outstanding at most: the zygote's answers then always fit
  // its socket's buffer, so it never blocks on a reader that is itself
  // blocked writing requests.
  constexpr int kMaxOutstandingSpawns = 4;
  while (spawns_wanted_ > 0 && spawns_pending_ < kMaxOutstandingSpawns && !stopping_ &&
         !zygote_gone_) {
    if (zygote_.request_worker() != Zygote::SendResult::kSent)
      return;  // Full: the next answer pumps again. Gone: reported by a read.
    --spawns_wanted_;
    ++spawns_pending_;
  }
}

}  // namespace percore::detail
