#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <percore/client_proxy/channel_options.h>
#include <percore/client_proxy/detail/client_connection.h>
#include <percore/client_proxy/detail/connection_picker.h>
#include <percore/client_proxy/detail/event_loop.h>
#include <percore/client_proxy/detail/channel_event_log.h>
#include <percore/client_proxy/detail/outlier_detector.h>
#include <percore/client_proxy/detail/route_counters.h>
#include <percore/discovery/server_address.h>

namespace percore::detail {

class ConnectionPool;

// The connections of every pool of one group, by id: ids are unique in the
// group and serve as the send loop's epoll tags and as the name by which the
// receive thread refers to a connection.
//
// Owns: nothing (the pools own their connections). Threads: the send thread
// only (checked).
class ConnectionRegistry {
 public:
  struct Entry {
    ConnectionPool* pool = nullptr;
    ClientConnection* connection = nullptr;
  };

  explicit ConnectionRegistry(const EventLoop& send_loop) : loop_(send_loop) {}

  uint64_t next_id() {
    loop_.assert_in_loop_thread();
    return next_id_++;
  }
  void add(ConnectionPool& pool, ClientConnection& connection);
  void remove(uint64_t connection_id);
  // Null entry (pool and connection null) if unknown.
  Entry find(uint64_t connection_id) const;
  size_t size() const { return entries_.size(); }

 private:
  const EventLoop& loop_;
  uint64_t next_id_ = 1;  // 0 means "none" in call records.
  std::unordered_map<uint64_t, Entry> entries_;
};

// One Channel's connections in one thread group, and their state machine:
// the servers its naming source lists (with subsetting, also the fallback
// servers outside the group's subset, connected only while the whole subset
// is down), `connections_per_server` connections to each, connects with a
// timeout, reconnects (at once, on demand, or after back-off: see
// Reconnect), draining when a server leaves the list or answers 2003, the
// liveness check of each connection (keepalive) and outlier detection of
// each server. transition() is the only place a connection's state changes;
// it keeps the ready and ejected lists, the connecting counts, the epoll
// watches and the route's gauges right.
//
//   kIdle ─► kConnecting ─► kReady ⇄ kEjected ─► kDraining ─┐
//              │              └────────┴──────────┴──────────┴─► kReleasing ─► kClosed
//              └─ connect failed or timed out ──────────────────────────────► kClosed
//
// In two files: connection_pool.cc (state machine, connects, reconnects,
// server lists) and connection_pool_health.cc (ejection, health checks,
// liveness).
//
// Owns: its server entries and connections (objects and descriptors).
// Threads: the send thread only (checked in every method).
class ConnectionPool {
 public:
  using Clock = std::chrono::steady_clock;

  // What the pool needs from the send thread.
  class Listener {
   public:
    virtual ~Listener() = default;
    // `connection` is ready: hand its read side to the receive thread.
    virtual void on_connection_ready(ClientConnection& connection) = 0;
    // `connection` is being released: the receive side must let go (the
    // send thread then settles its calls and calls on_let_go()).
    virtual void on_connection_releasing(ClientConnection& connection) = 0;
    // maintain() is due at `when`, earlier than the pool said before.
    virtual void on_maintenance_due(Clock::time_point when) = 0;
    // Queue the health check on `connection` and write it; `hello`: the
    // first bytes of a new connection, carrying the client's credential
    // (ChannelOptions::authenticator).
    virtual void send_health_probe(ClientConnection& connection, bool hello) = 0;
    // ChannelOptions::tls without a hello: write the ClientHello now.
    virtual void start_tls(ClientConnection& connection) = 0;
    // `connection` is about to be freed: nothing may keep a pointer to it
    // (a task earlier in the same turn may have queued bytes on it).
    virtual void on_connection_freed(ClientConnection& connection) = 0;
  };

  // How the receive side came to let go of a connection.
  enum class LetGo {
    kAsked,        // The send side released it (drained, failed write, dead, shut down).
    kEndOfStream,  // The server closed it.
    kError,        // A read error, a malformed frame.
    kUnauthorized,  // The server answered the connection's hello 1004.
    kTlsFailed,     // The TLS handshake (or record layer) failed.
  };

