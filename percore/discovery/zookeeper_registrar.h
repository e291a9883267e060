#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <percore/discovery/service_instance.h>
#include <percore/discovery/zookeeper_client.h>
#include <percore/discovery/zookeeper_uri.h>

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
  // Deletes every instance node, all at once (before a graceful stop, so
  // that clients drop this server first), waiting at most `timeout` in all.
  // True when ZooKeeper confirmed every delete; the session then stays open
  // until destruction. Otherwise (ZooKeeper silent, slow or away) the
  // session is closed at once, which removes the nodes when ZooKeeper hears
  // the close or the session expires; false. Either way this returns within
  // `timeout` plus the close (at most the C client's 3 s bound on sending
  // the close request).
  bool deregister(std::chrono::milliseconds timeout);

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
