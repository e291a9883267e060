#include <percore/client_proxy/detail/send_thread.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <percore/client_proxy/detail/receive_thread.h>
#include <percore/client_proxy/detail/retry_policy.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/health_check.h>

namespace percore::detail {
namespace {

constexpr size_t kRequestBatch = 256;
constexpr int kMaxIovecs = 256;

std::string errno_text(int error) {
  return std::strerror(error);
}

}  // namespace

SendThread::SendThread(GroupState& group)
    : group_(group),
      loop_(group.send_loop),
      registry_(group.send_loop),
      deadlines_(group.send_loop, group.table),
      pool_seed_(0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(group.index + 1) ^
                 static_cast<uint64_t>(
                     std::chrono::steady_clock::now().time_since_epoch().count())),
      health_probe_(std::make_shared<const std::string>(encode_health_probe())) {
  request_batch_.resize(kRequestBatch);
}

SendThread::~SendThread() {
  stream_gate_->close();  // Writers of streams stop posting here.
}

void SendThread::run() {
  loop_.run(*this);
}

// --- posted from other threads ---

void SendThread::post_add_route(ChannelRoute& route) {
  loop_.post([this, &route] { add_route(route); });
}

void SendThread::post_remove_route(ChannelRoute& route, std::function<void()> retired) {
  loop_.post([this, &route, retired = std::move(retired)]() mutable {
    remove_route(route, std::move(retired));
  });
}

void SendThread::post_servers(ChannelRoute& route,
                              std::shared_ptr<const std::vector<ServerAddress>> servers,
                              std::shared_ptr<const std::vector<ServerAddress>> fallback) {
  loop_.post([this, &route, servers = std::move(servers), fallback = std::move(fallback)] {
    ChannelRoute::SendSide& side = route.send_side(loop_);
    if (side.pool != nullptr)
      side.pool->set_servers(*servers, fallback.get());
  });
}

void SendThread::post_released(uint64_t connection_id, ConnectionPool::LetGo how,
                               std::string reason) {
  loop_.post([this, connection_id, how, reason = std::move(reason)] {
    on_released(connection_id, how, reason);
  });
}

void SendThread::post_resend(CallTable::Slot slot, uint64_t connection_id) {
  loop_.post([this, slot, connection_id] { on_resend(slot, connection_id); });
}

void SendThread::post_flush(uint64_t connection_id) {
  loop_.post([this, connection_id] {
    const ConnectionRegistry::Entry entry = registry_.find(connection_id);
    if (entry.connection != nullptr)
      flush(*entry.connection);
  });
}

void SendThread::post_probe_answered(uint64_t connection_id) {
  loop_.post([this, connection_id] {
    const ConnectionRegistry::Entry entry = registry_.find(connection_id);
    if (entry.connection != nullptr)
      entry.pool->on_probe_answered(*entry.connection);
  });
}

namespace {

// Wakes the send thread for the frames of a stream bound to one connection.
class ConnectionStreamCarrier final : public StreamCarrier {
 public:
  ConnectionStreamCarrier(SendThread& send, std::shared_ptr<CarrierGate> gate,
                          uint64_t connection_id)
      : send_(send), gate_(std::move(gate)), connection_id_(connection_id) {}
  void wake(const std::shared_ptr<StreamCore>& stream) override {
    gate_->run_if_open([&] { send_.post_stream_output(connection_id_, stream); });
  }

