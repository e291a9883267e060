#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string_view>

#include <percore/proto/stream.h>

namespace percore {

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
