#include <percore/client_proxy/client_runtime.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include <percore/client_proxy/detail/thread_group.h>

namespace percore {
namespace {

ClientRuntimeOptions sanitized(ClientRuntimeOptions options) {
  if (options.groups <= 0)
    options.groups = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.groups = std::clamp(options.groups, 1, 256);
  options.max_inflight_per_group = std::clamp(options.max_inflight_per_group, 1, 1 << 20);
  options.callback_threads = std::clamp(options.callback_threads, 1, 64);
  options.spin_us = std::clamp(options.spin_us, 0, 1000);
  return options;
}

// Each calling thread gets an ordinal once; it picks the same group of every
// runtime (ordinal % groups), so a thread sticks to one group.
std::atomic<uint64_t> next_thread_ordinal{0};

uint64_t this_thread_ordinal() {
  thread_local const uint64_t ordinal = next_thread_ordinal.fetch_add(1, std::memory_order_relaxed);
  return ordinal;
}

}  // namespace

ClientRuntime::ClientRuntime(ClientRuntimeOptions options) : options_(sanitized(options)) {
  for (int i = 0; i < options_.groups; ++i)
    groups_.push_back(std::make_unique<detail::ThreadGroup>(options_, i, this));
}

ClientRuntime::~ClientRuntime() = default;

std::shared_ptr<ClientRuntime> ClientRuntime::Default() {
  // Created on first use; Channels hold it, so it outlives every Channel
  // even past the end of main().
  static std::mutex mutex;
  static std::shared_ptr<ClientRuntime> runtime;
  std::lock_guard lock(mutex);
  if (runtime == nullptr)
    runtime = std::make_shared<ClientRuntime>();
  return runtime;
}

int ClientRuntime::group_for_this_thread() const {
  const int own = detail::ThreadGroup::current_group_of(this);
  if (own >= 0)
    return own;
  return static_cast<int>(this_thread_ordinal() % groups_.size());
}

}  // namespace percore