 private:
  SendThread& send_;
  const std::shared_ptr<CarrierGate> gate_;  // Closed when the send thread goes.
  const uint64_t connection_id_;
};

}  // namespace

std::shared_ptr<StreamCarrier> SendThread::stream_carrier(uint64_t connection_id) {
  return std::make_shared<ConnectionStreamCarrier>(*this, stream_gate_, connection_id);
}

void SendThread::post_stream_output(uint64_t connection_id, std::shared_ptr<StreamCore> stream) {
  loop_.post([this, connection_id, stream = std::move(stream)] {
    take_stream_output(connection_id, stream);
  });
}

void SendThread::post_stream_frame(uint64_t connection_id, std::string frame) {
  loop_.post([this, connection_id, frame = std::move(frame)]() mutable {
    write_stream_frame(connection_id, std::move(frame));
  });
}

void SendThread::take_stream_output(uint64_t connection_id,
                                    const std::shared_ptr<StreamCore>& stream) {
  loop_.assert_in_loop_thread();
  const ConnectionRegistry::Entry entry = registry_.find(connection_id);
  const ClientConnection::State state =
      entry.connection != nullptr ? entry.connection->send_side().state
                                  : ClientConnection::State::kClosed;
  if (state != ClientConnection::State::kReady && state != ClientConnection::State::kEjected &&
      state != ClientConnection::State::kDraining) {
    group_.streams.remove(stream->id());
    stream->end(StreamEndReason::kConnectionBroken);
    return;
  }
  GatherBuffer frames;
  const std::optional<StreamEndReason> end = stream->take_outbox(frames);
  append_to(*entry.connection, std::move(frames));
  if (end) {
    group_.streams.remove(stream->id());
    stream->end(*end);
  }
}

void SendThread::write_stream_frame(uint64_t connection_id, std::string&& frame) {
  loop_.assert_in_loop_thread();
  const ConnectionRegistry::Entry entry = registry_.find(connection_id);
  if (entry.connection == nullptr)
    return;
  const ClientConnection::State state = entry.connection->send_side().state;
  if (state != ClientConnection::State::kReady && state != ClientConnection::State::kEjected &&
      state != ClientConnection::State::kDraining) {
    return;
  }
  GatherBuffer bytes;
  bytes.append_owned(std::move(frame));
  append_to(*entry.connection, std::move(bytes));
}

void SendThread::append_to(ClientConnection& connection, GatherBuffer&& bytes) {
  ClientConnection::SendSide& side = connection.send_side();
  side.bytes_queued += bytes.size();
  side.pending.append(std::move(bytes));
  if (!side.dirty) {
    side.dirty = true;
    dirty_.push_back(&connection);
  }
}

void SendThread::post_shutdown() {
  loop_.post([this] { shut_down(); });
}

// --- the loop's turns ---

bool SendThread::on_turn() {
  loop_.assert_in_loop_thread();
  const bool worked = drain_requests();
  for (ChannelRoute* route : routes_) {
    if (!route->send_side(loop_).waiting.empty())
      retry_waiting(*route);
  }
  flush_dirty();
  return worked;
}

bool SendThread::has_work() const {
  loop_.assert_in_loop_thread();
  return group_.requests.size_approx() > 0;
}

bool SendThread::lends_turns() const {
  return group_.options.callers_write;
}

EventLoop::Clock::time_point SendThread::next_timer() const {
  loop_.assert_in_loop_thread();
  EventLoop::Clock::time_point next = std::min(deadlines_.next_due(), pools_due_);
  if (group_.streams.with_idle_timeout() > 0)
    next = std::min(next, streams_idle_due_);
  return next;
}

void SendThread::on_event(uint64_t tag, uint32_t events) {
  loop_.assert_in_loop_thread();
  const ConnectionRegistry::Entry entry = registry_.find(tag);
  if (entry.connection == nullptr)
    return;
  ClientConnection::SendSide& side = entry.connection->send_side();
  if (side.state == ClientConnection::State::kConnecting) {
    entry.pool->on_connect_event(*entry.connection, events);
    return;
  }
  if (side.waiting_writable) {
    side.waiting_writable = false;
    loop_.unwatch(side.fd);
    flush(*entry.connection);
  }
}

EventLoop::Clock::time_point SendThread::on_timers(EventLoop::Clock::time_point now) {
  loop_.assert_in_loop_thread();
  const EventLoop::Clock::time_point next_deadline =
      deadlines_.expire_due(now, [this](CallTable::Slot slot, int64_t timeout_ms) {
        // A call that timed out on a connection counts against its server
        // (outlier detection).
        const CallRecord::SendSide& send = group_.records[slot.index].send_side(loop_);
        if (send.generation == slot.generation) {
          const ConnectionRegistry::Entry entry = registry_.find(send.connection_id);
          if (entry.connection != nullptr)
            entry.pool->on_call_timed_out(*entry.connection);
        }
        complete(slot, ErrorCode::kTimedOut,
                 "timed out after " + std::to_string(timeout_ms) + " ms");
      });
  if (now >= pools_due_) {
    pools_due_ = EventLoop::Clock::time_point::max();
    for (ChannelRoute* route : routes_) {
      ConnectionPool* pool = route->send_side(loop_).pool.get();
      if (pool == nullptr)
        continue;
      if (now >= pool->next_maintenance())
        pool->maintain(now);
      pools_due_ = std::min(pools_due_, pool->next_maintenance());
    }
  }
  EventLoop::Clock::time_point next = std::min(next_deadline, pools_due_);
  // Streams with an idle timeout, every 100 ms while there are any; an idle
  // one queues its CLOSE, which this thread then writes.
  if (group_.streams.with_idle_timeout() > 0) {
    if (now >= streams_idle_due_) {
      for (const std::shared_ptr<StreamCore>& stream : group_.streams.bound_with_idle_timeout())
        stream->check_idle(now);
      streams_idle_due_ = now + std::chrono::milliseconds(100);
    }
    next = std::min(next, streams_idle_due_);
  }
  return next;
}

// --- the pools' requests ---

void SendThread::on_connection_ready(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  receive_->post_adopt(connection, connection.send_side().fd);
}

void SendThread::on_connection_releasing(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  receive_->post_release(connection.id);
}

void SendThread::on_connection_freed(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  // Tasks (stream output, resends) queue bytes and mark connections dirty
  // before the turn's flush; a later task of the same batch may free one.
  if (connection.send_side().dirty)
    std::erase(dirty_, &connection);
}

void SendThread::on_maintenance_due(EventLoop::Clock::time_point when) {
  loop_.assert_in_loop_thread();
  pools_due_ = std::min(pools_due_, when);
}

void SendThread::send_health_probe(ClientConnection& connection, bool hello) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  ConnectionPool* pool = registry_.find(connection.id).pool;
  const ChannelOptions* options = pool != nullptr ? &pool->options() : nullptr;
  if (options != nullptr && options->authenticator != nullptr &&
      (hello || options->credential_on_every_call)) {
    // A credential asked anew per connection: a rotated one is picked up.
    std::string credential;
    if (options->authenticator->GenerateCredential(&credential) != 0) {
      pool->release(connection, "the authenticator made no credential: " + credential);
      return;
    }
    auto probe = std::make_shared<const std::string>(encode_health_probe(credential));
    side.bytes_queued += probe->size();
    side.pending.append_shared(std::move(probe));
  } else {
    side.pending.append_shared(health_probe_);
    side.bytes_queued += health_probe_->size();
  }
  flush(connection);
}

