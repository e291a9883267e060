#include <percore/client_proxy/detail/connection_pool.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <percore/base/net_address.h>
#include <percore/proto/detail/assert.h>

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

namespace {

using std::chrono::milliseconds;

int64_t ms_of(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<milliseconds>(duration).count();
}

OutlierDetector::Options outlier_options(const ChannelOptions& options) {
  OutlierDetector::Options outliers;
  outliers.consecutive_errors = options.outlier_consecutive_errors;
  outliers.base_ejection_time_ms = options.outlier_base_ejection_time_ms;
  outliers.max_ejection_time_ms = options.outlier_max_ejection_time_ms;
  outliers.max_ejection_percent = options.outlier_max_ejection_percent;
  return outliers;
}

// A quarter of the keepalive time (25 ms to 1 s): silence is noticed within
// keepalive_time_ms plus this. Without keepalive, once a second (progress
// still ends a server's back-off streak).
std::chrono::steady_clock::duration liveness_interval_of(const ChannelOptions& options) {
  if (options.keepalive_time_ms <= 0)
    return std::chrono::seconds(1);
  return milliseconds(std::clamp(options.keepalive_time_ms / 4, 25, 1000));
}

}  // namespace

ConnectionPool::ConnectionPool(EventLoop& send_loop, const EventLoop& receive_loop,
                               ChannelOptions options, ConnectionRegistry& registry,
                               Listener& listener, RouteCounters& counters,
                               ChannelEventLog& events, uint64_t seed,
                               std::shared_ptr<const TlsContext> tls_context)
    : loop_(send_loop),
      receive_loop_(receive_loop),
      options_(std::move(options)),
      tls_context_(std::move(tls_context)),
      registry_(registry),
      listener_(listener),
      counters_(counters),
      events_(events),
      picker_(options_.load_balancer, seed),
      outliers_(outlier_options(options_)),
      liveness_interval_(liveness_interval_of(options_)) {}

ConnectionPool::~ConnectionPool() {
  loop_.assert_in_loop_thread();
  for (auto& [id, connection] : connections_) {
    ClientConnection::SendSide& side = connection->send_side();
    move_gauge_of(counters_, side.state, -1);
    if (side.fd >= 0)
      ::close(side.fd);
    registry_.remove(id);
  }
  RouteCounters::move(counters_.servers_ejected, -outliers_.ejected());
  RouteCounters::move(counters_.servers, -counters_.servers.load(std::memory_order_relaxed));
}

void ConnectionPool::move_gauge_of(RouteCounters& counters, State state, int delta) {
  switch (state) {
    case State::kConnecting:
      RouteCounters::move(counters.connections_connecting, delta);
      break;
    case State::kReady:
      RouteCounters::move(counters.connections_ready, delta);
      break;
    case State::kEjected:
      RouteCounters::move(counters.connections_ejected, delta);
      break;
    case State::kDraining:
    case State::kReleasing:
      RouteCounters::move(counters.connections_closing, delta);
      break;
    default:
      break;
  }
}

void ConnectionPool::transition(ClientConnection& connection, State next) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  const int tier = connection.fallback ? 1 : 0;
  const auto leave_list = [&side](std::vector<ClientConnection*>& list) {
    ClientConnection* last = list.back();
    list[side.ready_index] = last;
    last->send_side().ready_index = side.ready_index;
    list.pop_back();
    side.ready_index = -1;
  };
  // Leave the old state.
  switch (side.state) {
    case State::kConnecting:
      --connecting_[tier];
      loop_.unwatch(side.fd);  // The connect watch; harmless if none.
      break;
    case State::kReady:
      leave_list(ready_[tier]);
      break;
    case State::kEjected:
      leave_list(ejected_);
      break;
    default:
      break;
  }
  if (side.waiting_writable && (next == State::kReleasing || next == State::kClosed)) {
    side.waiting_writable = false;
    loop_.unwatch(side.fd);
  }
  move_gauge_of(counters_, side.state, -1);
  side.state = next;
  move_gauge_of(counters_, next, +1);
  // Enter the new one.
  switch (next) {
    case State::kConnecting:
      ++connecting_[tier];
      break;
    case State::kReady:
      side.ready_index = static_cast<int>(ready_[tier].size());
      ready_[tier].push_back(&connection);
      break;
    case State::kEjected:
      side.ready_index = static_cast<int>(ejected_.size());
      ejected_.push_back(&connection);
      break;
    default:
      break;
  }
}

