#include <percore/server_io/server_stats.h>

namespace percore {

uint64_t MethodStats::errors() const {
  uint64_t errors = 0;
  for (const auto& [code, count] : answers_by_code) {
    if (code != 0)
      errors += count;
  }
  return errors;
}

double MethodStats::average_latency_us() const {
  return calls == 0 ? 0.0 : static_cast<double>(total_latency_us) / static_cast<double>(calls);
}

const char* close_reason_name(CloseReason reason) {
  switch (reason) {
    case CloseReason::kPeerClosed:
      return "peer closed";
    case CloseReason::kConnectionError:
      return "connection error";
    case CloseReason::kRejectedFrame:
      return "rejected frame";
    case CloseReason::kIdleTimeout:
      return "idle timeout";
    case CloseReason::kUnauthenticated:
      return "unauthenticated";
    case CloseReason::kPartialFrameTimeout:
      return "partial frame timeout";
    case CloseReason::kServerStopped:
      return "server stopped";
    case CloseReason::kTlsFailed:
      return "TLS handshake failed";
    case CloseReason::kClearTextRefused:
      return "clear text refused";
  }
  return "unknown";
}

uint64_t ServerStats::rejected_frames_total() const {
  uint64_t total = 0;
  for (const auto& [status, count] : rejected_frames)
    total += count;
  return total;
}

}  // namespace percore
