// ConnectionPool, its server-health part: outlier ejection and readmission
// (policy in OutlierDetector), health checks, and the liveness check that
// finds dead-silent connections. The state machine, connects and reconnects
// are in connection_pool.cc.

#include <algorithm>
#include <string>

#include <percore/client_proxy/detail/connection_pool.h>

namespace percore::detail {
namespace {

using std::chrono::milliseconds;

int64_t ms_of(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<milliseconds>(duration).count();
}

}  // namespace

void ConnectionPool::on_call_timed_out(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  record_error(connection, "a call timed out");
}

void ConnectionPool::on_probe_answered(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  refusal_ = {};  // Any answer but 1004: the credential (and TLS) passed.
  if (side.probe_sent_at == Clock::time_point::min())
    return;
  side.probe_sent_at = Clock::time_point::min();
  side.silent_since = Clock::time_point::min();
  side.reads_seen = connection.reads.load(std::memory_order_relaxed);
  readmit_if_probed(connection, Clock::now());
}

void ConnectionPool::on_server_stopping(ClientConnection& connection) {
  loop_.assert_in_loop_thread();
  ServerEntry* server = find_server(connection.server_id);
  if (server == nullptr || server->stopping)
    return;
  server->stopping = true;
  events_.health(server->key, LogLevel::kInfo,
                 server->key + " is stopping (answered 2003): no calls to it until it has "
                               "reconnected");
  // Counted once, however many connections it has.
  ++server->consecutive_failures;
  for (uint64_t id : server->connection_ids) {
    if (ClientConnection* each = find_connection(id))
      drain(*each);
  }
}

void ConnectionPool::record_error(ClientConnection& connection, const std::string& last) {
  loop_.assert_in_loop_thread();
  if (!outliers_.enabled())
    return;
  ServerEntry* server = find_server(connection.server_id);
  // With subsetting, fallback servers take calls only while the whole subset
  // is down; ejection (and its share) is of the subset.
  if (server == nullptr || server->removed || server->fallback)
    return;
  ClientConnection::SendSide& side = connection.send_side();
  const uint64_t reads = connection.reads.load(std::memory_order_relaxed);
  const bool progress = reads != side.reads_at_last_error;
  side.reads_at_last_error = reads;
  if (outliers_.on_error(server->health, progress, side.found_dead, servers_in_rotation_count(),
                         Clock::now())) {
    eject(*server, last);
  }
}

void ConnectionPool::readmit_over_share() {
  loop_.assert_in_loop_thread();
  // The list shrank: an ejected server may now be the last one, or one too
  // many for the share; the one whose ejection ends first comes back.
  while (outliers_.over_share(servers_in_rotation_count())) {
    ServerEntry* first = nullptr;
    for (auto& [id, server] : servers_) {
      if (!server.removed &&
          server.health.state != OutlierDetector::ServerHealth::State::kInRotation &&
          (first == nullptr || server.health.ejected_until < first->health.ejected_until)) {
        first = &server;
      }
    }
    if (first == nullptr)
      return;
    outliers_.readmit(first->health, Clock::now());
    readmit(*first, "too many of the servers left are out of rotation");
  }
}

int ConnectionPool::servers_in_rotation_count() const {
  return static_cast<int>(current_servers_.size()) - fallback_servers_;
}

void ConnectionPool::eject(ServerEntry& server, const std::string& last) {
  loop_.assert_in_loop_thread();
  RouteCounters::bump(counters_.ejections);
  RouteCounters::move(counters_.servers_ejected, +1);
  for (uint64_t id : server.connection_ids) {
    ClientConnection* connection = find_connection(id);
    if (connection != nullptr && connection->send_side().state == State::kReady)
      transition(*connection, State::kEjected);
  }
  schedule(server.health.ejected_until);
  events_.health(server.key, LogLevel::kWarning,
                 server.key + " ejected for " +
                     std::to_string(ms_of(server.health.last_ejection_time)) + " ms after " +
                     std::to_string(server.health.consecutive_errors_at_ejection) +
                     " errors in a row (last: " + last + "); " +
                     std::to_string(outliers_.ejected()) + " of " +
                     std::to_string(servers_in_rotation_count()) + " servers out of rotation");
}

void ConnectionPool::start_probe(ServerEntry& server, Clock::time_point now) {
  loop_.assert_in_loop_thread();
  if (!outliers_.start_probe(server.health, now))
    return;
  server.probe_connection = 0;
  for (uint64_t id : server.connection_ids) {
    ClientConnection* connection = find_connection(id);
    if (connection == nullptr)
      continue;
    const State state = connection->send_side().state;
    if (state == State::kEjected || state == State::kReady) {
      server.probe_connection = id;
      probe(*connection, now);
      return;
    }
  }
  // No open connection: the probe goes on the next one (on_connected).
  for (size_t i = 0; i < server.connection_ids.size(); ++i) {
    if (server.connection_ids[i] == 0 && now >= server.retry_at[i] && !shutting_down_ &&
        (!server.fallback || fallback_active_)) {
      if (server.on_demand[i]) {
        server.on_demand[i] = false;
        --on_demand_slots_;
      }
      connect(server, i);
      return;
    }
  }
}

void ConnectionPool::probe(ClientConnection& connection, Clock::time_point now) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  if (side.probe_sent_at == Clock::time_point::min()) {
    side.probe_sent_at = now;
    side.reads_seen = connection.reads.load(std::memory_order_relaxed);
    RouteCounters::bump(counters_.probes_sent);
    listener_.send_health_probe(connection, /*hello=*/false);
  }
  schedule(side.probe_sent_at + milliseconds(options_.keepalive_timeout_ms));
}