ClientConnection* ConnectionPool::pick_slow(uint64_t avoid_server, bool* wait) {
  loop_.assert_in_loop_thread();
  *wait = false;
  if (connecting_[0] > 0) {
    *wait = true;  // A connection of the subset is on its way.
    return nullptr;
  }
  // The whole subset is down: any server will do.
  if (fallback_servers_ > 0) {
    if (!fallback_active_)
      set_fallback_active(true);
    if (ClientConnection* chosen = pick_in(1, avoid_server))
      return chosen;
    if (connecting_[1] > 0) {
      *wait = true;
      return nullptr;
    }
  }
  // No server in rotation can take it: an ejected one is better than none
  // (Envoy's panic routing).
  const int chosen = picker_.pick(
      ejected_.size(),
      [this](size_t i) {
        return BalancerCandidate{ejected_[i]->server_id,
                                 ejected_[i]->outstanding.load(std::memory_order_relaxed)};
      },
      avoid_server);
  return chosen >= 0 ? ejected_[chosen] : nullptr;
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

void ConnectionPool::connect_on_demand() {
  loop_.assert_in_loop_thread();
  on_demand_slots_ = 0;
  for (auto& [id, server] : servers_) {
    for (size_t i = 0; i < server.on_demand.size(); ++i) {
      if (!server.on_demand[i])
        continue;
      server.on_demand[i] = false;
      if (server.connection_ids[i] == 0 && !server.removed && !shutting_down_ &&
          (!server.fallback || fallback_active_)) {
        connect(server, i);
      }
    }
  }
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
    case State::kEjected:
      transition(connection, State::kDraining);
      schedule(Clock::time_point::min());
      break;
    case State::kIdle:
    case State::kConnecting:
      forget(connection, Reconnect::kNow);
      break;
    default:
      break;
  }
}