void SendThread::start_tls(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  flush(connection);  // Nothing queued: the session writes its ClientHello.
}

// --- intake and placement ---

bool SendThread::drain_requests() {
  loop_.assert_in_loop_thread();
  bool any = false;
  for (;;) {
    const size_t count = group_.requests.try_dequeue_bulk(request_batch_.begin(), kRequestBatch);
    if (count == 0)
      return any;
    any = true;
    // What was posted before these calls were made (their Channel's route,
    // its first server list) is visible now that they are: apply it first,
    // or a call made right after Channel::Init could find no pool (125) or
    // no server (112).
    loop_.run_tasks();
    for (size_t i = 0; i < count; ++i)
      dispatch(request_batch_[i]);
    if (count < kRequestBatch)
      return any;
  }
}

void SendThread::dispatch(CallTable::Slot slot) {
  loop_.assert_in_loop_thread();
  if (!group_.table.is_pending(slot))
    return;
  CallRecord& record = group_.records[slot.index];
  CallRecord::SendSide& send = record.send_side(loop_);
  send.generation = slot.generation;
  send.connection_id = 0;
  send.stream_offset = 0;
  send.avoid_server = 0;
  send.sent = false;
  send.retries_used = 0;
  send.resends_used = 0;
  send.last_error = ErrorCode::kOk;
  if (record.call.deadline != CallRecord::Clock::time_point::max())
    deadlines_.add(slot, record.call.started_at, record.call.deadline);
  place(slot, record, send);
}

