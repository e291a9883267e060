#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace percore {

// A `zk://host:port[,host:port]/path` URI, split.
struct ZooKeeperUri {
  std::string hosts;  // "127.0.0.1:2181,127.0.0.2:2181"
  std::string path;   // "/percore/services/example.EchoService", no trailing '/'

  // The last segment ("example.EchoService") and what comes before it
  // ("/percore/services"; empty for a segment right under the root).
  std::string last_segment() const;
  std::string parent_path() const;
};

// Parses a zk:// URI. With `service_required`, the path must name at least
// one segment (a client's service name). nullopt with *error when malformed.
std::optional<ZooKeeperUri> parse_zookeeper_uri(std::string_view uri, bool service_required,
                                                std::string* error);

}  // namespace percore
