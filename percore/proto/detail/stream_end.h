#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

namespace percore {

// Why a stream ended. brpc (src/brpc/stream.cpp, Stream::OnReceived) ends a
// stream on a CLOSE frame without an error and on an RST frame with
// ECONNRESET; a local close sends CLOSE to the peer; the host connection
// failing ends every stream on it. brpc's idle timeout only notifies the
// handler (StreamInputHandler::on_idle_timeout) and ends nothing by itself:
// kIdleTimeout is for a stream layer that ends the stream on it.
enum class StreamEndReason : uint8_t {
  kClosedByUs = 1,    // This side closed it (a CLOSE frame goes to the peer).
  kClosedByPeer,      // A CLOSE frame arrived.
  kResetByPeer,       // An RST frame arrived (the peer did not know the stream).
  kConnectionBroken,  // The connection carrying it failed or closed.
  kIdleTimeout,       // Nothing arrived for the idle timeout.
};

// "closed_by_us", "closed_by_peer", "reset_by_peer", "connection_broken",
// "idle_timeout": for logs and metrics.
std::string_view stream_end_reason_name(StreamEndReason reason);

// The end of one stream, set exactly once: the first end() wins and keeps
// its reason; later ones (a CLOSE crossing ours, the connection failing
// after) are ignored and say so.
//
// Owns: the reason. Threads: any thread, concurrently.
class StreamEnd {
 public:
  // Ends the stream with `reason` if it has not ended; true if this call did.
  bool end(StreamEndReason reason);
  bool ended() const { return reason_.load(std::memory_order_acquire) != 0; }
  // The reason of the first end(), or none while the stream is open.
  std::optional<StreamEndReason> reason() const;

 private:
  std::atomic<uint8_t> reason_{0};  // 0: open.
};

}  // namespace percore
