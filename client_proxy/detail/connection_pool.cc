#include "client_proxy/detail/connection_pool.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/net_address.h"

namespace percore::detail {

void ConnectionRegistry::add(ConnectionPool& pool, ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  entries_[connection.id] = Entry{&pool, &connection};
}

void ConnectionRegistry::remove(uint64_t connection_id) {
  loop_.assert_in_loop_thread();
  entries_.erase(connection_id);
}

ConnectionRegistry::Entry ConnectionRegistry::find(uint64_t connection_id) const {
  loop_.assert_in_loop_thread();
  if (connection_id == 0)
    return Entry{};
  const auto found = entries_.find(connection_id);
  return found == entries_.end() ? Entry{} : found->second;
}

ConnectionPool::ConnectionPool(EventLoop& send_loop, const EventLoop& receive_loop,
                               ChannelOptions options, ConnectionRegistry& registry,
                               Listener& listener, GroupCounters& counters, uint64_t seed)
    : loop_(send_loop),
      receive_loop_(receive_loop),
      options_(std::move(options)),
      registry_(registry),
      listener_(listener),
      counters_(counters),
      picker_(options_.load_balancer, seed) {}

ConnectionPool::~ConnectionPool() {
  loop_.assert_in_loop_thread();
  for (auto& [id, connection] : connections_) {
    ClientConnection::SendSide& side = connection->send_side();
    if (side.fd >= 0)
      ::close(side.fd);
    registry_.remove(id);
  }
}

void ConnectionPool::transition(ClientConnection& connection, State next) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  const int tier = connection.fallback ? 1 : 0;
  // Leave the old state.
  switch (side.state) {
    case State::kConnecting:
      --connecting_[tier];
      loop_.unwatch(side.fd);  // The connect watch; harmless if none.
      break;
    case State::kReady: {
      std::vector<ClientConnection*>& ready = ready_[tier];
      ClientConnection* last = ready.back();
      ready[side.ready_index] = last;
      last->send_side().ready_index = side.ready_index;
      ready.pop_back();
      side.ready_index = -1;
      break;
    }
    default:
      break;
  }
  if (side.waiting_writable && (next == State::kReleasing || next == State::kClosed)) {
    side.waiting_writable = false;
    loop_.unwatch(side.fd);
  }
  side.state = next;
  // Enter the new one.
  switch (next) {
    case State::kConnecting:
      ++connecting_[tier];
      break;
    case State::kReady:
      side.ready_index = static_cast<int>(ready_[tier].size());
      ready_[tier].push_back(&connection);
      break;
    default:
      break;
  }
}

ClientConnection* ConnectionPool::pick(uint64_t avoid_server, bool* connecting) {
  loop_.assert_in_loop_thread();
  *connecting = false;
  if (ClientConnection* chosen = pick_in(0, avoid_server))
    return chosen;
  if (connecting_[0] > 0) {
    *connecting = true;  // A connection of the subset is on its way.
    return nullptr;
  }
  // The whole subset is down: any server will do.
  if (fallback_servers_ > 0) {
    if (!fallback_active_)
      set_fallback_active(true);
    if (ClientConnection* chosen = pick_in(1, avoid_server))
      return chosen;
    *connecting = connecting_[1] > 0;
  }
  return nullptr;
}

ClientConnection* ConnectionPool::pick_in(int tier, uint64_t avoid_server) {
  loop_.assert_in_loop_thread();
  std::vector<ClientConnection*>& ready = ready_[tier];
  const int chosen = picker_.pick(
      ready.size(),
      [&ready](size_t i) {
        return BalancerCandidate{ready[i]->server_id,
                                 ready[i]->outstanding.load(std::memory_order_relaxed)};
      },
      avoid_server);
  return chosen >= 0 ? ready[chosen] : nullptr;
}

void ConnectionPool::set_fallback_active(bool active) {
  loop_.assert_in_loop_thread();
  fallback_active_ = active;
  if (active) {
    // Connect the fallback servers now, so that calls can wait for them.
    for (auto& [id, server] : servers_) {
      if (!server.fallback || server.removed)
        continue;
      for (size_t i = 0; i < server.connection_ids.size(); ++i) {
        if (server.connection_ids[i] == 0)
          connect(server, i);
      }
    }
    return;
  }
  // The subset is back: fallback connections finish their calls and close.
  std::vector<ClientConnection*> fallback;
  for (auto& [id, connection] : connections_) {
    if (connection->fallback)
      fallback.push_back(connection.get());
  }
  for (ClientConnection* connection : fallback)
    drain(*connection);
  schedule(Clock::time_point::min());
}

