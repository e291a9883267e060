#include "client_proxy/channel.h"

#include <unistd.h>
#include <algorithm>

#include <atomic>
#include <random>
#include <thread>

#include "client_proxy/detail/thread_group.h"
#include "discovery/naming_source.h"
#include "discovery/subsetting.h"

namespace percore {
namespace {

// Each calling thread gets an ordinal once; it picks the same group of every
// Channel (ordinal % groups), so a thread sticks to one group.
std::atomic<uint64_t> next_thread_ordinal{0};

uint64_t this_thread_ordinal() {
  thread_local const uint64_t ordinal = next_thread_ordinal.fetch_add(1, std::memory_order_relaxed);
  return ordinal;
}

ChannelOptions sanitized(ChannelOptions options) {
  if (options.groups <= 0) {
    options.groups = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  options.groups = std::clamp(options.groups, 1, 256);
  options.connections_per_server = std::clamp(options.connections_per_server, 1, 64);
  options.max_inflight_per_group = std::clamp(options.max_inflight_per_group, 1, 1 << 20);
  options.connect_timeout_ms = std::max(1, options.connect_timeout_ms);
  options.backoff_initial_ms = std::max(1, options.backoff_initial_ms);
  options.backoff_max_ms = std::max(options.backoff_initial_ms, options.backoff_max_ms);
  options.max_retry = std::max(0, options.max_retry);
  options.callback_threads = std::clamp(options.callback_threads, 1, 64);
  options.spin_us = std::clamp(options.spin_us, 0, 1000);
  options.subset_size = std::max(0, options.subset_size);
  if (options.client_id < 0) {
    std::random_device random;
    options.client_id = static_cast<int64_t>(
        ((static_cast<uint64_t>(::getpid()) << 20) ^ random()) & 0x7fffffffffffull);
  }
  options.naming_timeout_ms = std::max(1, options.naming_timeout_ms);
  if (options.timeout_ms < 0)
    options.timeout_ms = -1;
  return options;
}

}  // namespace

Channel::Channel() = default;

Channel::~Channel() {
  if (naming_ != nullptr)
    naming_->stop();
  groups_.clear();  // Each group ends its calls and joins its threads.
}

bool Channel::Init(const std::string& target, const ChannelOptions& options, std::string* error) {
  if (!groups_.empty()) {
    if (error != nullptr)
      *error = "channel already initialized";
    return false;
  }
  NamingOptions naming_options;
  naming_options.connect_timeout_ms = options.naming_timeout_ms;
  naming_options.session_timeout_ms = options.zookeeper_session_timeout_ms;
  std::unique_ptr<NamingSource> naming = make_naming_source(target, naming_options, error);
  if (naming == nullptr)
    return false;
  options_ = sanitized(options);
  for (int i = 0; i < options_.groups; ++i) {
    groups_.push_back(std::make_unique<detail::ThreadGroup>(options_, i, this));
  }
  if (!naming->start([this](const std::vector<ServerAddress>& servers) { on_servers(servers); },
                     error)) {
    groups_.clear();
    return false;
  }
  naming_ = std::move(naming);
  return true;
}

void Channel::on_servers(const std::vector<ServerAddress>& servers) {
  auto all = std::make_shared<const std::vector<ServerAddress>>(servers);
  const auto subset_size = static_cast<size_t>(options_.subset_size);
  if (subset_size == 0 || subset_size >= servers.size()) {
    for (auto& group : groups_)
      group->set_servers(all, nullptr);
    return;
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    const uint64_t id = subsetting_id(static_cast<uint64_t>(options_.client_id),
                                      static_cast<int>(groups_.size()), static_cast<int>(g));
    std::vector<ServerAddress> subset = deterministic_subset(servers, id, subset_size);
    std::vector<ServerAddress> others;
    for (const ServerAddress& server : servers) {
      if (std::find(subset.begin(), subset.end(), server) == subset.end()) {
        others.push_back(server);
      }
    }
    groups_[g]->set_servers(std::make_shared<const std::vector<ServerAddress>>(std::move(subset)),
                            std::make_shared<const std::vector<ServerAddress>>(std::move(others)));
  }
}

void Channel::CallMethod(const google::protobuf::MethodDescriptor* method,
                         google::protobuf::RpcController* controller,
                         const google::protobuf::Message* request,
                         google::protobuf::Message* response, google::protobuf::Closure* done) {
  auto* percore_controller = static_cast<Controller*>(controller);
  if (groups_.empty()) {
    // Not initialized: no group to fail through, so fail here.
    percore_controller->SetFailed("channel is not initialized");
    if (done != nullptr)
      done->Run();
    return;
  }
  // A group's own thread (a callback making its next call) stays in it.
  int group = detail::ThreadGroup::current_group_of(this);
  if (group < 0)
    group = static_cast<int>(this_thread_ordinal() % groups_.size());
  groups_[group]->call(method, percore_controller, request, response, done);
}

uint64_t Channel::calls_in_flight() const {
  uint64_t total = 0;
  for (const auto& group : groups_)
    total += group->calls_in_flight();
  return total;
}

}  // namespace percore
