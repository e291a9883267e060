#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/channel_route.h>
#include <percore/client_proxy/detail/client_connection.h>
#include <percore/client_proxy/detail/connection_pool.h>
#include <percore/client_proxy/detail/deadline_queue.h>
#include <percore/client_proxy/detail/group_state.h>
#include <percore/discovery/server_address.h>

namespace percore::detail {

class ReceiveThread;

// The send thread of one group, in parts a reader finds by name:
// - the loop: GroupState::send_loop (EventLoop) runs this thread's turns;
// - intake: drains the request queue in batches (on_turn);
// - placement: picks a connection of the call's Channel (its
//   ConnectionPool), or parks the call until one connects, or ends it 112;
// - writing: appends the call's frame to the connection's buffer and writes
//   each connection's batch with one sendmsg; a partial write is finished
//   when epoll reports the socket writable;
// - the pools: one ConnectionPool per Channel (ChannelRoute) using the group;
// - deadlines: DeadlineQueue (1008);
// - resends: RetryPolicy decides after a broken connection or a 2003.
//
// Owns: the routes' pools (through the routes), the registry, the deadline
// queue, the dirty list. Threads: the post_*() methods from any thread
// (they post to the loop); run() is the thread body; every other method on
// the send thread (checked).
class SendThread : private EventLoop::Owner, private ConnectionPool::Listener {
 public:
  explicit SendThread(GroupState& group);
  ~SendThread() override;
  SendThread(const SendThread&) = delete;
  SendThread& operator=(const SendThread&) = delete;

  void set_receive_thread(ReceiveThread& receive) { receive_ = &receive; }
  void run();

  // --- any thread ---
  // Adopts a Channel's route: its pool is made on the send thread.
  void post_add_route(ChannelRoute& route);
  // The Channel is going: its pending calls end with 125, its connections
  // close; `retired` runs on the send thread once they are all closed.
  void post_remove_route(ChannelRoute& route, std::function<void()> retired);
  // The Channel's servers for this group (and the fallback servers outside
  // the group's subset; null: none).
  void post_servers(ChannelRoute& route, std::shared_ptr<const std::vector<ServerAddress>> servers,
                    std::shared_ptr<const std::vector<ServerAddress>> fallback);
  // Receive thread: it let go of `connection_id` (`how`; `reason`: why,
  // empty when asked).
  void post_released(uint64_t connection_id, ConnectionPool::LetGo how, std::string reason);
  // Receive thread: `slot` was answered 2003 on `connection_id`.
  void post_resend(CallTable::Slot slot, uint64_t connection_id);
  // Receive thread: the health check on `connection_id` was answered.
  void post_probe_answered(uint64_t connection_id);
  // Receive thread: the TLS session of `connection_id` has bytes to send
  // (the handshake's next flight, an answer OpenSSL owes), or finished its
  // handshake (the calls queued behind it can be encrypted now).
  void post_flush(uint64_t connection_id);
  // A stream bound to `connection_id` has frames queued: they are moved to
  // the connection's buffer (or the stream ends, the connection being gone).
  void post_stream_output(uint64_t connection_id, std::shared_ptr<StreamCore> stream);
  // Receive thread: a stream frame of its own to write on `connection_id`
  // (an RST for a stream this side does not know).
  void post_stream_frame(uint64_t connection_id, std::string frame);
  // The carrier of the streams bound to `connection_id` (StreamCarrier::wake
  // posts post_stream_output).
  std::shared_ptr<StreamCarrier> stream_carrier(uint64_t connection_id);
  // The group is being destroyed (the receive thread has stopped): every
  // pending call ends with 125 and the loop stops.
  void post_shutdown();

 private:
  // --- EventLoop::Owner ---
  bool on_turn() override;
  bool has_work() const override;
  void on_event(uint64_t tag, uint32_t events) override;
  EventLoop::Clock::time_point on_timers(EventLoop::Clock::time_point now) override;
  EventLoop::Clock::time_point next_timer() const override;
  bool lends_turns() const override;

