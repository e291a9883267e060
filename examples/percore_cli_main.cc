// percore-cli: tools around a percore deployment.
//   percore-cli list zk://HOSTS/BASE/PATH[/ServiceName]
// prints the services registered under the base path (or the one named) and
// their instances, read from ZooKeeper in Apache Curator's layout.

#include <cstdio>
#include <cstdlib>
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

// Prints one service's instances; false if `path` holds no Curator instance.
bool print_service(percore::ZooKeeperClient& client, const std::string& path,
                   const std::string& name, bool require_instances) {
  std::vector<std::string> ids;
  std::string error;
  if (!client.get_children(path, &ids, &error))
    return false;
  std::vector<percore::ServiceInstance> instances;
  for (const std::string& id : ids) {
    std::string data;
    if (!client.get_data(path + "/" + id, &data, &error))
      continue;
    std::optional<percore::ServiceInstance> instance = percore::parse_curator_json(data, &error);
    if (instance)
      instances.push_back(*instance);
  }
  if (instances.empty() && require_instances)
    return false;
  std::printf("%s (%zu instance%s)\n", name.c_str(), instances.size(),
              instances.size() == 1 ? "" : "s");
  for (const percore::ServiceInstance& instance : instances) {
    std::printf("  %s  %s:%s  %s%s\n", instance.id.c_str(), instance.address.c_str(),
                instance.port ? std::to_string(*instance.port).c_str() : "-",
                instance.service_type.c_str(),
                instance.enabled.has_value() && !*instance.enabled ? "  disabled" : "");
  }
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
