#include "client_proxy/detail/send_thread.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "base/net_address.h"
#include "client_proxy/controller.h"
#include "proto/assert.h"

namespace percore::detail {
namespace {

constexpr size_t kRequestBatch = 256;
constexpr int kMaxIovecs = 256;
// Marks the notifier's eventfd in epoll data; connection ids start at 1.
constexpr uint64_t kNotifierTag = 0;

std::string errno_text(int error) {
  return std::strerror(error);
}

}  // namespace

SendThread::SendThread(GroupState& group)
    : group_(group),
      epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)),
      picker_(group.options.load_balancer,
              0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(group.index + 1) ^
                  static_cast<uint64_t>(Clock::now().time_since_epoch().count())) {
  PERCORE_ASSERT(epoll_fd_ >= 0);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kNotifierTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, group_.send_notifier.fd(), &event);
  request_batch_.resize(kRequestBatch);
}

SendThread::~SendThread() {
  for (auto& [id, connection] : connections_) {
    if (connection->fd >= 0)
      ::close(connection->fd);
  }
  ::close(epoll_fd_);
}

void SendThread::assert_in_send_thread() const {
  PERCORE_ASSERT(std::this_thread::get_id() == thread_id_);
}

void SendThread::run() {
  thread_id_ = std::this_thread::get_id();
  while (running_) {
    bool worked = process_commands();
    if (!running_)
      break;
    worked |= drain_requests();
    if (!waiting_.empty())
      retry_waiting_calls();
    flush_dirty();
    const Clock::time_point now = Clock::now();
    fire_deadlines(now);
    if (now >= next_maintenance_)
      maintain(now);
    if (!worked)
      park();
  }
  shut_down();
}

bool SendThread::process_commands() {
  SendCommand command;
  bool any = false;
  while (group_.send_commands.try_dequeue(command)) {
    any = true;
    switch (command.kind) {
      case SendCommand::Kind::kReleased:
        on_released(command.connection_id, command.reason);
        break;
      case SendCommand::Kind::kResend: {
        if (!group_.table.is_pending(command.slot))
          break;
        CallRecord& record = group_.records[command.slot.index];
        // The 2003 answer took the call off that connection.
        if (ClientConnection* connection = find_connection(record.connection_id)) {
          connection->outstanding.fetch_sub(1, std::memory_order_relaxed);
        }
        record.connection_id = 0;
        ServerEntry* server = nullptr;
        if (ClientConnection* from = find_connection(command.connection_id)) {
          server = find_server(from->server_id);
        }
        resend(command.slot, server != nullptr ? server->id : 0);
        break;
      }
      case SendCommand::Kind::kServers:
        set_servers(*command.servers, command.fallback_servers.get());
        break;
      case SendCommand::Kind::kShutdown:
        running_ = false;
        return true;
    }
  }
  return any;
}

bool SendThread::drain_requests() {
  bool any = false;
  for (;;) {
    const size_t count = group_.requests.try_dequeue_bulk(request_batch_.begin(), kRequestBatch);
    if (count == 0)
      return any;
    any = true;
    for (size_t i = 0; i < count; ++i)
      dispatch(request_batch_[i]);
    if (count < kRequestBatch)
      return any;
  }
}

void SendThread::dispatch(CallTable::Slot slot) {
  assert_in_send_thread();
  if (!group_.table.is_pending(slot))
    return;
  CallRecord& record = group_.records[slot.index];
  record.generation = slot.generation;
  record.connection_id = 0;
  record.stream_offset = 0;
  record.avoid_server = 0;
  record.retries_used = 0;
  if (record.deadline != CallRecord::Clock::time_point::max()) {
    const int64_t length =
        std::chrono::duration_cast<std::chrono::milliseconds>(record.deadline - record.started_at)
            .count();
    deadlines_[length].push_back(DeadlineEntry{record.deadline, slot});
    // Entries of calls that ended early stay until their deadline; at high
    // rates and long timeouts that is many. Dropping them once they
    // outnumber the calls that can be pending keeps the queues bounded by
    // max_inflight_per_group, at amortized O(1) per call.
    if (++deadline_entries_ > 2 * static_cast<size_t>(group_.table.capacity()) + 1024)
      compact_deadlines();
  }
  place(slot, record);
}

