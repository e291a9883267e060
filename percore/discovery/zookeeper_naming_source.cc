#include <percore/discovery/zookeeper_naming_source.h>

#include <algorithm>

#include <percore/base/log.h>
#include <percore/discovery/service_instance.h>

namespace percore {

ZooKeeperNamingSource::ZooKeeperNamingSource(ZooKeeperUri uri, ZooKeeperOptions options)
    : uri_(std::move(uri)), options_(std::move(options)) {
  options_.hosts = uri_.hosts;
}

ZooKeeperNamingSource::~ZooKeeperNamingSource() {
  stop();
}

std::optional<ServerAddress> ZooKeeperNamingSource::address_of(const std::string& instance_json,
                                                               std::string* error) {
  std::optional<ServiceInstance> instance = parse_curator_json(instance_json, error);
  if (!instance)
    return std::nullopt;
  if (instance->enabled.has_value() && !*instance->enabled) {
    if (error != nullptr)
      error->clear();  // Not in rotation, by its owner's choice: no error.
    return std::nullopt;
  }
  if (!instance->port) {
    if (error != nullptr)
      *error = "instance " + instance->id + " has no plain-text port";
    return std::nullopt;
  }
  return resolve_server_address(instance->address + ":" + std::to_string(*instance->port), error);
}

std::vector<ServerAddress> ZooKeeperNamingSource::to_servers(
    const ZooKeeperClient::Children& children) {
  std::vector<ServerAddress> servers;
  for (const auto& child : children) {
    // Not a structured binding: clang 14 cannot capture one in a lambda.
    const std::string& id = child.first;
    std::string error;
    std::optional<ServerAddress> address = address_of(child.second, &error);
    if (address) {
      servers.push_back(*address);
    } else if (!error.empty()) {
      // Every change of the service re-reads the list: one bad instance must
      // not write a line per change.
      static LogRateLimiter limiter;
      limiter.log(LogLevel::kWarning, [&] {
        return "skipping instance " + uri_.hosts + uri_.path + "/" + id + ": " + error;
      });
    }
  }
  std::sort(servers.begin(), servers.end());
  servers.erase(std::unique(servers.begin(), servers.end()), servers.end());
  return servers;
}

bool ZooKeeperNamingSource::start(Listener listener, std::string* error) {
  // One deadline for the session and the first list.
  const auto deadline = ZooKeeperClient::Clock::now() +
                        std::chrono::milliseconds(std::max(1, options_.connect_timeout_ms));
  client_ = std::make_unique<ZooKeeperClient>(options_);
  if (!client_->connect(error)) {
    client_.reset();
    return false;
  }
  // Every list, the first included, is delivered on the session thread, in
  // the order ZooKeeper's events came.
  if (!client_->watch_children(
          uri_.path,
          [this, listener](const ZooKeeperClient::Children& now) { listener(to_servers(now)); },
          deadline, error)) {
    client_.reset();
    return false;
  }
  return true;
}

void ZooKeeperNamingSource::stop() {
  client_.reset();
}

}  // namespace percore
