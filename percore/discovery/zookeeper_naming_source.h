#pragma once

#include <memory>
#include <string>
#include <vector>

#include <percore/discovery/naming_source.h>
#include <percore/discovery/zookeeper_client.h>
#include <percore/discovery/zookeeper_uri.h>

namespace percore {

// `zk://hosts/base/path/ServiceName`: the instances registered under
// /base/path/ServiceName in Apache Curator's layout. start() waits for the
// session and the first list together, bounded by the connect timeout
// (ChannelOptions::naming_timeout_ms), and delivers that list before it
// returns — possibly empty, when no instance has registered yet. After that
// every change of an instance is delivered as a full list: one that comes,
// goes, or whose data is rewritten (Curator's updateService: a new address
// or port, or "enabled": false, which takes it out of rotation until it is
// true again or the field is removed). Through a connection loss or a
// session expiry the last known list stays.
//
// Owns: its ZooKeeper session. Threads: as NamingSource; the listener runs
// on the session's thread, the first list included, so lists arrive in order.
class ZooKeeperNamingSource : public NamingSource {
 public:
  ZooKeeperNamingSource(ZooKeeperUri uri, ZooKeeperOptions options);
  ~ZooKeeperNamingSource() override;

  bool start(Listener listener, std::string* error) override;
  void stop() override;

  // The session (for tests that force its expiry); null before start().
  ZooKeeperClient* client() { return client_.get(); }

  // Instances whose JSON is not a usable Curator instance are skipped; this
  // turns one child's data into an address, or nullopt: with the reason in
  // *error, or *error empty when the instance is disabled ("enabled": false).
  static std::optional<ServerAddress> address_of(const std::string& instance_json,
                                                 std::string* error);

 private:
  std::vector<ServerAddress> to_servers(const ZooKeeperClient::Children& children);

  ZooKeeperUri uri_;
  ZooKeeperOptions options_;
  std::unique_ptr<ZooKeeperClient> client_;
};

}  // namespace percore
