#include <percore/base/detail/tls_context.h>
#include <percore/client_proxy/channel.h>

#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <random>

#include <percore/base/detail/gate.h>
#include <percore/base/detail/metrics_registry.h>
#include <percore/client_proxy/detail/channel_event_log.h>
#include <percore/client_proxy/detail/channel_route.h>
#include <percore/client_proxy/detail/thread_group.h>
#include <percore/discovery/naming_source.h>
#include <percore/discovery/subsetting.h>
#include <percore/proto/detail/assert.h>

namespace percore {
namespace {

ChannelOptions sanitized(ChannelOptions options) {
  options.connections_per_server = std::clamp(options.connections_per_server, 1, 64);
  options.connect_timeout_ms = std::max(1, options.connect_timeout_ms);
  options.backoff_initial_ms = std::max(1, options.backoff_initial_ms);
  options.backoff_max_ms = std::max(options.backoff_initial_ms, options.backoff_max_ms);
  options.max_retry = std::clamp(options.max_retry, 0, 100);
  options.max_resends = std::clamp(options.max_resends, 0, 100);
  options.retry_budget_percent = std::clamp(options.retry_budget_percent, 0, 1000);
  options.retry_budget_min_per_second = std::clamp(options.retry_budget_min_per_second, 0, 1000000);
  if (options.keepalive_time_ms > 0)
    options.keepalive_time_ms = std::max(100, options.keepalive_time_ms);
  options.keepalive_timeout_ms = std::max(100, options.keepalive_timeout_ms);
  options.outlier_consecutive_errors = std::max(0, options.outlier_consecutive_errors);
  options.outlier_base_ejection_time_ms = std::max(1, options.outlier_base_ejection_time_ms);
  options.outlier_max_ejection_time_ms =
      std::max(options.outlier_base_ejection_time_ms, options.outlier_max_ejection_time_ms);
  options.outlier_max_ejection_percent = std::clamp(options.outlier_max_ejection_percent, 0, 100);
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

// The Channel's counters for a server's /metrics, labelled by target.
void add_channel_metrics(const std::string& target, const ChannelStats& stats,
                         uint64_t in_flight, std::vector<prometheus::MetricFamily>& families) {
  using detail::family;
  using detail::labelled;
  using prometheus::MetricType;
  const ChannelGroupStats& total = stats.total;
  auto calls = family("percore_client_calls_total",
                      "Calls ended by the process's Channels, by target and error code (0: OK).",
                      MetricType::Counter);
  for (const auto& [code, count] : total.ends_by_code) {
    auto metric = labelled({{"target", target}, {"code", std::to_string(code)}});
    metric.counter.value = static_cast<double>(count);
    calls.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(calls));
  auto one = [&](std::string name, std::string help, MetricType type, double value) {
    auto result = family(std::move(name), std::move(help), type);
    auto metric = labelled({{"target", target}});
    if (type == MetricType::Gauge) {
      metric.gauge.value = value;
    } else {
      metric.counter.value = value;
    }
    result.metric.push_back(std::move(metric));
    families.push_back(std::move(result));
  };
  one("percore_client_calls_in_flight", "Calls started and not yet ended.", MetricType::Gauge,
      static_cast<double>(in_flight));
  one("percore_client_retries_total", "Calls sent again after a broken connection or a 2003.",
      MetricType::Counter, static_cast<double>(total.retries));
  one("percore_client_retries_refused_total",
      "Sends again refused by the retry budget or the call's limits.", MetricType::Counter,
      static_cast<double>(total.retries_refused_by_budget + total.retries_refused_by_limit));
  one("percore_client_ejections_total", "Servers taken out of rotation by outlier detection.",
      MetricType::Counter, static_cast<double>(total.ejections));
  one("percore_client_readmissions_total", "Ejected servers taken back.", MetricType::Counter,
      static_cast<double>(total.readmissions));
  one("percore_client_connects_total", "Connection attempts.", MetricType::Counter,
      static_cast<double>(total.connects));
  one("percore_client_connect_failures_total", "Connection attempts refused or timed out.",
      MetricType::Counter, static_cast<double>(total.connect_failures));
  one("percore_client_connections_broken_total", "Connections that broke with calls on them.",
      MetricType::Counter, static_cast<double>(total.connections_broken + total.connections_dead));
  one("percore_client_servers", "Servers in the current list (summed over thread groups).",
      MetricType::Gauge, static_cast<double>(total.servers));
  one("percore_client_servers_ejected", "Servers out of rotation now.", MetricType::Gauge,
      static_cast<double>(total.servers_ejected));
  auto connections =
      family("percore_client_connections", "Connections now, by state.", MetricType::Gauge);
  for (const auto& [state, count] :
       {std::pair<const char*, int>{"ready", total.connections_ready},
        {"connecting", total.connections_connecting},
        {"ejected", total.connections_ejected},
        {"closing", total.connections_closing}}) {
    auto metric = labelled({{"target", target}, {"state", state}});
    metric.gauge.value = count;
    connections.metric.push_back(std::move(metric));
  }
  families.push_back(std::move(connections));
}

}  // namespace

Channel::Channel() = default;

Channel::~Channel() {
  // From one of the runtime's own threads the wait below could be for the
  // very thread that waits (a queued `done`, the send thread's cancelling):
  // a deadlock, so refuse it loudly.
  PERCORE_ASSERT(runtime_ == nullptr ||
                 detail::ThreadGroup::current_group_of(runtime_.get()) < 0);
  if (metrics_handle_ != 0)
    detail::MetricsRegistry::process().remove(metrics_handle_);  // Waits for a scrape.
  if (naming_ != nullptr)
    naming_->stop();
  shut_down_routes();
}

bool Channel::Init(const std::string& target, const ChannelOptions& options, std::string* error) {
  if (!routes_.empty()) {
    if (error != nullptr)
      *error = "channel already initialized";
    return false;
  }
  std::shared_ptr<const detail::TlsContext> tls_context;
  if (options.tls.has_value()) {
    std::string why;
    tls_context = detail::TlsContext::create(*options.tls, detail::TlsContext::Side::kClient, &why);
    if (tls_context == nullptr) {
      if (error != nullptr)
        *error = "TLS: " + why;
      return false;
    }
  }
  NamingOptions naming_options;
  naming_options.connect_timeout_ms = options.naming_timeout_ms;
  naming_options.session_timeout_ms = options.zookeeper_session_timeout_ms;
  std::unique_ptr<NamingSource> naming = make_naming_source(target, naming_options, error);
  if (naming == nullptr)
    return false;
  options_ = sanitized(options);
  if (options_.private_groups) {
    runtime_ = std::make_shared<ClientRuntime>(*options_.private_groups);
  } else {
    runtime_ = options_.runtime != nullptr ? options_.runtime : ClientRuntime::Default();
  }
  events_ = std::make_unique<detail::ChannelEventLog>(target);
  for (int i = 0; i < runtime_->group_count(); ++i) {
    routes_.push_back(std::make_unique<detail::ChannelRoute>(options_, *events_, tls_context));
    runtime_->group(i).add_route(*routes_.back());
  }
  if (!naming->start([this](const std::vector<ServerAddress>& servers) { on_servers(servers); },
                     error)) {
    shut_down_routes();
    runtime_.reset();
    return false;
  }
  naming_ = std::move(naming);
  metrics_handle_ = detail::MetricsRegistry::process().add(
      [this, target](std::vector<prometheus::MetricFamily>& families) {
        add_channel_metrics(target, stats(), calls_in_flight(), families);
      });
  return true;
}

void Channel::shut_down_routes() {
  if (routes_.empty())
    return;
  for (auto& route : routes_)
    route->closing.store(true, std::memory_order_release);
  // Each group's send thread ends the routes' pending calls with 125, closes
  // their connections and then says so.
  Gate retiring;
  for (size_t i = 0; i < routes_.size(); ++i) {
    retiring.enter();
    runtime_->group(static_cast<int>(i)).remove_route(*routes_[i], [&retiring] { retiring.leave(); });
  }
  retiring.close_and_wait();
  // Every call has ended and its `done` has run (queued callbacks too).
  for (auto& route : routes_)
    route->calls.close_and_wait();
  routes_.clear();
}

ChannelStats Channel::stats() const {
  std::vector<ChannelGroupStats> groups;
  for (const auto& route : routes_)
    groups.push_back(route->counters.snapshot());
  return detail::sum_group_stats(std::move(groups));
}

uint64_t Channel::calls_in_flight() const {
  int64_t calls = 0;
  for (const auto& route : routes_)
    calls += route->calls.count();
  return static_cast<uint64_t>(calls);
}

void Channel::on_servers(const std::vector<ServerAddress>& servers) {
  log_server_change(servers);
  auto all = std::make_shared<const std::vector<ServerAddress>>(servers);
  const auto subset_size = static_cast<size_t>(options_.subset_size);
  const int groups = static_cast<int>(routes_.size());
  if (subset_size == 0 || subset_size >= servers.size()) {
    for (int g = 0; g < groups; ++g)
      runtime_->group(g).set_servers(*routes_[g], all, nullptr);
    return;
  }
  for (int g = 0; g < groups; ++g) {
    const uint64_t id = subsetting_id(static_cast<uint64_t>(options_.client_id), groups, g);
    std::vector<ServerAddress> subset = deterministic_subset(servers, id, subset_size);
    std::vector<ServerAddress> others;
    for (const ServerAddress& server : servers) {
      if (std::find(subset.begin(), subset.end(), server) == subset.end())
        others.push_back(server);
    }
    runtime_->group(g).set_servers(
        *routes_[g], std::make_shared<const std::vector<ServerAddress>>(std::move(subset)),
        std::make_shared<const std::vector<ServerAddress>>(std::move(others)));
  }
}

void Channel::CallMethod(const google::protobuf::MethodDescriptor* method,
                         google::protobuf::RpcController* controller,
                         const google::protobuf::Message* request,
                         google::protobuf::Message* response, google::protobuf::Closure* done) {
  auto* percore_controller = static_cast<Controller*>(controller);
  if (routes_.empty()) {
    // Not initialized: no group to fail through, so fail here.
    percore_controller->SetFailed("channel is not initialized");
    if (done != nullptr)
      done->Run();
    return;
  }
  const int group = runtime_->group_for_this_thread();
  runtime_->group(group).call(*routes_[group], method, percore_controller, request, response,
                              done);
}

void Channel::log_server_change(const std::vector<ServerAddress>& servers) {
  std::vector<std::string> now;
  for (const ServerAddress& server : servers)
    now.push_back(server.to_string());
  std::sort(now.begin(), now.end());
  std::vector<std::string> added;
  std::vector<std::string> removed;
  std::lock_guard lock(last_servers_mutex_);
  std::set_difference(now.begin(), now.end(), last_servers_.begin(), last_servers_.end(),
                      std::back_inserter(added));
  std::set_difference(last_servers_.begin(), last_servers_.end(), now.begin(), now.end(),
                      std::back_inserter(removed));
  last_servers_ = std::move(now);
  if (added.empty() && removed.empty())
    return;
  const auto list = [](const std::vector<std::string>& items) {
    std::string text;
    for (size_t i = 0; i < items.size() && i < 8; ++i) {
      if (i > 0)
        text += ',';
      text += items[i];
    }
    if (items.size() > 8)
      text += ",... (" + std::to_string(items.size()) + ")";
    return text;
  };
  events_->channel(LogLevel::kInfo, [&] {
    std::string text = "server list now has " + std::to_string(last_servers_.size()) + " servers";
    if (!added.empty())
      text += "; added " + list(added);
    if (!removed.empty())
      text += "; removed " + list(removed);
    return text;
  });
}

}  // namespace percore