void ConnectionPool::drain(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  switch (connection.send_side().state) {
    case State::kReady:
      transition(connection, State::kDraining);
      schedule(Clock::time_point::min());
      break;
    case State::kIdle:
    case State::kConnecting:
      forget(connection, /*failed=*/false);
      break;
    default:
      break;
  }
}

void ConnectionPool::connect(ServerEntry& server, size_t slot_index) {
  loop_.assert_in_loop_thread();
  const uint64_t id = registry_.next_id();
  auto owned = std::make_unique<ClientConnection>(loop_, receive_loop_, id, server.id,
                                                  server.fallback, server.address.to_string(),
                                                  options_.max_body_bytes);
  ClientConnection& connection = *owned;
  connections_.emplace(id, std::move(owned));
  registry_.add(*this, connection);
  server.connection_ids[slot_index] = id;
  counters_.connects.fetch_add(1, std::memory_order_relaxed);

  ClientConnection::SendSide& side = connection.send_side();
  side.fd =
      ::socket(server.socket_address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (side.fd < 0) {
    on_connect_failed(connection);
    return;
  }
  const int one = 1;
  ::setsockopt(side.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  side.connect_deadline = Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms);
  schedule(side.connect_deadline);
  transition(connection, State::kConnecting);
  const int result = ::connect(side.fd, reinterpret_cast<sockaddr*>(&server.socket_address),
                               server.socket_address_length);
  if (result == 0) {
    on_connected(connection);
  } else if (errno == EINPROGRESS) {
    loop_.watch(side.fd, EPOLLOUT, connection.id);
  } else {
    on_connect_failed(connection);
  }
}

void ConnectionPool::on_connect_event(ClientConnection& connection, uint32_t events) {
  loop_.assert_in_loop_thread();
  const int fd = connection.send_side().fd;
  int error = 0;
  socklen_t length = sizeof(error);
  ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
  if (error == 0 && (events & EPOLLOUT) != 0 && (events & (EPOLLERR | EPOLLHUP)) == 0) {
    on_connected(connection);
  } else {
    on_connect_failed(connection);
  }
}

void ConnectionPool::on_connected(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  transition(connection, State::kReady);
  if (ServerEntry* server = find_server(connection.server_id))
    server->consecutive_failures = 0;
  listener_.on_connection_ready(connection);
  if (!connection.fallback && fallback_active_)
    set_fallback_active(false);
}

void ConnectionPool::on_connect_failed(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  counters_.connection_failures.fetch_add(1, std::memory_order_relaxed);
  forget(connection, /*failed=*/true);
}

void ConnectionPool::release(ClientConnection& connection, std::string reason) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  if (side.state == State::kReleasing || side.state == State::kClosed)
    return;
  side.failure_reason = std::move(reason);
  transition(connection, State::kReleasing);
  // The receive side answers; the calls on it are settled then.
  listener_.on_connection_releasing(connection);
}

void ConnectionPool::release_silently(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  const State state = connection.send_side().state;
  if (state != State::kReleasing && state != State::kClosed)
    transition(connection, State::kReleasing);
}

void ConnectionPool::forget(ClientConnection& connection, bool failed) {
  loop_.assert_in_loop_thread();
  const uint64_t id = connection.id;
  ServerEntry* server = find_server(connection.server_id);
  transition(connection, State::kClosed);
  ClientConnection::SendSide& side = connection.send_side();
  if (side.fd >= 0)
    ::close(side.fd);
  side.fd = -1;
  registry_.remove(id);
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
    schedule(retry);
  }
}

