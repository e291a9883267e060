// percore-cli: tools around a percore deployment.
//   percore-cli list zk://HOSTS/BASE/PATH[/ServiceName]
// prints the services registered under the base path (or the one named) and
// their instances, read from ZooKeeper in Apache Curator's layout: one line
// per instance with its id, address, service type, enabled state and
// registration time (UTC), or why it is unreadable.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include <percore/discovery/service_instance.h>
#include <percore/discovery/zookeeper_client.h>
#include <percore/discovery/zookeeper_uri.h>
#include <percore/version.h>

namespace {

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-cli: %s\n"
               "usage: percore-cli list zk://HOSTS/BASE/PATH[/ServiceName]\n",
               message.c_str());
  std::exit(2);
}

// Curator's registrationTimeUTC (ms since the epoch) as ISO 8601 UTC.
std::string utc_text(int64_t millis) {
  if (millis <= 0)
    return "-";
  const time_t seconds = static_cast<time_t>(millis / 1000);
  std::tm parts{};
  if (gmtime_r(&seconds, &parts) == nullptr)
    return "-";
  char text[40];
  const size_t length = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &parts);
  std::snprintf(text + length, sizeof(text) - length, ".%03dZ", static_cast<int>(millis % 1000));
  return text;
}

// A node's children with their data; a child gone meanwhile is left out.
// False (with *error) if `path` cannot be listed.
bool read_children(percore::ZooKeeperClient& client, const std::string& path,
                   std::vector<std::pair<std::string, std::string>>* children,
                   std::string* error) {
  std::vector<std::string> names;
  if (!client.get_children(path, &names, error))
    return false;
  const std::string prefix = path == "/" ? "/" : path + "/";
  for (const std::string& name : names) {
    std::string data;
    std::string ignored;
    if (client.get_data(prefix + name, &data, &ignored))
      children->emplace_back(name, std::move(data));
  }
  return true;
}

// Prints one service's instances: id, address, type, whether it is in
// rotation (Curator 5's "enabled"; absent means enabled) and when it
// registered; and, for a node that is no usable instance, why.
void print_service(const std::string& name,
                   const std::vector<std::pair<std::string, std::string>>& children) {
  std::vector<std::string> lines;
  size_t instances = 0;
  for (const auto& [id, data] : children) {
    std::string error;
    std::optional<percore::ServiceInstance> instance = percore::parse_curator_json(data, &error);
    if (!instance) {
      lines.push_back("  " + id + "  unreadable: " + error);
      continue;
    }
    if (!instance->port) {
      // What clients skip, and why (percore speaks plain-text baidu_std).
      lines.push_back("  " + id + "  unusable: only an sslPort (" +
                      std::to_string(*instance->ssl_port) + "), no plain-text port");
      continue;
    }
    ++instances;
    const bool enabled = !instance->enabled.has_value() || *instance->enabled;
    const bool ipv6 = instance->address.find(':') != std::string::npos;
    std::string line = "  " + instance->id + "  ";
    line += ipv6 ? "[" + instance->address + "]" : instance->address;
    line += ':';
    line += std::to_string(*instance->port);
    line += "  ";
    line += instance->service_type;
    line += enabled ? "  enabled" : "  disabled";
    line += "  registered " + utc_text(instance->registration_time_utc);
    lines.push_back(std::move(line));
  }
  std::printf("%s (%zu instance%s)\n", name.c_str(), instances, instances == 1 ? "" : "s");
  for (const std::string& line : lines)
    std::printf("%s\n", line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  // --version wins wherever it stands, as in GNU programs.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::printf("%s %s\n", "percore-cli", PERCORE_VERSION_STRING);
      return 0;
    }
  }
  if (argc != 3 || std::string(argv[1]) != "list")
    usage("expected: list zk://...");
  std::string error;
  std::optional<percore::ZooKeeperUri> uri =
      percore::parse_zookeeper_uri(argv[2], /*service_required=*/false, &error);
  if (!uri)
    usage(error);
  percore::ZooKeeperOptions options;
  options.hosts = uri->hosts;
  percore::ZooKeeperClient client(options);
  if (!client.connect(&error)) {
    std::fprintf(stderr, "percore-cli: %s\n", error.c_str());
    return 1;
  }
  const std::string path = uri->path.empty() ? "/" : uri->path;
  std::vector<std::pair<std::string, std::string>> children;
  if (!read_children(client, path, &children, &error)) {
    std::fprintf(stderr, "percore-cli: %s\n", error.c_str());
    return 1;
  }
  if (children.empty()) {
    std::printf("nothing registered under %s\n", path.c_str());
    return 0;
  }
  // Instances hold data; the service nodes of a base path hold none.
  const bool service_node = std::any_of(children.begin(), children.end(),
                                        [](const auto& child) { return !child.second.empty(); });
  if (service_node) {
    print_service(uri->last_segment(), children);
    return 0;
  }
  for (const auto& child : children) {
    if (path == "/" && child.first == "zookeeper")
      continue;  // ZooKeeper's own node.
    const std::string service_path = (path == "/" ? "" : path) + "/" + child.first;
    std::vector<std::pair<std::string, std::string>> instances;
    if (read_children(client, service_path, &instances, &error))
      print_service(child.first, instances);
  }
  return 0;
}
