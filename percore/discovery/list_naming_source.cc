#include <percore/discovery/list_naming_source.h>

#include <algorithm>
#include <string_view>

namespace percore {

bool ListNamingSource::start(Listener listener, std::string* error) {
  std::vector<ServerAddress> servers;
  std::string_view rest = servers_;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty())
      continue;
    std::optional<ServerAddress> address = resolve_server_address(item, error);
    if (!address)
      return false;
    servers.push_back(*address);
  }
  if (servers.empty()) {
    if (error != nullptr)
      *error = "list:// names no server";
    return false;
  }
  std::sort(servers.begin(), servers.end());
  servers.erase(std::unique(servers.begin(), servers.end()), servers.end());
  listener(servers);
  return true;
}

}  // namespace percore