void SendThread::place(CallTable::Slot slot, CallRecord& record, CallRecord::SendSide& send) {
  loop_.assert_in_loop_thread();
  ChannelRoute::SendSide& route = record.call.route->send_side(loop_);
  if (route.pool == nullptr) {
    complete(slot, ErrorCode::kCanceled, "cancelled: the channel is being destroyed");
    return;
  }
  bool wait = false;
  if (ClientConnection* connection = route.pool->pick(send.avoid_server, &wait)) {
    if (!send.sent) {
      send.sent = true;
      route.budget.on_call(record.call.started_at);  // Retries are a share of these.
    } else {
      route.budget.spend(CallRecord::Clock::now());
      RouteCounters::bump(record.call.route->counters.retries);
    }
    queue_on(*connection, record, send);
    return;
  }
  if (wait) {
    route.waiting.push_back(slot);  // A connection is on its way.
    return;
  }
  if (const ConnectionPool::Refusal& refusal = route.pool->refusal();
      refusal.code != ErrorCode::kOk) {
    complete(slot, refusal.code, refusal.text + " (reconnecting after back-off)");
    return;
  }
  if (send.last_error == ErrorCode::kServerStopping) {
    complete(slot, ErrorCode::kServerStopping,
             send.last_error_text + "; no other server can take the call");
    return;
  }
  complete(slot, ErrorCode::kHostDown,
           route.pool->has_servers()
               ? "no server available: every server refused or timed out recently, or is "
                 "stopping (in back-off)"
               : "no server available: the server list is empty");
}

void SendThread::resend(CallTable::Slot slot, uint64_t avoid_server) {
  loop_.assert_in_loop_thread();
  CallRecord& record = group_.records[slot.index];
  if (CallRecord::Clock::now() >= record.call.deadline) {
    complete(slot, ErrorCode::kTimedOut, "deadline passed before the call could be sent again");
    return;
  }
  CallRecord::SendSide& send = record.send_side(loop_);
  send.avoid_server = avoid_server;
  send.connection_id = 0;
  record.resends.fetch_add(1, std::memory_order_relaxed);
  place(slot, record, send);
}

void SendThread::retry_waiting(ChannelRoute& route) {
  loop_.assert_in_loop_thread();
  ChannelRoute::SendSide& side = route.send_side(loop_);
  if (side.pool != nullptr && side.pool->ready_count() == 0 && side.pool->connecting_count() > 0)
    return;  // Still waiting.
  std::vector<CallTable::Slot> waiting;
  waiting.swap(side.waiting);
  for (CallTable::Slot slot : waiting) {
    if (group_.table.is_pending(slot)) {  // Not timed out meanwhile.
      CallRecord& record = group_.records[slot.index];
      place(slot, record, record.send_side(loop_));
    }
  }
}