void ConnectionPool::connect(ServerEntry& server, size_t slot_index) {
  loop_.assert_in_loop_thread();
  const uint64_t id = registry_.next_id();
  std::unique_ptr<TlsSession> tls;
  std::string tls_error;
  if (tls_context_ != nullptr)
    tls = TlsSession::create(*tls_context_, server.key, &tls_error);
  auto owned = std::make_unique<ClientConnection>(loop_, receive_loop_, id, server.id,
                                                  server.fallback, server.key,
                                                  options_.max_body_bytes, counters_,
                                                  std::move(tls));
  ClientConnection& connection = *owned;
  connections_.emplace(id, std::move(owned));
  registry_.add(*this, connection);
  server.connection_ids[slot_index] = id;
  RouteCounters::bump(counters_.connects);

  ClientConnection::SendSide& side = connection.send_side();
  if (tls_context_ != nullptr && connection.tls == nullptr) {
    on_connect_failed(connection, tls_error);
    return;
  }
  side.fd =
      ::socket(server.socket_address.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (side.fd < 0) {
    on_connect_failed(connection, std::string("socket() failed: ") + std::strerror(errno));
    return;
  }
  const int one = 1;
  ::setsockopt(side.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  side.connect_deadline = Clock::now() + milliseconds(options_.connect_timeout_ms);
  schedule(side.connect_deadline);
  transition(connection, State::kConnecting);
  const int result = ::connect(side.fd, reinterpret_cast<sockaddr*>(&server.socket_address),
                               server.socket_address_length);
  if (result == 0) {
    on_connected(connection);
  } else if (errno == EINPROGRESS) {
    loop_.watch(side.fd, EPOLLOUT, connection.id);
  } else {
    on_connect_failed(connection, std::strerror(errno));
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
    on_connect_failed(connection, error != 0 ? std::strerror(error)
                                             : "the connection was closed while connecting");
  }
}

void ConnectionPool::on_connected(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ServerEntry* server = find_server(connection.server_id);
  const bool in_rotation =
      server == nullptr || server->health.state == OutlierDetector::ServerHealth::State::kInRotation;
  transition(connection, in_rotation ? State::kReady : State::kEjected);
  if (server != nullptr)
    server->stopping = false;  // Reconnected: it may take calls again.
  // The credential goes first; calls placed from now on follow it.
  if (options_.authenticator != nullptr)
    listener_.send_health_probe(connection, /*hello=*/true);
  else if (connection.tls != nullptr)
    listener_.start_tls(connection);  // The ClientHello goes now, calls or not.
  listener_.on_connection_ready(connection);
  if (server != nullptr && server->health.state == OutlierDetector::ServerHealth::State::kProbing &&
      server->probe_connection == 0) {
    server->probe_connection = connection.id;
    probe(connection, Clock::now());
  }
  if (in_rotation && !connection.fallback && fallback_active_)
    set_fallback_active(false);
}

void ConnectionPool::on_connect_failed(ClientConnection& connection, const std::string& reason) {
  loop_.assert_in_loop_thread();
  RouteCounters::bump(counters_.connect_failures);
  const std::string remote = connection.remote_side;
  ServerEntry* server = find_server(connection.server_id);
  const Clock::duration delay = [&] {
    forget(connection, Reconnect::kAfterBackoff);  // `connection` is gone from here on.
    if (server == nullptr || server->retry_at.empty())
      return Clock::duration::zero();
    return *std::min_element(server->retry_at.begin(), server->retry_at.end()) - Clock::now();
  }();
  events_.failure(remote, LogLevel::kWarning, [&] {
    return "connect to " + remote + " failed: " + reason + "; next attempt in " +
           std::to_string(std::max<int64_t>(0, ms_of(delay))) + " ms";
  });
  if (server != nullptr && server->health.state == OutlierDetector::ServerHealth::State::kProbing)
    probe_failed(*server, "its health check could not connect: " + reason);
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

void ConnectionPool::on_let_go(ClientConnection& connection, LetGo how, bool had_calls,
                               const std::string& why) {
  loop_.assert_in_loop_thread();
  ServerEntry* server = find_server(connection.server_id);
  const ClientConnection::SendSide& side = connection.send_side();
  const bool answered = connection.reads.load(std::memory_order_relaxed) > 0;
  const bool stopping = server != nullptr && server->stopping;
  Reconnect reconnect;
  if (how == LetGo::kUnauthorized || how == LetGo::kTlsFailed) {
    // Its credential or its TLS handshake was refused: a fault of
    // configuration, not of the server's health (no outlier ejection),
    // retried only after back-off.
    refusal_ = {how == LetGo::kTlsFailed ? ErrorCode::kTls : ErrorCode::kUnauthorized, why};
    events_.failure(connection.remote_side, LogLevel::kWarning,
                    [&] { return "connection to " + connection.remote_side + ": " + why; });
    reconnect = Reconnect::kAfterBackoff;
  } else if (how == LetGo::kAsked && why.empty()) {
    // Drained (its server left, answered 2003, or is a fallback no longer
    // needed) or shut down.
    reconnect = stopping ? Reconnect::kAfterBackoffCounted : Reconnect::kNow;
  } else if (how == LetGo::kEndOfStream && !had_calls) {
    // The server closed a connection that owed nothing (an idle close): not
    // a failure; the next call that needs it reconnects.
    RouteCounters::bump(counters_.clean_closes);
    if (server != nullptr && answered && !stopping)
      server->consecutive_failures = 0;
    reconnect = stopping ? Reconnect::kAfterBackoffCounted : Reconnect::kOnDemand;
  } else {
    if (!side.found_dead)
      RouteCounters::bump(counters_.connections_broken);
    const std::string remote = connection.remote_side;
    events_.failure(remote, had_calls || side.found_dead ? LogLevel::kWarning : LogLevel::kInfo,
                    [&] {
                      return "connection to " + remote +
                             (side.found_dead ? " is dead: "
                              : had_calls     ? " broke with calls on it: "
                                              : " closed: ") +
                             why;
                    });
    if (had_calls || side.found_dead)
      record_error(connection, side.found_dead ? "its connection was found dead" : "its connection broke with calls on it");
    // One that had answered worked: reconnect at once (calls wait for it).
    // One that never answered, or went silent, waits for its back-off.
    if (server != nullptr && answered && !side.found_dead)
      server->consecutive_failures = 0;
    reconnect = answered && !side.found_dead && !stopping ? Reconnect::kNow
                                                           : Reconnect::kAfterBackoff;
  }
  forget(connection, reconnect);  // `connection` is gone from here on.
  if (reconnect == Reconnect::kNow && server != nullptr) {
    // Connect now, not at the next maintenance: calls sent again right after
    // this can then wait for it.
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < server->connection_ids.size(); ++i) {
      if (server->connection_ids[i] == 0 && !server->on_demand[i] && now >= server->retry_at[i] &&
          !server->removed && !shutting_down_ && (!server->fallback || fallback_active_)) {
        connect(*server, i);
      }
    }
  }
}

void ConnectionPool::forget(ClientConnection& connection, Reconnect how) {
  loop_.assert_in_loop_thread();
  const uint64_t id = connection.id;
  ServerEntry* server = find_server(connection.server_id);
  transition(connection, State::kClosed);
  ClientConnection::SendSide& side = connection.send_side();
  if (side.fd >= 0)
    ::close(side.fd);
  side.fd = -1;
  registry_.remove(id);
  listener_.on_connection_freed(connection);
  connections_.erase(id);  // `connection` is gone from here on.
  if (server == nullptr)
    return;
  if (server->probe_connection == id)
    server->probe_connection = 0;
  if (server->removed || shutting_down_ || (server->fallback && !fallback_active_))
    how = Reconnect::kNever;
  else if (server->stopping && (how == Reconnect::kNow || how == Reconnect::kOnDemand))
    how = Reconnect::kAfterBackoffCounted;  // Not again before it has reconnected.
  else if (how == Reconnect::kOnDemand &&
           server->health.state != OutlierDetector::ServerHealth::State::kInRotation)
    how = Reconnect::kNow;  // No call will ask for it: its probe needs it.
  const Clock::time_point now = Clock::now();
  for (size_t i = 0; i < server->connection_ids.size(); ++i) {
    if (server->connection_ids[i] != id)
      continue;
    server->connection_ids[i] = 0;
    switch (how) {
      case Reconnect::kOnDemand:
        server->on_demand[i] = true;
        ++on_demand_slots_;
        break;
      case Reconnect::kAfterBackoff:
      case Reconnect::kAfterBackoffCounted:
        if (how == Reconnect::kAfterBackoff)
          ++server->consecutive_failures;
        server->retry_at[i] = now + backoff(std::max(1, server->consecutive_failures));
        schedule(server->retry_at[i]);
        break;
      case Reconnect::kNow:
      case Reconnect::kNever:
        server->retry_at[i] = now;
        schedule(now);  // Reconnects, or drops a removed entry.
        break;
    }
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
  return milliseconds(std::max<int64_t>(1, delay));
}

ConnectionPool::Clock::time_point ConnectionPool::maintain(Clock::time_point now) {
  loop_.assert_in_loop_thread();
  next_maintenance_ = Clock::time_point::max();
  // Connect timeouts, drained connections, liveness.
  std::vector<ClientConnection*> timed_out;
  std::vector<ClientConnection*> drained;
  std::vector<ClientConnection*> open;
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
        schedule(now + milliseconds(10));
        open.push_back(connection.get());
      }
    } else if (side.state == State::kReady || side.state == State::kEjected) {
      open.push_back(connection.get());
    }
  }
  for (ClientConnection* connection : timed_out) {
    on_connect_failed(*connection,
                      "timed out after " + std::to_string(options_.connect_timeout_ms) + " ms");
  }
  for (ClientConnection* connection : drained)
    release(*connection, std::string());
  // Releasing changes states, never frees: the pointers stay valid.
  for (ClientConnection* connection : open) {
    const State state = connection->send_side().state;
    if (state == State::kReady || state == State::kEjected || state == State::kDraining)
      check_liveness(*connection, now);
  }
  if (!connections_.empty())
    schedule(now + liveness_interval_);
  events_.flush();
  // Probes of ejected servers; reconnects after back-off; servers that left
  // and have no connection left.
  for (auto entry = servers_.begin(); entry != servers_.end();) {
    ServerEntry& server = entry->second;
    if (server.health.state == OutlierDetector::ServerHealth::State::kEjected && !server.removed) {
      if (now >= server.health.ejected_until) {
        start_probe(server, now);
      } else {
        schedule(server.health.ejected_until);
      }
    }
    bool any_connection = false;
    for (size_t i = 0; i < server.connection_ids.size(); ++i) {
      if (server.connection_ids[i] != 0) {
        any_connection = true;
        continue;
      }
      if (server.removed || shutting_down_ || server.on_demand[i] ||
          (server.fallback && !fallback_active_))
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
    if (server.health.state != OutlierDetector::ServerHealth::State::kInRotation)
      RouteCounters::move(counters_.servers_ejected, -1);
    outliers_.forget(server.health);
    for (size_t i = 0; i < server.on_demand.size(); ++i) {
      if (server.on_demand[i]) {
        server.on_demand[i] = false;
        --on_demand_slots_;
      }
    }
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
    server.key = key;
    server.fallback = is_fallback;
    // Naming sources deliver numeric addresses (ServerAddress).
    to_socket_address(address->ip, address->port, server.socket_address,
                      server.socket_address_length);
    const auto slots = static_cast<size_t>(options_.connections_per_server);
    server.connection_ids.assign(slots, 0);
    server.retry_at.assign(slots, Clock::time_point::min());
    server.on_demand.assign(slots, false);
    current_servers_.emplace(key, server.id);
    servers_.emplace(server.id, std::move(server));
  }
  if (fallback_servers_ == 0 && fallback_active_)
    fallback_active_ = false;
  RouteCounters::move(counters_.servers,
                      static_cast<int>(current_servers_.size()) - fallback_servers_ -
                          counters_.servers.load(std::memory_order_relaxed));
  readmit_over_share();
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
      forget(*connection, Reconnect::kNever);
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
