#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "client_proxy/detail/call_table.h"
#include "client_proxy/detail/client_connection.h"
#include "client_proxy/detail/connection_picker.h"
#include "client_proxy/detail/group_state.h"

namespace percore::detail {

// The send thread of one group. It drains the request queue in batches,
// picks a connection per call, appends the call's frame to that connection's
// buffer and writes each connection's batch with one sendmsg; a partial write
// is finished when epoll reports the socket writable. It alone opens and
// closes sockets (connect, back-off, reconnect, drain) and owns the group's
// timers: call deadlines, connect timeouts and back-offs.
//
// Owns: the group's connections and server entries. Threads: run() is the
// thread body; every other method runs on it (checked).
class SendThread {
 public:
  using Clock = std::chrono::steady_clock;

  explicit SendThread(GroupState& group);
  ~SendThread();
  SendThread(const SendThread&) = delete;
  SendThread& operator=(const SendThread&) = delete;

  void run();

 private:
  // One server of the current list, and its connection slots.
  struct ServerEntry {
    uint64_t id = 0;
    ServerAddress address;
    sockaddr_storage socket_address{};
    socklen_t socket_address_length = 0;
    bool removed = false;   // Left the list; its connections drain.
    bool fallback = false;  // Outside the subset: connected only when needed.
    int consecutive_failures = 0;
    // connections_per_server slots: a live connection id, or 0 and the time
    // of the next attempt.
    std::vector<uint64_t> connection_ids;
    std::vector<Clock::time_point> retry_at;
  };

  struct DeadlineEntry {
    Clock::time_point deadline;
    CallTable::Slot slot;
  };

  void assert_in_send_thread() const;

  // --- the loop ---
  bool process_commands();
  bool drain_requests();
  void handle_epoll_event(uint64_t connection_id, uint32_t events);
  void park();
  Clock::time_point next_wake_up() const;

  // --- calls ---
  void dispatch(CallTable::Slot slot);
  void resend(CallTable::Slot slot, uint64_t avoid_server);
  void place(CallTable::Slot slot, CallRecord& record);
  // Queues the call on a ready connection of `tier` (0: the subset, 1: the
  // fallback servers), or parks it until one of that tier connects. False if
  // the tier has neither.
  bool try_place(CallTable::Slot slot, CallRecord& record, int tier);
  void set_fallback_active(bool active);
  void queue_on(ClientConnection& connection, CallTable::Slot slot, CallRecord& record);
  void complete(CallTable::Slot slot, ErrorCode code, std::string text);
  void retry_waiting_calls();
  void fire_deadlines(Clock::time_point now);
  void compact_deadlines();

  // --- connections ---
  void flush_dirty();
  void flush(ClientConnection& connection);
  void watch(ClientConnection& connection, uint32_t events);
  void unwatch(ClientConnection& connection);
  void connect(ServerEntry& server, size_t slot_index);
  void on_connected(ClientConnection& connection);
  void on_connect_failed(ClientConnection& connection, const std::string& reason);
  void fail_connection(ClientConnection& connection, const std::string& reason);
  void on_released(uint64_t connection_id, const std::string& reason);
  void forget_connection(ClientConnection& connection, bool failed);
  void add_ready(ClientConnection& connection);
  void remove_ready(ClientConnection& connection);
  void maintain(Clock::time_point now);
  void set_servers(const std::vector<ServerAddress>& servers,
                   const std::vector<ServerAddress>* fallback_servers);
  std::chrono::milliseconds backoff(int failures);
  ClientConnection* find_connection(uint64_t connection_id) const;
  ServerEntry* find_server(uint64_t server_id);

  void shut_down();

  GroupState& group_;
  int epoll_fd_ = -1;
  bool running_ = true;
  std::thread::id thread_id_;

  std::unordered_map<uint64_t, std::unique_ptr<ClientConnection>> connections_;
  // Ready connections and connections in kConnecting, by tier (0: the
  // group's subset of servers, 1: fallback servers).
  std::vector<ClientConnection*> ready_[2];
  int connecting_[2] = {0, 0};
  int fallback_servers_ = 0;  // Entries outside the subset.
  bool fallback_active_ = false;
  std::vector<ClientConnection*> dirty_;
  std::map<uint64_t, ServerEntry> servers_;          // By id, removed ones too.
  std::map<std::string, uint64_t> current_servers_;  // "ip:port" -> id, not removed.
  uint64_t next_connection_id_ = 1;
  uint64_t next_server_id_ = 1;
  ConnectionPicker picker_;

  std::vector<CallTable::Slot> waiting_;  // Calls waiting for a connection.
  // Deadlines by timeout length: calls with the same timeout arrive in
  // deadline order, so each queue is FIFO and the earliest is at its front.
  std::map<int64_t, std::deque<DeadlineEntry>> deadlines_;
  size_t deadline_entries_ = 0;  // Over all the queues.
  Clock::time_point next_maintenance_ = Clock::time_point::min();
  std::vector<CallTable::Slot> request_batch_;
};

}  // namespace percore::detail