void SendThread::compact_deadlines() {
  deadline_entries_ = 0;
  for (auto& [length, entries] : deadlines_) {
    std::erase_if(entries, [this](const DeadlineEntry& entry) {
      return !group_.table.is_pending(entry.slot);
    });
    deadline_entries_ += entries.size();
  }
}

void SendThread::resend(CallTable::Slot slot, uint64_t avoid_server) {
  CallRecord& record = group_.records[slot.index];
  if (Clock::now() >= record.deadline) {
    complete(slot, ErrorCode::kTimedOut, "deadline passed before the call could be sent again");
    return;
  }
  record.avoid_server = avoid_server;
  record.connection_id = 0;
  record.resends.fetch_add(1, std::memory_order_relaxed);
  group_.counters.resends.fetch_add(1, std::memory_order_relaxed);
  place(slot, record);
}

void SendThread::place(CallTable::Slot slot, CallRecord& record) {
  if (try_place(slot, record, 0))
    return;
  // The whole subset is down: any server will do.
  if (fallback_servers_ > 0) {
    if (!fallback_active_)
      set_fallback_active(true);
    if (try_place(slot, record, 1))
      return;
  }
  complete(slot, ErrorCode::kHostDown,
           current_servers_.empty() ? "no server available: the server list is empty"
                                    : "no server available: every connection is down");
}

bool SendThread::try_place(CallTable::Slot slot, CallRecord& record, int tier) {
  std::vector<ClientConnection*>& ready = ready_[tier];
  const int chosen = picker_.pick(
      ready.size(),
      [&ready](size_t i) {
        return BalancerCandidate{ready[i]->server_id,
                                 ready[i]->outstanding.load(std::memory_order_relaxed)};
      },
      record.avoid_server);
  if (chosen >= 0) {
    queue_on(*ready[chosen], slot, record);
    return true;
  }
  if (connecting_[tier] > 0) {
    waiting_.push_back(slot);  // A connection is on its way.
    return true;
  }
  return false;
}

void SendThread::set_fallback_active(bool active) {
  fallback_active_ = active;
  if (active) {
    maintain(Clock::now());  // Connects the fallback servers.
    return;
  }
  // The subset is back: fallback connections finish their calls and close.
  std::vector<ClientConnection*> fallback;
  for (auto& [id, connection] : connections_) {
    if (connection->fallback)
      fallback.push_back(connection.get());
  }
  for (ClientConnection* connection : fallback) {
    if (connection->state == ClientConnection::State::kReady) {
      remove_ready(*connection);
      connection->state = ClientConnection::State::kDraining;
    } else if (connection->state == ClientConnection::State::kConnecting) {
      --connecting_[1];
      unwatch(*connection);
      forget_connection(*connection, /*failed=*/false);
    }
  }
  next_maintenance_ = Clock::time_point::min();
}

void SendThread::queue_on(ClientConnection& connection, CallTable::Slot slot, CallRecord& record) {
  record.connection_id = connection.id;
  record.stream_offset = connection.bytes_queued;
  size_t bytes;
  if (record.shared_head != nullptr) {
    bytes = record.shared_head->size();
    connection.pending.append_shared(record.shared_head);
  } else {
    bytes = record.head.size();
    connection.pending.append_copy(record.head);
  }
  if (record.attachment != nullptr) {
    bytes += record.attachment->size();
    connection.pending.append_shared(record.attachment);
  }
  connection.bytes_queued += bytes;
  connection.outstanding.fetch_add(1, std::memory_order_relaxed);
  (void)slot;
  if (!connection.dirty) {
    connection.dirty = true;
    dirty_.push_back(&connection);
  }
}

void SendThread::complete(CallTable::Slot slot, ErrorCode code, std::string text) {
  if (!group_.table.try_complete(slot))
    return;
  CallRecord& record = group_.records[slot.index];
  std::string remote_side;
  if (ClientConnection* connection = find_connection(record.connection_id)) {
    connection->outstanding.fetch_sub(1, std::memory_order_relaxed);
    remote_side = connection->remote_side;
  }
  CallCompleter::finish(group_, slot, code, std::move(text), remote_side);
}

void SendThread::retry_waiting_calls() {
  const bool none_ready = ready_[0].empty() && ready_[1].empty();
  if (none_ready && connecting_[0] + connecting_[1] > 0)
    return;  // Still waiting.
  std::vector<CallTable::Slot> waiting;
  waiting.swap(waiting_);
  for (CallTable::Slot slot : waiting) {
    if (!group_.table.is_pending(slot))
      continue;  // Timed out meanwhile.
    place(slot, group_.records[slot.index]);
  }
}

