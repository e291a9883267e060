// percore-cli: tools around a percore deployment.
//   percore-cli list zk://HOSTS/BASE/PATH[/ServiceName]
// prints the services registered under the base path (or the one named) and
// their instances, read from ZooKeeper in Apache Curator's layout: one line
// per instance with its id, address, service type, enabled state and
// registration time (UTC).

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "discovery/service_instance.h"
#include "discovery/zookeeper_client.h"
#include "discovery/zookeeper_uri.h"

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

// Prints one service's instances: id, address, type, whether it is in
// rotation (Curator 5's "enabled"; absent means enabled) and when it
// registered. False if `path` holds no Curator instance.
bool print_service(percore::ZooKeeperClient& client, const std::string& path,
                   const std::string& name, bool require_instances) {
  std::vector<std::string> ids;
  std::string error;
  if (!client.get_children(path, &ids, &error))
    return false;
  std::vector<std::string> lines;
  size_t instances = 0;
  for (const std::string& id : ids) {
    std::string data;
    if (!client.get_data(path + "/" + id, &data, &error))
      continue;  // Gone meanwhile.
    std::optional<percore::ServiceInstance> instance = percore::parse_curator_json(data, &error);
    if (!instance) {
      lines.push_back("  " + id + "  unreadable: " + error);
      continue;
    }
    ++instances;
    const bool enabled = !instance->enabled.has_value() || *instance->enabled;
    lines.push_back("  " + instance->id + "  " + instance->address + ":" +
                    (instance->port ? std::to_string(*instance->port) : std::string("-")) + "  " +
                    instance->service_type + "  " + (enabled ? "enabled" : "disabled") +
                    "  registered " + utc_text(instance->registration_time_utc));
  }
  if (instances == 0 && require_instances)
    return false;
  std::printf("%s (%zu instance%s)\n", name.c_str(), instances, instances == 1 ? "" : "s");
  for (const std::string& line : lines)
    std::printf("%s\n", line.c_str());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
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
  // A service node: its children are instances.
  if (!uri->path.empty() && print_service(client, uri->path, uri->last_segment(), true))
    return 0;
  std::vector<std::string> services;
  if (!client.get_children(path, &services, &error)) {
    std::fprintf(stderr, "percore-cli: %s\n", error.c_str());
    return 1;
  }
  if (services.empty())
    std::printf("no services under %s\n", path.c_str());
  for (const std::string& service : services) {
    print_service(client, uri->path + "/" + service, service, false);
  }
  return 0;
}