void SendThread::complete(CallTable::Slot slot, ErrorCode code, std::string text) {
  loop_.assert_in_loop_thread();
  if (loop_.in_lent_turn()) {
    // A calling thread runs this turn (ClientRuntimeOptions::callers_write):
    // a call ends on the send thread, whose CompletionMode is known, never
    // inside another call's CallMethod.
    loop_.post([this, slot, code, text = std::move(text)]() mutable {
      complete(slot, code, std::move(text));
    });
    return;
  }
  if (!group_.table.try_complete(slot))
    return;
  CallRecord& record = group_.records[slot.index];
  const CallRecord::SendSide& send = record.send_side(loop_);
  std::string remote_side;
  // A call still in the request queue has no send-side fields of its own yet.
  if (send.generation == slot.generation) {
    if (ClientConnection* connection = registry_.find(send.connection_id).connection) {
      connection->outstanding.fetch_sub(1, std::memory_order_relaxed);
      remote_side = connection->remote_side;
    } else if (send.retries_used + send.resends_used > 0) {
      // Between two attempts: last_remote_side was set by this call (it is
      // not cleared per call, to keep the common path free of it).
      remote_side = send.last_remote_side;
    }
  }
  CallCompleter::finish(group_, slot, code, std::move(text), remote_side);
}

// --- writing ---

void SendThread::queue_on(ClientConnection& connection, CallRecord& record,
                          CallRecord::SendSide& send) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  const CallRecord::Call& call = record.call;
  send.connection_id = connection.id;
  record.queued_on.store(connection.id, std::memory_order_release);
  send.stream_offset = side.bytes_queued;
  size_t bytes;
  if (call.shared_head != nullptr) {
    bytes = call.shared_head_bytes;
    side.pending.append_shared(call.shared_head,
                               std::string_view(call.shared_head.get(), bytes));
  } else {
    bytes = call.head.size();
    side.pending.append_copy(call.head);
  }
  if (call.attachment != nullptr) {
    bytes += call.attachment->size();
    side.pending.append_shared(call.attachment);
  }
  side.bytes_queued += bytes;
  connection.outstanding.fetch_add(1, std::memory_order_relaxed);
  if (!side.dirty) {
    side.dirty = true;
    dirty_.push_back(&connection);
  }
}

void SendThread::flush_dirty() {
  loop_.assert_in_loop_thread();
  // Connections on the list are alive: it is emptied every turn, and a
  // connection freed by a task (or timer) leaves it first
  // (on_connection_freed).
  for (ClientConnection* connection : dirty_) {
    connection->send_side().dirty = false;
    flush(*connection);
  }
  dirty_.clear();
}

void SendThread::flush(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  if (side.waiting_writable || side.fd < 0 || side.state == ClientConnection::State::kReleasing ||
      side.state == ClientConnection::State::kClosed) {
    return;
  }
  iovec vectors[kMaxIovecs];
  for (;;) {
    if (side.writing.empty()) {
      if (connection.tls != nullptr) {
        if (!encrypt_pending(connection) || side.writing.empty())
          return;
      } else {
        if (side.pending.empty())
          return;
        side.writing.swap(side.pending);
      }
    }
    msghdr message{};
    message.msg_iov = vectors;
    message.msg_iovlen = static_cast<size_t>(side.writing.fill_iovecs(vectors, kMaxIovecs));
    const ssize_t written = ::sendmsg(side.fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        side.waiting_writable = true;
        loop_.watch(side.fd, EPOLLOUT, connection.id);
        return;
      }
      registry_.find(connection.id).pool->release(connection, "write failed: " + errno_text(errno));
      return;
    }
    side.writing.consume(static_cast<size_t>(written));
    if (connection.tls == nullptr)
      side.bytes_written += static_cast<uint64_t>(written);
  }
}

bool SendThread::encrypt_pending(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  size_t taken = 0;
  std::string failure;
  const TlsSession::Status status = connection.tls->encrypt(side.pending, side.writing, &taken,
                                                            &failure);
  // Handed to TLS counts as written: its record may reach the server.
  side.bytes_written += taken;
  if (status == TlsSession::Status::kFailed) {
    side.tls_failed = true;
    registry_.find(connection.id).pool->release(connection, failure);
    return false;
  }
  return true;
}

// --- connections coming back from the receive side ---

