#include "server_io/detail/server_core.h"

#include "server_io/detail/worker_pool.h"

namespace percore::detail {

ServerCore::ServerCore(ServerOptions server_options) : options(std::move(server_options)) {}

ServerCore::~ServerCore() = default;

void ServerCore::count_rejected(DecodeStatus status) {
  const size_t index = static_cast<size_t>(status);
  if (index < rejected_frames.size()) {
    rejected_frames[index].fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace percore::detail