  ConnectionPool(EventLoop& send_loop, const EventLoop& receive_loop, ChannelOptions options,
                 ConnectionRegistry& registry, Listener& listener, RouteCounters& counters,
                 ChannelEventLog& events, uint64_t seed,
                 std::shared_ptr<const TlsContext> tls_context = nullptr);
  // Closes the descriptors still open (the receive side has let go of them
  // or never had them).
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // The servers are now `servers` (and, with subsetting, `fallback` outside
  // the subset): new ones are connected at once, those that left drain.
  void set_servers(const std::vector<ServerAddress>& servers,
                   const std::vector<ServerAddress>* fallback);

  // A connection for a call, by the load balancer, avoiding `avoid_server`
  // (0: none) when there is a choice: in rotation, the subset first, then
  // the fallback servers (connected now if needed), then an ejected server.
  // Connections closed cleanly by their server are reconnected now that a
  // call needs them. Null if none can take it: then *wait says whether a
  // connection is on its way (the call should wait for it) or not (every
  // server is in back-off, stopping or gone: fail now).
  ClientConnection* pick(uint64_t avoid_server, bool* wait) {
    loop_.assert_in_loop_thread();
    if (on_demand_slots_ > 0)
      connect_on_demand();
    if (ClientConnection* chosen = pick_in(0, avoid_server)) {
      *wait = false;
      return chosen;
    }
    return pick_slow(avoid_server, wait);
  }
  bool has_servers() const { return !current_servers_.empty(); }

  // Readiness on a connecting connection's descriptor: connected or failed.
  void on_connect_event(ClientConnection& connection, uint32_t events);
  // The send side cannot use `connection` any more (a write failed, or it
  // drained; `reason` empty): no new calls; the receive side is asked to let
  // go.
  void release(ClientConnection& connection, std::string reason);
  // The receive side let go on its own (end of stream, an error): no new
  // calls, nothing to ask of it.
  void release_silently(ClientConnection& connection);
  // The receive side has let go of `connection` (`had_calls`: calls were
  // queued on it; `why`: the failure, empty if none): counts and logs it,
  // feeds outlier detection, closes and frees it, and reconnects its slot
  // (a reconnect due now starts before this returns, so that calls sent
  // again can wait for it). The caller settles the calls on it after.
  void on_let_go(ClientConnection& connection, LetGo how, bool had_calls, const std::string& why);
  // A call queued on `connection` timed out (outlier detection).
  void on_call_timed_out(ClientConnection& connection);
  // The health check sent on `connection` was answered.
  void on_probe_answered(ClientConnection& connection);
  // `connection`'s server answered 2003 (stopping): no new calls to it
  // until it has reconnected, after back-off; `connection` drains.
  void on_server_stopping(ClientConnection& connection);

  // Connect timeouts, reconnects after back-off, drained connections,
  // liveness checks and probes. Returns when it is next due.
  Clock::time_point maintain(Clock::time_point now);
  Clock::time_point next_maintenance() const { return next_maintenance_; }

  // The Channel is going: no reconnects; connecting connections close,
  // the others are released. Empty once every release has come back.
  void shut_down();
  bool empty() const { return connections_.empty(); }

  const ChannelOptions& options() const { return options_; }
  // Why the last connection was refused for what this client is: its
  // credential (1004) or its TLS handshake (1016); code kOk once a
  // connection has been answered since. Calls that find no connection end
  // so, instead of 112.
  struct Refusal {
    ErrorCode code = ErrorCode::kOk;
    std::string text{};
  };
  const Refusal& refusal() const { return refusal_; }
  size_t ready_count() const { return ready_[0].size() + ready_[1].size(); }
  int connecting_count() const { return connecting_[0] + connecting_[1]; }

 private:
  // When a connection slot is connected again after its connection closed.
  enum class Reconnect {
    kNow,           // Drained, or broke after answering: calls may wait for it.
    kOnDemand,      // Closed by its idle server: when a call needs it.
    kAfterBackoff,  // A failed connect, a break before any answer, dead: one
                    // more failure in a row.
    kAfterBackoffCounted,  // Its server answered 2003 (counted once, then).
    kNever,         // Its server left, or the pool shuts down.
  };

