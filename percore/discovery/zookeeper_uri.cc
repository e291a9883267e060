#include <percore/discovery/zookeeper_uri.h>

namespace percore {

std::string ZooKeeperUri::last_segment() const {
  return path.substr(path.rfind('/') + 1);
}

std::string ZooKeeperUri::parent_path() const {
  return path.substr(0, path.rfind('/'));
}

std::optional<ZooKeeperUri> parse_zookeeper_uri(std::string_view uri, bool service_required,
                                                std::string* error) {
  auto fail = [&](const std::string& reason) -> std::optional<ZooKeeperUri> {
    if (error != nullptr)
      *error = "bad ZooKeeper URI '" + std::string(uri) + "': " + reason;
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "zk://";
  if (uri.substr(0, kScheme.size()) != kScheme)
    return fail("expected zk://hosts/path");
  std::string_view rest = uri.substr(kScheme.size());
  const size_t slash = rest.find('/');
  ZooKeeperUri parsed;
  parsed.hosts = std::string(rest.substr(0, slash));
  if (parsed.hosts.empty())
    return fail("no ZooKeeper hosts");
  std::string path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  while (path.size() > 1 && path.back() == '/')
    path.pop_back();
  if (path == "/")
    path.clear();
  if (path.find("//") != std::string::npos)
    return fail("empty path segment");
  if (service_required && path.empty()) {
    return fail("the path must end with the service name, e.g. zk://" + parsed.hosts +
                "/percore/services/example.EchoService");
  }
  parsed.path = path;
  return parsed;
}

}  // namespace percore