void SendThread::fire_deadlines(Clock::time_point now) {
  for (auto queue = deadlines_.begin(); queue != deadlines_.end();) {
    std::deque<DeadlineEntry>& entries = queue->second;
    while (!entries.empty() && entries.front().deadline <= now) {
      const CallTable::Slot slot = entries.front().slot;
      entries.pop_front();
      --deadline_entries_;
      if (group_.table.is_pending(slot)) {
        const auto timeout_ms = queue->first;
        complete(slot, ErrorCode::kTimedOut,
                 "timed out after " + std::to_string(timeout_ms) + " ms");
      }
    }
    queue = entries.empty() ? deadlines_.erase(queue) : std::next(queue);
  }
}

SendThread::Clock::time_point SendThread::next_wake_up() const {
  Clock::time_point wake = next_maintenance_;
  for (const auto& [length, entries] : deadlines_) {
    if (!entries.empty())
      wake = std::min(wake, entries.front().deadline);
  }
  return wake;
}

void SendThread::park() {
  const int spin_us = group_.options.spin_us;
  if (spin_us > 0) {
    const Clock::time_point spin_until = Clock::now() + std::chrono::microseconds(spin_us);
    while (Clock::now() < spin_until) {
      if (group_.requests.size_approx() > 0 || group_.send_commands.size_approx() > 0)
        return;
    }
  }
  group_.send_notifier.prepare_to_park();
  if (group_.requests.size_approx() > 0 || group_.send_commands.size_approx() > 0) {
    group_.send_notifier.cancel_park();
    return;
  }
  int timeout_ms = -1;
  const Clock::time_point wake = next_wake_up();
  if (wake != Clock::time_point::max()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count();
    timeout_ms = static_cast<int>(std::clamp<int64_t>(left, 0, 60000));
  }
  epoll_event events[64];
  const int count = ::epoll_wait(epoll_fd_, events, 64, timeout_ms);
  group_.send_notifier.cancel_park();
  for (int i = 0; i < count; ++i) {
    if (events[i].data.u64 == kNotifierTag) {
      group_.send_notifier.consume();
    } else {
      handle_epoll_event(events[i].data.u64, events[i].events);
    }
  }
}

void SendThread::handle_epoll_event(uint64_t connection_id, uint32_t events) {
  ClientConnection* connection = find_connection(connection_id);
  if (connection == nullptr || connection->fd < 0)
    return;
  if (connection->state == ClientConnection::State::kConnecting) {
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(connection->fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error == 0 && (events & EPOLLOUT) != 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) {
      on_connected(*connection);
    } else {
      on_connect_failed(*connection, error != 0 ? errno_text(error) : "connection refused");
    }
    return;
  }
  if (connection->waiting_writable) {
    connection->waiting_writable = false;
    unwatch(*connection);
    flush(*connection);
  }
}

void SendThread::flush_dirty() {
  for (ClientConnection* connection : dirty_) {
    connection->dirty = false;
    flush(*connection);
  }
  dirty_.clear();
}

void SendThread::flush(ClientConnection& connection) {
  if (connection.waiting_writable || connection.fd < 0 ||
      connection.state == ClientConnection::State::kReleasing) {
    return;
  }
  iovec vectors[kMaxIovecs];
  for (;;) {
    if (connection.writing.empty()) {
      if (connection.pending.empty())
        return;
      connection.writing.swap(connection.pending);
    }
    msghdr message{};
    message.msg_iov = vectors;
    message.msg_iovlen = static_cast<size_t>(connection.writing.fill_iovecs(vectors, kMaxIovecs));
    const ssize_t written = ::sendmsg(connection.fd, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        connection.waiting_writable = true;
        watch(connection, EPOLLOUT);
        return;
      }
      fail_connection(connection, "write failed: " + errno_text(errno));
      return;
    }
    connection.writing.consume(static_cast<size_t>(written));
    connection.bytes_written += static_cast<uint64_t>(written);
  }
}

void SendThread::watch(ClientConnection& connection, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = connection.id;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connection.fd, &event);
}

void SendThread::unwatch(ClientConnection& connection) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd, nullptr);
}

