// percore-gateway: an HTTP/JSON (and baidu_std) front-end that forwards each
// call through percore's client proxy to the servers of a target, so that
// HTTP clients (curl, ab, a browser) reach a pool of backends that may be
// added and removed while it runs (zk://... follows them live).
//
//   percore-gateway --listen 127.0.0.1:8002 --route
//       prime.PrimeService=zk://127.0.0.1:2181/percore/services/prime.PrimeService
//   curl 'http://127.0.0.1:8002/prime.PrimeService/IsPrime?number=32416190071'
//
// Services are those compiled in (example.EchoService, prime.PrimeService,
// pipeline.StageA/StageB, grpc.health.v1.Health) or any in --descriptor-set
// FILE (protoc --descriptor_set_out=FILE --include_imports). The deadline of a
// forwarded call is the request's X-Timeout-Ms (HTTP) or timeout_ms
// (baidu_std), else --default-timeout-ms. Answers follow percore's HTTP
// status table (docs/HTTP.md); the gateway's own /health, /status and
// /metrics show its calls in and out. SIGTERM or SIGINT stop it gracefully.

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/dynamic_message.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <unistd.h>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/health.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/server_io/server.h>
#include <percore/version.h>
#include "examples/forwarding_service.h"
#include "examples/pipeline.pb.h"

namespace {

constexpr std::string_view kUsage =
    "usage: percore-gateway --route package.Service=TARGET [--route ...]\n"
    "                       [--listen HOST:PORT] [--descriptor-set FILE]\n"
    "                       [--default-timeout-ms N] [--io-threads N] [--groups N]\n"
    "                       [--max-retry N] [--grace-ms N] [--idle-timeout-ms N]\n"
    "                       [--max-connections N]\n"
    "  --route           forward package.Service to TARGET: host:port[,...],\n"
    "                    list://..., file:///path or zk://HOSTS/BASE/PATH/Service\n"
    "                    (repeat for more services)\n"
    "  --listen          address to serve HTTP and baidu_std on (default\n"
    "                    127.0.0.1:8002; port 0 picks one)\n"
    "  --descriptor-set  a FileDescriptorSet (protoc --descriptor_set_out\n"
    "                    --include_imports) naming services not compiled in\n"
    "  --default-timeout-ms  deadline of a call that brings none (default 5000)\n"
    "  --io-threads      the server's I/O threads (default: one per core)\n"
    "  --groups          the client proxy's thread groups (default: one per core)\n"
    "  --max-retry       sends again after a broken connection: for idempotent\n"
    "                    services only (default 0)\n"
    "  --grace-ms        how long a stop waits for calls in flight (default 5000)\n"
    "  --idle-timeout-ms close idle client connections after this (default 0: never)\n"
    "  --max-connections open client connections, at most (default 0: no limit)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "percore-gateway: %s\n%.*s", message.c_str(),
               static_cast<int>(kUsage.size()), kUsage.data());
  std::exit(2);
}