void SendThread::on_released(uint64_t connection_id, ConnectionPool::LetGo how,
                             const std::string& reason) {
  loop_.assert_in_loop_thread();
  const ConnectionRegistry::Entry entry = registry_.find(connection_id);
  if (entry.connection == nullptr)
    return;
  ClientConnection& connection = *entry.connection;
  const ClientConnection::SendSide& side = connection.send_side();
  // The receive side says why when it saw the failure; otherwise the send
  // side asked, and said why (empty: a drained connection closing).
  const std::string why = reason.empty() ? side.failure_reason : reason;
  if (side.tls_failed)
    how = ConnectionPool::LetGo::kTlsFailed;
  const bool had_calls = connection.outstanding.load(std::memory_order_relaxed) > 0 ||
                         !side.writing.empty() || !side.pending.empty();
  const GoneConnection gone{connection.id, connection.server_id, side.bytes_written,
                            connection.remote_side};
  // No call may be placed on it while its calls are settled.
  entry.pool->release_silently(connection);
  // Counts, logs, frees it and starts its reconnect (before the calls on it
  // are sent again, so that they can wait for it).
  entry.pool->on_let_go(connection, how, had_calls, why);
  if (how == ConnectionPool::LetGo::kUnauthorized) {
    settle_calls_on(gone, why, ErrorCode::kUnauthorized);
  } else if (how == ConnectionPool::LetGo::kTlsFailed) {
    settle_calls_on(gone, why, ErrorCode::kTls);
  } else {
    settle_calls_on(gone, "connection to " + gone.remote_side + " broke" +
                              (why.empty() ? std::string() : ": " + why));
  }
  for (const std::shared_ptr<StreamCore>& stream : group_.streams.remove_on_connection(gone.id))
    stream->end(StreamEndReason::kConnectionBroken);
  for (ChannelRoute* route : routes_) {
    if (route->send_side(loop_).pool.get() == entry.pool) {
      retire_if_done(*route);
      break;
    }
  }
}

void SendThread::settle_calls_on(const GoneConnection& gone, const std::string& why,
                                 ErrorCode refused) {
  loop_.assert_in_loop_thread();
  for (uint32_t index = 0; index < group_.table.capacity(); ++index) {
    CallRecord& record = group_.records[index];
    CallRecord::SendSide& send = record.send_side(loop_);
    if (send.connection_id != gone.id)
      continue;
    const CallTable::Slot slot{index, send.generation};
    if (!group_.table.is_pending(slot))
      continue;
    const bool written = gone.bytes_written > send.stream_offset;
    send.connection_id = 0;
    send.last_remote_side = gone.remote_side;
    if (refused != ErrorCode::kOk) {
      // Refused for what the client is (its credential): any server would.
      fail_attempt(slot, refused, why, std::string(), gone.remote_side);
      continue;
    }
    ChannelRoute& route = *record.call.route;
    const RetryPolicy::Verdict verdict = RetryPolicy::after_broken_connection(
        record.call, send, written, route.send_side(loop_).budget, route.counters);
    if (verdict.send_again) {
      resend(slot, gone.server_id);
    } else {
      fail_attempt(slot, ErrorCode::kBrokenConnection,
                   written ? why : why + " before the call was written", verdict.refusal,
                   gone.remote_side);
    }
  }
}

void SendThread::fail_attempt(CallTable::Slot slot, ErrorCode code, const std::string& why,
                              const std::string& refusal, const std::string& remote_side) {
  loop_.assert_in_loop_thread();
  if (loop_.in_lent_turn()) {
    // As complete(): a call ends on the send thread itself.
    loop_.post([this, slot, code, why, refusal, remote_side] {
      fail_attempt(slot, code, why, refusal, remote_side);
    });
    return;
  }
  if (!group_.table.try_complete(slot))
    return;
  CallCompleter::finish(group_, slot, code,
                        refusal.empty() ? why : why + "; not sent again: " + refusal,
                        remote_side);
}

