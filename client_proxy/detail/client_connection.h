#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "proto/frame_decoder.h"
#include "proto/gather_buffer.h"

namespace percore::detail {

// One non-blocking TCP connection of a thread group to a server. Its write
// side belongs to the send thread, its read side to the receive thread; the
// send thread alone opens and closes the descriptor, and frees the object only
// after the receive thread has let go of it (so a reused descriptor number can
// never get a write meant for this dead connection).
//
// Threads: fields are grouped by owner below; `outstanding` is atomic.
struct ClientConnection {
  enum class State {
    kConnecting,  // connect() in progress; EPOLLOUT on the send epoll.
    kReady,       // Takes calls.
    kDraining,    // Its server left the list: no new calls, closes when idle.
    kReleasing,   // Failed or drained; waiting for the receive side to let go.
  };

  ClientConnection(uint64_t connection_id, uint64_t owning_server_id, bool is_fallback,
                   std::string remote, size_t max_body_bytes)
      : id(connection_id),
        server_id(owning_server_id),
        fallback(is_fallback),
        remote_side(std::move(remote)),
        decoder(FrameDecoderOptions{max_body_bytes}) {}

  const uint64_t id;         // Never reused within a group.
  const uint64_t server_id;  // The server entry it belongs to.
  // To a server outside the group's subset, used only while the whole subset
  // is down.
  const bool fallback;
  const std::string remote_side;  // "ip:port"

  // Calls queued on it and not completed: the send thread adds, whoever
  // completes a call subtracts. The balancer reads it.
  std::atomic<int> outstanding{0};

  // --- Send thread only. ---
  int fd = -1;
  State state = State::kConnecting;
  std::chrono::steady_clock::time_point connect_deadline;
  GatherBuffer writing;       // Being written; epoll finishes partial writes.
  GatherBuffer pending;       // Frames queued behind it, in order.
  uint64_t bytes_queued = 0;  // Offsets in this connection's byte stream.
  uint64_t bytes_written = 0;
  bool waiting_writable = false;  // EPOLLOUT armed for a partial write.
  bool dirty = false;             // On the send thread's flush list.
  int ready_index = -1;           // Position in the ready list, or -1.
  std::string failure_reason;     // Why the send side released it.

  // --- Receive thread only, between adoption and release. ---
  FrameDecoder decoder;
  Frame frame;
};

}  // namespace percore::detail
