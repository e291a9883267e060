#include <percore/discovery/zookeeper_registrar.h>

#include <percore/base/log.h>

namespace percore {

ZooKeeperRegistrar::ZooKeeperRegistrar(ZooKeeperUri registry, ZooKeeperOptions options)
    : registry_(std::move(registry)), options_(std::move(options)) {
  options_.hosts = registry_.hosts;
}

ZooKeeperRegistrar::~ZooKeeperRegistrar() = default;

std::string ZooKeeperRegistrar::instance_path(const ServiceInstance& instance) const {
  return registry_.path + "/" + instance.name + "/" + instance.id;
}

bool ZooKeeperRegistrar::register_services(const std::vector<std::string>& services,
                                           const std::string& address, int port,
                                           std::string* error) {
  client_ = std::make_unique<ZooKeeperClient>(options_);
  if (session_listener_)
    client_->set_session_listener(session_listener_);
  if (!client_->connect(error))
    return false;
  for (const std::string& service : services) {
    ServiceInstance instance;
    instance.name = service;
    instance.id = make_instance_id();
    instance.address = address;
    instance.port = port;
    instance.registration_time_utc = now_utc_millis();
    instance.service_type = "DYNAMIC";
    if (!client_->create_ephemeral(instance_path(instance), to_curator_json(instance), error)) {
      return false;
    }
    instances_.push_back(std::move(instance));
  }
  return true;
}

bool ZooKeeperRegistrar::deregister(std::chrono::milliseconds timeout) {
  if (client_ == nullptr)
    return true;
  std::string error;
  if (client_->delete_ephemerals(timeout, &error))
    return true;
  // Closing the session removes its ephemeral nodes: at once if ZooKeeper
  // hears the close, else when the session expires.
  log(LogLevel::kWarning, "deregistering: " + error + "; closing the ZooKeeper session instead");
  client_.reset();
  return false;
}

}  // namespace percore
