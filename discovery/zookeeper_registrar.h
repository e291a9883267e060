#pragma once

#include <memory>
#include <string>
#include <vector>

#include "discovery/service_instance.h"
#include "discovery/zookeeper_client.h"
#include "discovery/zookeeper_uri.h"

namespace percore {

// Registers a server's services in ZooKeeper, one Apache Curator instance
// per service: /<base>/<service full name>/<uuid>, EPHEMERAL, holding
// Curator's JSON. The session keeps them through connection loss and
// re-creates them after a session expiry.
//
// Owns: its ZooKeeper session and the instances. Threads: one control thread.
class ZooKeeperRegistrar {
 public:
  // `registry` is zk://hosts/base/path (the base path only).
  ZooKeeperRegistrar(ZooKeeperUri registry, ZooKeeperOptions options);
  ~ZooKeeperRegistrar();

  // Called with the session id and password whenever a session is
  // established (before register_services).
  void set_session_listener(ZooKeeperClient::SessionListener listener) {
    session_listener_ = std::move(listener);
  }

  // Connects and registers `services` at address:port. False with *error.
  bool register_services(const std::vector<std::string>& services, const std::string& address,
                         int port, std::string* error);
  // Deletes every instance node (before a graceful stop, so that clients drop
  // this server first). The session stays open until destruction.
  void deregister();

  const std::vector<ServiceInstance>& instances() const { return instances_; }
  std::string instance_path(const ServiceInstance& instance) const;
  ZooKeeperClient* client() { return client_.get(); }

 private:
  ZooKeeperUri registry_;
  ZooKeeperOptions options_;
  ZooKeeperClient::SessionListener session_listener_;
  std::unique_ptr<ZooKeeperClient> client_;
  std::vector<ServiceInstance> instances_;
};

}  // namespace percore
