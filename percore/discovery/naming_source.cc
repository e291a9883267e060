#include <percore/discovery/naming_source.h>

#include <percore/discovery/file_naming_source.h>
#include <percore/discovery/list_naming_source.h>
#include <percore/discovery/zookeeper_naming_source.h>

namespace percore {

std::unique_ptr<NamingSource> make_naming_source(const std::string& target,
                                                 const NamingOptions& options, std::string* error) {
  const size_t scheme_end = target.find("://");
  if (scheme_end == std::string::npos)
    return std::make_unique<ListNamingSource>(target);
  const std::string scheme = target.substr(0, scheme_end);
  const std::string rest = target.substr(scheme_end + 3);
  if (scheme == "list")
    return std::make_unique<ListNamingSource>(rest);
  if (scheme == "file")
    return std::make_unique<FileNamingSource>(rest);
  if (scheme == "zk") {
    std::optional<ZooKeeperUri> uri = parse_zookeeper_uri(target, /*service_required=*/true, error);
    if (!uri)
      return nullptr;
    ZooKeeperOptions zookeeper;
    zookeeper.connect_timeout_ms = options.connect_timeout_ms;
    zookeeper.session_timeout_ms = options.session_timeout_ms;
    return std::make_unique<ZooKeeperNamingSource>(std::move(*uri), zookeeper);
  }
  if (error != nullptr) {
    *error = "unsupported naming scheme '" + scheme + "' in " + target +
             " (supported: list://, file://, zk://)";
  }
  return nullptr;
}

}  // namespace percore