void ConnectionPool::readmit_if_probed(ClientConnection& connection, Clock::time_point now) {
  loop_.assert_in_loop_thread();
  ServerEntry* server = find_server(connection.server_id);
  if (server != nullptr &&
      server->health.state == OutlierDetector::ServerHealth::State::kProbing &&
      server->probe_connection == connection.id) {
    outliers_.readmit(server->health, now);
    readmit(*server, "it answered its health check");
  }
}

void ConnectionPool::readmit(ServerEntry& server, const std::string& why) {
  loop_.assert_in_loop_thread();
  server.probe_connection = 0;
  RouteCounters::bump(counters_.readmissions);
  RouteCounters::move(counters_.servers_ejected, -1);
  for (uint64_t id : server.connection_ids) {
    ClientConnection* connection = find_connection(id);
    if (connection != nullptr && connection->send_side().state == State::kEjected)
      transition(*connection, State::kReady);
  }
  events_.health(server.key, LogLevel::kInfo, server.key + " readmitted: " + why);
  if (!server.fallback && fallback_active_ && !ready_[0].empty())
    set_fallback_active(false);  // The subset can take calls again.
}

void ConnectionPool::probe_failed(ServerEntry& server, const std::string& what) {
  loop_.assert_in_loop_thread();
  outliers_.probe_failed(server.health, Clock::now());
  server.probe_connection = 0;
  schedule(server.health.ejected_until);
  events_.health(server.key, LogLevel::kWarning,
                 server.key + " stays ejected for " +
                     std::to_string(ms_of(server.health.last_ejection_time)) + " ms: " + what);
}

void ConnectionPool::check_liveness(ClientConnection& connection, Clock::time_point now) {
  loop_.assert_in_loop_thread();
  ClientConnection::SendSide& side = connection.send_side();
  const uint64_t reads = connection.reads.load(std::memory_order_relaxed);
  const bool progressed = reads != side.reads_seen;
  side.reads_seen = reads;
  if (progressed) {
    // It answers: whatever failed before, its next failure starts the
    // back-off from the beginning.
    if (ServerEntry* server = find_server(connection.server_id); server != nullptr && !server->stopping)
      server->consecutive_failures = 0;
    side.silent_since = Clock::time_point::min();
    if (side.probe_sent_at != Clock::time_point::min()) {
      side.probe_sent_at = Clock::time_point::min();
      readmit_if_probed(connection, now);
    }
    return;
  }
  if (side.probe_sent_at != Clock::time_point::min()) {
    const Clock::time_point give_up = side.probe_sent_at + milliseconds(options_.keepalive_timeout_ms);
    if (now < give_up) {
      schedule(give_up);
      return;
    }
    // Dead: calls went out, nothing came back, and the health check went
    // unanswered too.
    side.found_dead = true;
    RouteCounters::bump(counters_.connections_dead);
    const int64_t silent_ms =
        side.silent_since == Clock::time_point::min() ? 0 : ms_of(now - side.silent_since);
    const std::string why = "no byte from " + connection.remote_side + " for " +
                            std::to_string(std::max(silent_ms, ms_of(now - side.probe_sent_at))) +
                            " ms; its health check went unanswered for " +
                            std::to_string(ms_of(now - side.probe_sent_at)) + " ms";
    if (ServerEntry* server = find_server(connection.server_id);
        server != nullptr && server->probe_connection == connection.id &&
        server->health.state == OutlierDetector::ServerHealth::State::kProbing) {
      probe_failed(*server, "its health check went unanswered");
    }
    release(connection, why);
    return;
  }
  if (options_.keepalive_time_ms <= 0)
    return;
  if (connection.outstanding.load(std::memory_order_relaxed) == 0) {
    side.silent_since = Clock::time_point::min();
    return;
  }
  if (side.silent_since == Clock::time_point::min()) {
    side.silent_since = now;
  } else if (now - side.silent_since >= milliseconds(options_.keepalive_time_ms)) {
    probe(connection, now);
  }
}

}  // namespace percore::detail