void SendThread::on_resend(CallTable::Slot slot, uint64_t connection_id) {
  loop_.assert_in_loop_thread();
  if (!group_.table.is_pending(slot))
    return;
  CallRecord& record = group_.records[slot.index];
  CallRecord::SendSide& send = record.send_side(loop_);
  // A second 2003 for the same call, or one from a connection the call has
  // left already: the call is elsewhere, it must not be sent twice.
  if (send.generation != slot.generation || send.connection_id != connection_id)
    return;
  const ConnectionRegistry::Entry entry = registry_.find(connection_id);
  uint64_t server_id = 0;
  std::string remote_side;
  if (entry.connection != nullptr) {
    // The 2003 answer took the call off that connection.
    entry.connection->outstanding.fetch_sub(1, std::memory_order_relaxed);
    server_id = entry.connection->server_id;
    remote_side = entry.connection->remote_side;
    // No more calls to that server until it has reconnected.
    entry.pool->on_server_stopping(*entry.connection);
  }
  send.connection_id = 0;
  send.last_remote_side = remote_side;
  send.last_error = ErrorCode::kServerStopping;
  send.last_error_text = "server stopping: " + remote_side + " answered 2003";
  ChannelRoute& route = *record.call.route;
  const RetryPolicy::Verdict verdict = RetryPolicy::after_server_stopping(
      record.call, send, route.send_side(loop_).budget, route.counters);
  if (verdict.send_again) {
    resend(slot, server_id);
  } else {
    fail_attempt(slot, ErrorCode::kServerStopping, send.last_error_text, verdict.refusal,
                 remote_side);
  }
}

// --- routes ---

void SendThread::add_route(ChannelRoute& route) {
  loop_.assert_in_loop_thread();
  ConnectionPool::Listener& listener = *this;
  route.send_side(loop_).pool =
      std::make_unique<ConnectionPool>(loop_, group_.receive_loop, route.options, registry_,
                                       listener, route.counters, route.events, pool_seed_++,
                                       route.tls_context);
  routes_.push_back(&route);
}

void SendThread::remove_route(ChannelRoute& route, std::function<void()> retired) {
  loop_.assert_in_loop_thread();
  ChannelRoute::SendSide& side = route.send_side(loop_);
  side.on_retired = std::move(retired);
  cancel_calls(&route);
  side.waiting.clear();
  if (side.pool != nullptr)
    side.pool->shut_down();
  retire_if_done(route);
}

void SendThread::retire_if_done(ChannelRoute& route) {
  loop_.assert_in_loop_thread();
  ChannelRoute::SendSide& side = route.send_side(loop_);
  if (!side.on_retired || (side.pool != nullptr && !side.pool->empty()))
    return;
  side.pool.reset();
  std::erase(routes_, &route);
  std::function<void()> retired = std::move(side.on_retired);
  side.on_retired = nullptr;
  retired();  // The Channel may free the route from here on.
}

void SendThread::cancel_calls(const ChannelRoute* route) {
  loop_.assert_in_loop_thread();
  for (uint32_t index = 0; index < group_.table.capacity(); ++index) {
    // Calls still in the request queue were never dispatched: complete()
    // knows them by their generation.
    const std::optional<CallTable::Slot> slot = group_.table.pending_at(index);
    if (!slot || (route != nullptr &&
                  group_.records[index].sweep_route.load(std::memory_order_relaxed) != route))
      continue;
    complete(*slot, ErrorCode::kCanceled, "cancelled: the channel is being destroyed");
  }
}

void SendThread::shut_down() {
  loop_.assert_in_loop_thread();
  // The receive thread has stopped: nothing else completes calls now.
  cancel_calls(nullptr);
  for (const std::shared_ptr<StreamCore>& stream : group_.streams.remove_all())
    stream->end(StreamEndReason::kConnectionBroken);
  for (ChannelRoute* route : routes_)
    route->send_side(loop_).pool.reset();  // Closes what is still open.
  routes_.clear();
  loop_.stop();
}

}  // namespace percore::detail