int parse_int(const std::string& flag, const char* text, int min, int max) {
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || errno == ERANGE || value < min || value > max)
    usage_error(flag + " needs a number from " + std::to_string(min) + " to " +
                std::to_string(max));
  return static_cast<int>(value);
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8002";
  std::string descriptor_set;
  std::vector<std::pair<std::string, std::string>> routes;
  int default_timeout_ms = 5000;
  int groups = 0;
  int max_retry = 0;
  int grace_ms = 5000;
  percore::ServerOptions server_options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--version") {
      std::printf("percore-gateway %s\n", PERCORE_VERSION_STRING);
      return 0;
    }
    if (flag == "--help" || flag == "-h") {
      std::printf("%.*s", static_cast<int>(kUsage.size()), kUsage.data());
      return 0;
    }
    if (i + 1 >= argc)
      usage_error(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--route") {
      const std::string route = value;
      const size_t equals = route.find('=');
      if (equals == std::string::npos || equals == 0 || equals + 1 == route.size())
        usage_error("--route needs package.Service=TARGET, not '" + route + "'");
      routes.emplace_back(route.substr(0, equals), route.substr(equals + 1));
    } else if (flag == "--descriptor-set") {
      descriptor_set = value;
    } else if (flag == "--default-timeout-ms") {
      default_timeout_ms = parse_int(flag, value, 1, 3600000);
    } else if (flag == "--io-threads") {
      server_options.io_threads = parse_int(flag, value, 1, 256);
    } else if (flag == "--groups") {
      groups = parse_int(flag, value, 1, 256);
    } else if (flag == "--max-retry") {
      max_retry = parse_int(flag, value, 0, 10);
    } else if (flag == "--grace-ms") {
      grace_ms = parse_int(flag, value, 0, 3600000);
    } else if (flag == "--idle-timeout-ms") {
      server_options.idle_timeout_ms = parse_int(flag, value, 0, 86400000);
    } else if (flag == "--max-connections") {
      server_options.max_connections = parse_int(flag, value, 0, 10000000);
    } else {
      usage_error("unknown option " + flag);
    }
  }
  if (routes.empty())
    usage_error("no --route: name at least one service to forward");

  // The compiled-in services: naming them links their descriptors in (a
  // static link drops generated files nothing refers to).
  for (const google::protobuf::Descriptor* known :
       {example::EchoRequest::descriptor(), prime::IsPrimeRequest::descriptor(),
        pipeline::ProcessRequest::descriptor(),
        grpc::health::v1::HealthCheckRequest::descriptor()}) {
    (void)known;
  }
  // Services named by the descriptor set come from a pool of their own (the
  // file may repeat compiled-in files: no clash with the generated pool).
  google::protobuf::DescriptorPool file_pool;
  google::protobuf::DynamicMessageFactory dynamic_factory(&file_pool);
  if (!descriptor_set.empty()) {
    std::ifstream file(descriptor_set, std::ios::binary);
    google::protobuf::FileDescriptorSet set;
    if (!file || !set.ParseFromIstream(&file))
      usage_error("cannot read a FileDescriptorSet from " + descriptor_set);
    for (const google::protobuf::FileDescriptorProto& proto : set.file()) {
      if (file_pool.BuildFile(proto) == nullptr)
        usage_error(descriptor_set + ": cannot use " + proto.name() +
                    " (is it built with --include_imports?)");
    }
  }

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  percore::ChannelOptions channel_options;
  channel_options.max_retry = max_retry;
  if (groups > 0)
    channel_options.private_groups = percore::ClientRuntimeOptions{.groups = groups};
  // One Channel per distinct target; declared before the server and its
  // services, so destroyed after them.
  std::map<std::string, std::unique_ptr<percore::Channel>> channels;
  std::vector<std::unique_ptr<percore::examples::ForwardingService>> services;
  auto server = std::make_unique<percore::Server>(server_options);
  for (const auto& [service_name, target] : routes) {
    const google::protobuf::ServiceDescriptor* descriptor =
        file_pool.FindServiceByName(service_name);
    google::protobuf::MessageFactory* factory = &dynamic_factory;
    if (descriptor == nullptr) {
      descriptor =
          google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service_name);
      factory = google::protobuf::MessageFactory::generated_factory();
    }
    if (descriptor == nullptr)
      usage_error("unknown service " + service_name +
                  " (not compiled in; give its --descriptor-set)");
    std::unique_ptr<percore::Channel>& channel = channels[target];
    if (channel == nullptr) {
      channel = std::make_unique<percore::Channel>();
      std::string error;
      if (!channel->Init(target, channel_options, &error)) {
        std::fprintf(stderr, "percore-gateway: %s: %s\n", target.c_str(), error.c_str());
        return 1;
      }
    }
    services.push_back(std::make_unique<percore::examples::ForwardingService>(
        descriptor, factory, *channel, target, default_timeout_ms));
    std::string error;
    if (!server->AddService(services.back().get(), {}, &error))
      usage_error("--route " + service_name + ": " + error);
  }

  std::string error;
  if (!server->Start(listen, &error)) {
    std::fprintf(stderr, "percore-gateway: %s\n", error.c_str());
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("percore-gateway ready on %s:%d pid %d\n", host.c_str(), server->port(),
              static_cast<int>(getpid()));
  std::fflush(stdout);
  const int signal_number = server->RunUntilAskedToQuit();
  std::fprintf(stderr, "percore-gateway: signal %d, stopping\n", signal_number);
  server->Stop(std::chrono::milliseconds(grace_ms));
  server.reset();  // Before the services and Channels it calls.
  return 0;
}
