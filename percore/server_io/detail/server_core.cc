#include <percore/server_io/detail/server_core.h>

#include <algorithm>

#include <percore/server_io/detail/worker_pool.h>

namespace percore::detail {

ServerCore::ServerCore(ServerOptions server_options) : options(std::move(server_options)) {}

ServerCore::~ServerCore() = default;

bool ServerCore::try_open_connection() {
  if (open_connections.try_enter_below(options.max_connections))
    return true;
  connections_refused.fetch_add(1, std::memory_order_relaxed);
  return false;
}

void ServerCore::count_rejected(DecodeStatus status) {
  const size_t index = static_cast<size_t>(status);
  if (index < rejected_frames.size()) {
    rejected_frames[index].fetch_add(1, std::memory_order_relaxed);
  }
}

void ServerCore::count_close(CloseReason reason) {
  connections_closed.fetch_add(1, std::memory_order_relaxed);
  closes_by_reason[static_cast<size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

std::chrono::milliseconds ServerCore::sweep_interval() const {
  int shortest = options.close_linger_ms;
  for (const int timeout : {options.idle_timeout_ms, options.partial_frame_timeout_ms}) {
    if (timeout > 0)
      shortest = std::min(shortest, timeout);
  }
  return std::chrono::milliseconds(std::clamp(shortest / 4, 10, 1000));
}

}  // namespace percore::detail
