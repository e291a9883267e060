#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include <percore/client_proxy/detail/event_loop.h>
#include <percore/client_proxy/detail/loop_owned.h>
#include <percore/client_proxy/detail/route_counters.h>
#include <percore/client_proxy/detail/tls_session.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/gather_buffer.h>

namespace percore::detail {

// One non-blocking TCP connection of a thread group to a server. Its write
// side belongs to the send thread, its read side to the receive thread; the
// send thread alone opens and closes the descriptor, and frees the object only
// after the receive thread has let go of it (so a reused descriptor number can
// never get a write meant for this dead connection).
//
// Fields are grouped by owner, and each thread's group is reached only
// through an accessor that checks the calling thread: immutable (any
// thread), `outstanding` and `reads` (atomics), send_side() (the send thread),
// receive_side() (the receive thread, between adoption and release).
class ClientConnection {
 public:
  using Clock = std::chrono::steady_clock;

  // The send side's state machine (ConnectionPool::transition changes it).
  enum class State {
    kIdle,        // Created; no connect() yet.
    kConnecting,  // connect() in progress; EPOLLOUT on the send loop.
    kReady,       // Takes calls; its read side is the receive thread's.
    kEjected,     // Like kReady, but its server is ejected (outlier
                  // detection): no new calls unless no server in rotation
                  // can take them.
    kDraining,    // Its server left the list: no new calls, closes when idle.
    kReleasing,   // Failed or drained; waiting for the receive side to let go.
    kClosed,      // Descriptor closed; about to be freed.
  };

  struct SendSide {
    int fd = -1;  // Opened and closed by the send thread alone.
    State state = State::kIdle;
    Clock::time_point connect_deadline;
    GatherBuffer writing;       // Being written; epoll finishes partial writes.
    GatherBuffer pending;       // Frames queued behind it, in order.
    uint64_t bytes_queued = 0;  // Offsets in this connection's byte stream.
    uint64_t bytes_written = 0;
    bool waiting_writable = false;  // EPOLLOUT armed for a partial write.
    bool dirty = false;             // On the send thread's flush list.
    int ready_index = -1;           // Position in its pool's ready or ejected list, or -1.
    std::string failure_reason;     // Why the send side released it.
    bool found_dead = false;        // Released because the liveness check failed.
    bool tls_failed = false;        // Released because its TLS session failed.
    // Liveness (ConnectionPool::check_liveness): the receive side's `reads`
    // when last looked at; since when calls have waited with no byte back
    // (min: none); when the health check went out (min: none).
    uint64_t reads_seen = 0;
    uint64_t reads_at_last_error = 0;
    Clock::time_point silent_since = Clock::time_point::min();
    Clock::time_point probe_sent_at = Clock::time_point::min();
  };

  struct ReceiveSide {
    explicit ReceiveSide(size_t max_body_bytes) : decoder(decoder_options(max_body_bytes)) {}
    int fd = -1;  // The receive thread's copy, given with the adoption.
    FrameDecoder decoder;
    Frame frame;
    StreamFrame stream_frame;

   private:
    static FrameDecoderOptions decoder_options(size_t max_body_bytes) {
      FrameDecoderOptions options{max_body_bytes};
      options.accept_stream_frames = true;  // Streams of this group's calls.
      return options;
    }
  };

  ClientConnection(const EventLoop& send_loop, const EventLoop& receive_loop,
                   uint64_t connection_id, uint64_t owning_server_id, bool is_fallback,
                   std::string remote, size_t max_body_bytes, RouteCounters& route_counters,
                   std::unique_ptr<TlsSession> tls_session = nullptr)
      : id(connection_id),
        server_id(owning_server_id),
        fallback(is_fallback),
        remote_side(std::move(remote)),
        counters(route_counters),
        tls(std::move(tls_session)),
        send_loop_(send_loop),
        receive_loop_(receive_loop),
        receive_(max_body_bytes) {}
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;

  // --- Immutable: any thread. ---
  const uint64_t id;         // Never reused within a group.
  const uint64_t server_id;  // The server entry it belongs to.
  // To a server outside the group's subset, used only while the whole subset
  // is down.
  const bool fallback;
  const std::string remote_side;  // "ip:port"
  RouteCounters& counters;        // Its Channel's, in this group.
  // ChannelOptions::tls: the connection's TLS session (null: clear text).
  // Then send_side().pending holds plaintext and writing ciphertext, and
  // bytes_written counts plaintext handed to TLS (a call whose bytes are
  // encrypted may have reached the server: it is never sent again as
  // unsent). Its methods lock; the send and receive sides call them.
  const std::unique_ptr<TlsSession> tls;

  // Calls queued on it and not completed: the send thread adds, whoever
  // completes a call subtracts. The balancer reads it.
  std::atomic<int> outstanding{0};
  // Successful reads: the receive thread adds (it alone writes), the send
  // thread compares to find silence (liveness, outlier detection).
  std::atomic<uint64_t> reads{0};

  SendSide& send_side() { return send_.get(send_loop_); }
  ReceiveSide& receive_side() { return receive_.get(receive_loop_); }

 private:
  const EventLoop& send_loop_;
  const EventLoop& receive_loop_;
  LoopOwned<SendSide> send_;
  LoopOwned<ReceiveSide> receive_;
};

}  // namespace percore::detail