void SendThread::connect(ServerEntry& server, size_t slot_index) {
  const uint64_t id = next_connection_id_++;
  auto owned = std::make_unique<ClientConnection>(
      id, server.id, server.fallback, server.address.to_string(), group_.options.max_body_bytes);
  ClientConnection& connection = *owned;
  connections_.emplace(id, std::move(owned));
  server.connection_ids[slot_index] = id;
  group_.counters.connects.fetch_add(1, std::memory_order_relaxed);

  connection.fd =
      ::socket(server.socket_address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int tier = server.fallback ? 1 : 0;
  if (connection.fd < 0) {
    ++connecting_[tier];  // on_connect_failed() expects a connecting connection.
    on_connect_failed(connection, "socket: " + errno_text(errno));
    return;
  }
  const int one = 1;
  ::setsockopt(connection.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  connection.state = ClientConnection::State::kConnecting;
  ++connecting_[tier];
  connection.connect_deadline =
      Clock::now() + std::chrono::milliseconds(group_.options.connect_timeout_ms);
  next_maintenance_ = std::min(next_maintenance_, connection.connect_deadline);
  const int result = ::connect(connection.fd, reinterpret_cast<sockaddr*>(&server.socket_address),
                               server.socket_address_length);
  if (result == 0) {
    on_connected(connection);
  } else if (errno == EINPROGRESS) {
    watch(connection, EPOLLOUT);
  } else {
    on_connect_failed(connection, "connect: " + errno_text(errno));
  }
}

void SendThread::on_connected(ClientConnection& connection) {
  unwatch(connection);
  --connecting_[connection.fallback ? 1 : 0];
  connection.state = ClientConnection::State::kReady;
  if (ServerEntry* server = find_server(connection.server_id))
    server->consecutive_failures = 0;
  ReceiveCommand adopt;
  adopt.kind = ReceiveCommand::Kind::kAdopt;
  adopt.connection = &connection;
  adopt.connection_id = connection.id;
  group_.post_to_receive_thread(adopt);
  add_ready(connection);
  if (!connection.fallback && fallback_active_)
    set_fallback_active(false);
}

void SendThread::on_connect_failed(ClientConnection& connection, const std::string& reason) {
  (void)reason;
  --connecting_[connection.fallback ? 1 : 0];
  if (connection.fd >= 0) {
    unwatch(connection);
  }
  group_.counters.connection_failures.fetch_add(1, std::memory_order_relaxed);
  forget_connection(connection, /*failed=*/true);
}

void SendThread::fail_connection(ClientConnection& connection, const std::string& reason) {
  if (connection.state == ClientConnection::State::kReleasing)
    return;
  remove_ready(connection);
  if (connection.waiting_writable) {
    connection.waiting_writable = false;
    unwatch(connection);
  }
  connection.state = ClientConnection::State::kReleasing;
  connection.failure_reason = reason;
  ReceiveCommand release;
  release.kind = ReceiveCommand::Kind::kRelease;
  release.connection_id = connection.id;
  // The receive side answers kReleased; the calls on it are settled then.
  group_.post_to_receive_thread(release);
}

void SendThread::on_released(uint64_t connection_id, const std::string& reason) {
  ClientConnection* connection = find_connection(connection_id);
  if (connection == nullptr)
    return;
  remove_ready(*connection);
  if (connection->waiting_writable) {
    connection->waiting_writable = false;
    unwatch(*connection);
  }
  // The receive side says why when it saw the failure; otherwise the send
  // side asked, and said why (empty: a drained connection closing).
  const std::string why = reason.empty() ? connection->failure_reason : reason;
  const bool drained = why.empty();
  connection->state = ClientConnection::State::kReleasing;
  if (!drained)
    group_.counters.connection_failures.fetch_add(1, std::memory_order_relaxed);

  // Every call still pending on it: never written -> elsewhere; written ->
  // elsewhere only within max_retry; otherwise 1009 now, not at its deadline.
  const std::string text = "connection to " + connection->remote_side + " broke" +
                           (why.empty() ? std::string() : ": " + why);
  for (uint32_t index = 0; index < group_.table.capacity(); ++index) {
    CallRecord& record = group_.records[index];
    if (record.connection_id != connection_id)
      continue;
    const CallTable::Slot slot{index, record.generation};
    if (!group_.table.is_pending(slot))
      continue;
    const bool written = connection->bytes_written > record.stream_offset;
    record.connection_id = 0;
    if (!written) {
      resend(slot, connection->server_id);
    } else if (record.retries_used < record.max_retry) {
      ++record.retries_used;
      resend(slot, connection->server_id);
    } else {
      if (group_.table.try_complete(slot)) {
        CallCompleter::finish(group_, slot, ErrorCode::kBrokenConnection, text,
                              connection->remote_side);
      }
    }
  }
  forget_connection(*connection, !drained);
}

void SendThread::forget_connection(ClientConnection& connection, bool failed) {
  const uint64_t id = connection.id;
  ServerEntry* server = find_server(connection.server_id);
  if (connection.fd >= 0)
    ::close(connection.fd);
  connection.fd = -1;
  connections_.erase(id);  // `connection` is gone from here on.
  if (server == nullptr)
    return;
  for (size_t i = 0; i < server->connection_ids.size(); ++i) {
    if (server->connection_ids[i] != id)
      continue;
    server->connection_ids[i] = 0;
    if (failed)
      ++server->consecutive_failures;
    const Clock::time_point retry = Clock::now() + (failed ? backoff(server->consecutive_failures)
                                                           : std::chrono::milliseconds(0));
    server->retry_at[i] = retry;
    next_maintenance_ = std::min(next_maintenance_, retry);
  }
}

std::chrono::milliseconds SendThread::backoff(int failures) {
  const int64_t initial = std::max(1, group_.options.backoff_initial_ms);
  const int64_t cap = std::max<int64_t>(initial, group_.options.backoff_max_ms);
  int64_t delay = initial;
  for (int i = 1; i < failures && delay < cap; ++i)
    delay *= 2;
  delay = std::min(delay, cap);
  // +-25% jitter, so that many clients do not reconnect in step.
  const int64_t jitter = delay / 2;
  if (jitter > 0)
    delay += static_cast<int64_t>(picker_.next_random() % (jitter + 1)) - jitter / 2;
  return std::chrono::milliseconds(std::max<int64_t>(1, delay));
}

void SendThread::add_ready(ClientConnection& connection) {
  if (connection.ready_index >= 0)
    return;
  std::vector<ClientConnection*>& ready = ready_[connection.fallback ? 1 : 0];
  connection.ready_index = static_cast<int>(ready.size());
  ready.push_back(&connection);
}

void SendThread::remove_ready(ClientConnection& connection) {
  if (connection.ready_index < 0)
    return;
  std::vector<ClientConnection*>& ready = ready_[connection.fallback ? 1 : 0];
  ClientConnection* last = ready.back();
  ready[connection.ready_index] = last;
  last->ready_index = connection.ready_index;
  ready.pop_back();
  connection.ready_index = -1;
}

void SendThread::maintain(Clock::time_point now) {
  Clock::time_point next = Clock::time_point::max();
  // Connect timeouts and drained connections.
  std::vector<ClientConnection*> timed_out;
  std::vector<ClientConnection*> drained;
  for (auto& [id, connection] : connections_) {
    if (connection->state == ClientConnection::State::kConnecting) {
      if (now >= connection->connect_deadline) {
        timed_out.push_back(connection.get());
      } else {
        next = std::min(next, connection->connect_deadline);
      }
    } else if (connection->state == ClientConnection::State::kDraining) {
      if (connection->outstanding.load(std::memory_order_relaxed) == 0 &&
          connection->writing.empty() && connection->pending.empty()) {
        drained.push_back(connection.get());
      } else {
        next = std::min(next, now + std::chrono::milliseconds(10));
      }
    }
  }
  for (ClientConnection* connection : timed_out) {
    on_connect_failed(*connection, "connect timed out");
  }
  for (ClientConnection* connection : drained)
    fail_connection(*connection, "");
  // Reconnects after back-off; servers that left and have no connection left.
  for (auto entry = servers_.begin(); entry != servers_.end();) {
    ServerEntry& server = entry->second;
    bool any_connection = false;
    for (size_t i = 0; i < server.connection_ids.size(); ++i) {
      if (server.connection_ids[i] != 0) {
        any_connection = true;
        continue;
      }
      if (server.removed || (server.fallback && !fallback_active_))
        continue;
      if (now >= server.retry_at[i]) {
        connect(server, i);
        any_connection = true;
      } else {
        next = std::min(next, server.retry_at[i]);
      }
    }
    if (server.removed && !any_connection) {
      entry = servers_.erase(entry);
    } else {
      ++entry;
    }
  }
  for (auto& [id, connection] : connections_) {
    if (connection->state == ClientConnection::State::kConnecting) {
      next = std::min(next, connection->connect_deadline);
    }
  }
  next_maintenance_ = next;
}

void SendThread::set_servers(const std::vector<ServerAddress>& servers,
                             const std::vector<ServerAddress>* fallback_servers) {
  // key -> (address, fallback?)
  std::map<std::string, std::pair<const ServerAddress*, bool>> wanted;
  if (fallback_servers != nullptr) {
    for (const ServerAddress& address : *fallback_servers) {
      wanted[address.to_string()] = {&address, true};
    }
  }
  for (const ServerAddress& address : servers)
    wanted[address.to_string()] = {&address, false};

  // Left the list, or moved in or out of the subset: drain (finish what is
  // in flight, take nothing new); a moved server gets a fresh entry below.
  for (auto entry = current_servers_.begin(); entry != current_servers_.end();) {
    ServerEntry& server = servers_.at(entry->second);
    const auto found = wanted.find(entry->first);
    if (found != wanted.end() && found->second.second == server.fallback) {
      ++entry;
      continue;
    }
    server.removed = true;
    for (uint64_t id : server.connection_ids) {
      ClientConnection* connection = find_connection(id);
      if (connection == nullptr)
        continue;
      if (connection->state == ClientConnection::State::kReady) {
        remove_ready(*connection);
        connection->state = ClientConnection::State::kDraining;
      } else if (connection->state == ClientConnection::State::kConnecting) {
        --connecting_[connection->fallback ? 1 : 0];
        unwatch(*connection);
        forget_connection(*connection, /*failed=*/false);
      }
    }
    // The entry stays (by id) while its connections drain; maintain() drops
    // it after. The address is free for a fresh entry.
    entry = current_servers_.erase(entry);
  }
  // Joined (or moved): a fresh entry, connected by maintain().
  fallback_servers_ = 0;
  for (const auto& [key, wanted_server] : wanted) {
    const auto [address, fallback] = wanted_server;
    if (fallback)
      ++fallback_servers_;
    if (current_servers_.contains(key))
      continue;
    ServerEntry server;
    server.id = next_server_id_++;
    server.address = *address;
    server.fallback = fallback;
    // Naming sources deliver numeric addresses (ServerAddress).
    to_socket_address(address->ip, address->port, server.socket_address,
                      server.socket_address_length);
    const auto slots = static_cast<size_t>(group_.options.connections_per_server);
    server.connection_ids.assign(slots, 0);
    server.retry_at.assign(slots, Clock::time_point::min());
    current_servers_.emplace(key, server.id);
    servers_.emplace(server.id, std::move(server));
  }
  if (fallback_servers_ == 0 && fallback_active_)
    fallback_active_ = false;
  maintain(Clock::now());  // Connect at once, before any call is placed.
}

ClientConnection* SendThread::find_connection(uint64_t connection_id) const {
  if (connection_id == 0)
    return nullptr;
  const auto found = connections_.find(connection_id);
  return found == connections_.end() ? nullptr : found->second.get();
}

SendThread::ServerEntry* SendThread::find_server(uint64_t server_id) {
  const auto found = servers_.find(server_id);
  return found == servers_.end() ? nullptr : &found->second;
}

void SendThread::shut_down() {
  // The receive thread has stopped: nothing else completes calls now. End
  // every pending call, including those still in the request queue.
  for (uint32_t index = 0; index < group_.table.capacity(); ++index) {
    // Calls still in the request queue were never dispatched: their records'
    // send-thread fields are stale, so ask the table.
    if (std::optional<CallTable::Slot> slot = group_.table.pending_at(index)) {
      if (group_.records[index].generation != slot->generation) {
        group_.records[index].connection_id = 0;
      }
      complete(*slot, ErrorCode::kCanceled, "cancelled: the channel is being destroyed");
    }
  }
  for (auto& [id, connection] : connections_) {
    if (connection->fd >= 0)
      ::close(connection->fd);
    connection->fd = -1;
  }
}

}  // namespace percore::detail