  // One server of the current list, and its connection slots.
  struct ServerEntry {
    uint64_t id = 0;
    ServerAddress address;
    std::string key;  // "ip:port"
    sockaddr_storage socket_address{};
    socklen_t socket_address_length = 0;
    bool removed = false;   // Left the list; its connections drain.
    bool fallback = false;  // Outside the subset: connected only when needed.
    bool stopping = false;  // Answered 2003; cleared when it connects again.
    int consecutive_failures = 0;  // For back-off.
    OutlierDetector::ServerHealth health;
    uint64_t probe_connection = 0;  // kProbing: the connection probed.
    // connections_per_server slots: a live connection id, or 0 and the time
    // of the next attempt (on_demand: when a call needs it).
    std::vector<uint64_t> connection_ids;
    std::vector<Clock::time_point> retry_at;
    std::vector<bool> on_demand;
  };

  using State = ClientConnection::State;

  void transition(ClientConnection& connection, State next);
  static void move_gauge_of(RouteCounters& counters, State state, int delta);
  void connect(ServerEntry& server, size_t slot_index);
  void connect_on_demand();
  void on_connected(ClientConnection& connection);
  void on_connect_failed(ClientConnection& connection, const std::string& reason);
  ClientConnection* pick_in(int tier, uint64_t avoid_server);
  ClientConnection* pick_slow(uint64_t avoid_server, bool* wait);
  void set_fallback_active(bool active);
  void drain(ClientConnection& connection);
  // Closes and frees `connection`; its slot reconnects as `how` says.
  void forget(ClientConnection& connection, Reconnect how);
  std::chrono::milliseconds backoff(int failures);
  ServerEntry* find_server(uint64_t server_id);
  ClientConnection* find_connection(uint64_t connection_id);
  // --- health ---
  void check_liveness(ClientConnection& connection, Clock::time_point now);
  void probe(ClientConnection& connection, Clock::time_point now);
  // `connection` answered: its server, if probing on it, is readmitted.
  void readmit_if_probed(ClientConnection& connection, Clock::time_point now);
  // An error of `connection`'s server (outlier detection; `last` says what,
  // for the ejection's log line).
  void record_error(ClientConnection& connection, const std::string& last);
  void eject(ServerEntry& server, const std::string& last);
  void readmit(ServerEntry& server, const std::string& why);
  // After a list change: readmits ejected servers past the share.
  void readmit_over_share();
  void start_probe(ServerEntry& server, Clock::time_point now);
  void probe_failed(ServerEntry& server, const std::string& what);
  int servers_in_rotation_count() const;
  void schedule(Clock::time_point when) {
    if (when < next_maintenance_) {
      next_maintenance_ = when;
      listener_.on_maintenance_due(when);
    }
  }

  EventLoop& loop_;
  const EventLoop& receive_loop_;
  const ChannelOptions options_;
  Refusal refusal_;  // refusal().
  // ChannelOptions::tls: made once per Channel, shared by its pools.
  const std::shared_ptr<const TlsContext> tls_context_;
  ConnectionRegistry& registry_;
  Listener& listener_;
  RouteCounters& counters_;
  ChannelEventLog& events_;
  ConnectionPicker picker_;
  OutlierDetector outliers_;
  // How often maintain() looks at each connection's liveness; max: never.
  const Clock::duration liveness_interval_;

  std::unordered_map<uint64_t, std::unique_ptr<ClientConnection>> connections_;
  // Ready connections and counts of connecting ones, by tier (0: the
  // subset, 1: fallback servers); connections of ejected servers.
  std::vector<ClientConnection*> ready_[2];
  std::vector<ClientConnection*> ejected_;
  int connecting_[2] = {0, 0};
  int on_demand_slots_ = 0;  // Slots waiting for a call to reconnect them.
  int fallback_servers_ = 0;  // Entries outside the subset.
  bool fallback_active_ = false;
  bool shutting_down_ = false;
  std::map<uint64_t, ServerEntry> servers_;          // By id, removed ones too.
  std::map<std::string, uint64_t> current_servers_;  // "ip:port" -> id, not removed.
  uint64_t next_server_id_ = 1;
  Clock::time_point next_maintenance_ = Clock::time_point::max();
};

}  // namespace percore::detail
