#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <percore/discovery/server_address.h>

namespace percore {

// Where a client learns its servers. A source delivers the *full* current
// list whenever it changes (never a diff); the consumer works out what was
// added and removed. URIs choose the source: `list://host:port,...`,
// `file:///path` (one host:port a line, re-read on change) and
// `zk://hosts/base/path/ServiceName` (Apache Curator's layout).
//
// Threads: start() and stop() from one control thread. The listener runs on
// one thread at a time (the source's own, or the caller of start()); it must
// not block for long.
class NamingSource {
 public:
  using Listener = std::function<void(const std::vector<ServerAddress>& servers)>;

  virtual ~NamingSource() = default;

  // Starts delivering lists to `listener`. A source that knows its list at
  // once delivers it before start() returns. False with *error on failure.
  virtual bool start(Listener listener, std::string* error) = 0;
  // No listener call starts after stop() returns. Idempotent.
  virtual void stop() = 0;
};

// Settings of sources that talk to a registry.
struct NamingOptions {
  // How long start() may wait for the registry (ZooKeeper's first session).
  // Default 5 s.
  int connect_timeout_ms = 5000;
  // ZooKeeper session timeout. Default 10 s.
  int session_timeout_ms = 10000;
};

// Makes the source a target URI names: list://, file:// or
// zk://hosts/base/path/ServiceName. A bare "host:port[,host:port]" is read as
// list://. Null with *error for an unknown scheme or a malformed URI.
std::unique_ptr<NamingSource> make_naming_source(const std::string& target,
                                                 const NamingOptions& options, std::string* error);
inline std::unique_ptr<NamingSource> make_naming_source(const std::string& target,
                                                        std::string* error) {
  return make_naming_source(target, NamingOptions{}, error);
}

}  // namespace percore
