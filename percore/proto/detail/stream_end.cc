#include <percore/proto/detail/stream_end.h>

namespace percore {

std::string_view stream_end_reason_name(StreamEndReason reason) {
  switch (reason) {
    case StreamEndReason::kClosedByUs:
      return "closed_by_us";
    case StreamEndReason::kClosedByPeer:
      return "closed_by_peer";
    case StreamEndReason::kResetByPeer:
      return "reset_by_peer";
    case StreamEndReason::kConnectionBroken:
      return "connection_broken";
    case StreamEndReason::kIdleTimeout:
      return "idle_timeout";
    case StreamEndReason::kNotAccepted:
      return "not_accepted";
    case StreamEndReason::kMessageTooLarge:
      return "message_too_large";
  }
  return "unknown";
}

bool StreamEnd::end(StreamEndReason reason) {
  uint8_t open = 0;
  return reason_.compare_exchange_strong(open, static_cast<uint8_t>(reason),
                                         std::memory_order_acq_rel, std::memory_order_acquire);
}

std::optional<StreamEndReason> StreamEnd::reason() const {
  const uint8_t value = reason_.load(std::memory_order_acquire);
  if (value == 0)
    return std::nullopt;
  return static_cast<StreamEndReason>(value);
}

}  // namespace percore