  // --- ConnectionPool::Listener ---
  void on_connection_ready(ClientConnection& connection) override;
  void on_connection_releasing(ClientConnection& connection) override;
  void on_maintenance_due(EventLoop::Clock::time_point when) override;
  void send_health_probe(ClientConnection& connection, bool hello) override;
  void start_tls(ClientConnection& connection) override;
  void on_connection_freed(ClientConnection& connection) override;

  // --- intake and placement ---
  bool drain_requests();
  void dispatch(CallTable::Slot slot);
  void place(CallTable::Slot slot, CallRecord& record, CallRecord::SendSide& send);
  void resend(CallTable::Slot slot, uint64_t avoid_server);
  void retry_waiting(ChannelRoute& route);
  void complete(CallTable::Slot slot, ErrorCode code, std::string text);

  // --- streams ---
  void take_stream_output(uint64_t connection_id, const std::shared_ptr<StreamCore>& stream);
  void write_stream_frame(uint64_t connection_id, std::string&& frame);
  // Appends `bytes` to the connection's queue and marks it for the flush.
  void append_to(ClientConnection& connection, GatherBuffer&& bytes);

  // --- writing ---
  void queue_on(ClientConnection& connection, CallRecord& record,
                CallRecord::SendSide& send);
  void flush_dirty();
  void flush(ClientConnection& connection);
  // ChannelOptions::tls: encrypts the queued plaintext into `writing`; false
  // when the session failed (the connection is then released).
  bool encrypt_pending(ClientConnection& connection);

  // --- connections coming back from the receive side ---
  void on_released(uint64_t connection_id, ConnectionPool::LetGo how, const std::string& reason);
  // What settle_calls_on needs of a connection already freed.
  struct GoneConnection {
    uint64_t id;
    uint64_t server_id;
    uint64_t bytes_written;
    std::string remote_side;
  };
  // Every call still pending on `gone`: sent again as RetryPolicy says
  // (never written, or written and max_retry allows), else 1009 now, not at
  // its deadline.
  // `refused` (not kOk): every call ends with it and `why`, none is sent
  // again (the server refused the client's credential).
  void settle_calls_on(const GoneConnection& gone, const std::string& why,
                       ErrorCode refused = ErrorCode::kOk);
  // `slot` failed and RetryPolicy said no: ends it with `code`.
  void fail_attempt(CallTable::Slot slot, ErrorCode code, const std::string& why,
                    const std::string& refusal, const std::string& remote_side);
  void on_resend(CallTable::Slot slot, uint64_t connection_id);

  // --- routes ---
  void add_route(ChannelRoute& route);
  void remove_route(ChannelRoute& route, std::function<void()> retired);
  void retire_if_done(ChannelRoute& route);
  // Ends every pending call (of `route`, or of every route if null) with
  // 125, including those still in the request queue.
  void cancel_calls(const ChannelRoute* route);
  void shut_down();

  GroupState& group_;
  EventLoop& loop_;
  ReceiveThread* receive_ = nullptr;
  ConnectionRegistry registry_;
  DeadlineQueue deadlines_;
  std::vector<ChannelRoute*> routes_;
  // The earliest maintenance any pool asked for: the pools are visited only
  // then, not every turn.
  EventLoop::Clock::time_point pools_due_ = EventLoop::Clock::time_point::max();
  // The next idle check of the group's streams (those with an idle timeout).
  EventLoop::Clock::time_point streams_idle_due_{};
  std::vector<ClientConnection*> dirty_;
  std::vector<CallTable::Slot> request_batch_;
  uint64_t pool_seed_;
  // Open while this object exists: stream carriers post through it.
  const std::shared_ptr<CarrierGate> stream_gate_ = std::make_shared<CarrierGate>();
  // The health check's frame, shared by every connection's buffer.
  const std::shared_ptr<const std::string> health_probe_;
};

}  // namespace percore::detail