std::chrono::milliseconds ConnectionPool::backoff(int failures) {
  loop_.assert_in_loop_thread();
  const int64_t initial = std::max(1, options_.backoff_initial_ms);
  const int64_t cap = std::max<int64_t>(initial, options_.backoff_max_ms);
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

ConnectionPool::Clock::time_point ConnectionPool::maintain(Clock::time_point now) {
  loop_.assert_in_loop_thread();
  next_maintenance_ = Clock::time_point::max();
  // Connect timeouts and drained connections.
  std::vector<ClientConnection*> timed_out;
  std::vector<ClientConnection*> drained;
  for (auto& [id, connection] : connections_) {
    ClientConnection::SendSide& side = connection->send_side();
    if (side.state == State::kConnecting) {
      if (now >= side.connect_deadline) {
        timed_out.push_back(connection.get());
      } else {
        schedule(side.connect_deadline);
      }
    } else if (side.state == State::kDraining) {
      if (connection->outstanding.load(std::memory_order_relaxed) == 0 && side.writing.empty() &&
          side.pending.empty()) {
        drained.push_back(connection.get());
      } else {
        schedule(now + std::chrono::milliseconds(10));
      }
    }
  }
  for (ClientConnection* connection : timed_out)
    on_connect_failed(*connection);
  for (ClientConnection* connection : drained)
    release(*connection, std::string());
  // Reconnects after back-off; servers that left and have no connection left.
  for (auto entry = servers_.begin(); entry != servers_.end();) {
    ServerEntry& server = entry->second;
    bool any_connection = false;
    for (size_t i = 0; i < server.connection_ids.size(); ++i) {
      if (server.connection_ids[i] != 0) {
        any_connection = true;
        continue;
      }
      if (server.removed || shutting_down_ || (server.fallback && !fallback_active_))
        continue;
      if (now >= server.retry_at[i]) {
        connect(server, i);
        any_connection = true;
      } else {
        schedule(server.retry_at[i]);
      }
    }
    if ((server.removed || shutting_down_) && !any_connection) {
      entry = servers_.erase(entry);
    } else {
      ++entry;
    }
  }
  return next_maintenance_;
}

void ConnectionPool::set_servers(const std::vector<ServerAddress>& servers,
                                 const std::vector<ServerAddress>* fallback) {
  loop_.assert_in_loop_thread();
  if (shutting_down_)
    return;
  // key -> (address, fallback?)
  std::map<std::string, std::pair<const ServerAddress*, bool>> wanted;
  if (fallback != nullptr) {
    for (const ServerAddress& address : *fallback)
      wanted[address.to_string()] = {&address, true};
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
      if (ClientConnection* connection = find_connection(id))
        drain(*connection);
    }
    // The entry stays (by id) while its connections drain; maintain() drops
    // it after. The address is free for a fresh entry.
    entry = current_servers_.erase(entry);
  }
  // Joined (or moved): a fresh entry, connected by maintain() below.
  fallback_servers_ = 0;
  for (const auto& [key, wanted_server] : wanted) {
    const auto [address, is_fallback] = wanted_server;
    if (is_fallback)
      ++fallback_servers_;
    if (current_servers_.contains(key))
      continue;
    ServerEntry server;
    server.id = next_server_id_++;
    server.address = *address;
    server.fallback = is_fallback;
    // Naming sources deliver numeric addresses (ServerAddress).
    to_socket_address(address->ip, address->port, server.socket_address,
                      server.socket_address_length);
    const auto slots = static_cast<size_t>(options_.connections_per_server);
    server.connection_ids.assign(slots, 0);
    server.retry_at.assign(slots, Clock::time_point::min());
    current_servers_.emplace(key, server.id);
    servers_.emplace(server.id, std::move(server));
  }
  if (fallback_servers_ == 0 && fallback_active_)
    fallback_active_ = false;
  maintain(Clock::now());  // Connect at once, before any call is placed.
}

void ConnectionPool::shut_down() {
  loop_.assert_in_loop_thread();
  shutting_down_ = true;
  std::vector<ClientConnection*> all;
  for (auto& [id, connection] : connections_)
    all.push_back(connection.get());
  for (ClientConnection* connection : all) {
    const State state = connection->send_side().state;
    if (state == State::kIdle || state == State::kConnecting) {
      forget(*connection, /*failed=*/false);
    } else {
      release(*connection, std::string());
    }
  }
}

ConnectionPool::ServerEntry* ConnectionPool::find_server(uint64_t server_id) {
  loop_.assert_in_loop_thread();
  const auto found = servers_.find(server_id);
  return found == servers_.end() ? nullptr : &found->second;
}

ClientConnection* ConnectionPool::find_connection(uint64_t connection_id) {
  loop_.assert_in_loop_thread();
  if (connection_id == 0)
    return nullptr;
  const auto found = connections_.find(connection_id);
  return found == connections_.end() ? nullptr : found->second.get();
}

}  // namespace percore::detail
