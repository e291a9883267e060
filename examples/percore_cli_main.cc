// percore-cli: tools around a percore deployment, grpcurl-like.
//   percore-cli list zk://HOSTS/BASE/PATH[/ServiceName]
// prints the services registered under the base path (or the one named) and
// their instances, read from ZooKeeper in Apache Curator's layout: one line
// per instance with its id, address, service type, enabled state and
// registration time (UTC), or why it is unreadable.
//   percore-cli call TARGET package.Service.Method '{"json":...}'
// builds the request from protobuf's JSON mapping, calls the method through a
// percore Channel (any target a Channel takes) and prints the response as
// JSON. Any method works whose types are known: the services compiled into
// this program, or those of a --descriptor-set file (protoc
// --descriptor_set_out --include_imports), through dynamic messages.
//   percore-cli describe [TARGET | FILE.pb] package.Service[.Method] | Message
// prints a service, method or message (with the messages it uses) in
// .proto-like text. percore has no server reflection: types come from this
// program and the descriptor sets, never from a server.
// --output json makes every command print one JSON object instead. Exit
// status: 0 success, 1 the call or the registry read failed, 2 bad usage
// (arguments, unknown method, bad JSON).

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <deque>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/util/json_util.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <percore/client_proxy/channel.h>
#include <percore/discovery/service_instance.h>
#include <percore/discovery/zookeeper_client.h>
#include <percore/discovery/zookeeper_uri.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/error_code.h>
#include <percore/proto/health.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/version.h>

namespace {

namespace pb = google::protobuf;

constexpr int kExitCallFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kDefaultTimeoutMs = 5000;
constexpr int kMaxTimeoutMs = 600000;

void print_usage(std::FILE* out) {
  std::fprintf(
      out,
      "usage: percore-cli list [OPTIONS] zk://HOSTS/BASE/PATH[/ServiceName]\n"
      "       percore-cli call [OPTIONS] TARGET package.Service.Method [JSON | @FILE | -]\n"
      "       percore-cli describe [OPTIONS] [TARGET | FILE.pb] SYMBOL\n"
      "  TARGET  host:port[,host:port...], list://..., file:///path, or\n"
      "          zk://HOSTS/BASE/PATH/package.Service\n"
      "  JSON    the request in protobuf's JSON mapping (default {}); @FILE reads it\n"
      "          from FILE, - from stdin. Unknown fields are errors.\n"
      "  SYMBOL  package.Service, package.Service.Method or package.Message\n"
      "options:\n"
      "  --descriptor-set FILE.pb  types from a FileDescriptorSet, as written by\n"
      "                            protoc --descriptor_set_out=FILE.pb --include_imports\n"
      "                            (repeatable); without it, the services compiled in:\n"
      "                            example.EchoService, prime.PrimeService\n"
      "  --timeout-ms N            deadline of the call (list: of the connection to\n"
      "                            ZooKeeper), 1..%d (default %d)\n"
      "  --output text|json        json: one object on stdout, for call\n"
      "                            {\"code\":0,\"response\":{...}} or "
      "{\"code\":N,\"error\":\"...\"}\n"
      "  --verbose                 percore's log lines (connections, server lists)\n"
      "  --version\n"
      "percore has no server reflection: describe reads the compiled-in types and\n"
      "the descriptor sets, never the TARGET (which it accepts and does not contact).\n"
      "exit status: 0 success, 1 the call or registry read failed, 2 bad usage\n"
      "(arguments, unknown method, bad JSON).\n",
      kMaxTimeoutMs, kDefaultTimeoutMs);
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr, "percore-cli: %s\n", message.c_str());
  print_usage(stderr);
  std::exit(kExitUsage);
}

// A usage error about the input itself (JSON, method, descriptor set): the
// reason alone, without the whole usage text.
[[noreturn]] void bad_input(const std::string& message) {
  std::fprintf(stderr, "percore-cli: %s\n", message.c_str());
  std::exit(kExitUsage);
}

// A CLI's output is its answer: percore's routine log lines (server list
// changes, connect retries) only with --verbose. Registered before percore
// logs anything, so that percore takes this logger.
void set_up_log(bool verbose) {
  auto logger = std::make_shared<spdlog::logger>("percore",
                                                 std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_level(verbose ? spdlog::level::debug : spdlog::level::err);
  spdlog::register_logger(logger);
}

// Error texts come from servers and may hold any bytes: never let them
// make the JSON writer throw.
std::string dump(const nlohmann::ordered_json& value) {
  return value.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

struct Arguments {
  std::string command;
  std::vector<std::string> positional;
  std::vector<std::string> descriptor_sets;
  int timeout_ms = kDefaultTimeoutMs;
  bool json_output = false;
  bool verbose = false;
};

Arguments parse_arguments(int argc, char** argv) {
  Arguments arguments;
  for (int i = 1; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument == "-h" || argument == "--help") {
      print_usage(stdout);
      std::exit(0);
    }
    // A lone "-" is the stdin body; anything else starting with "--" is an
    // option, as --name VALUE or --name=VALUE.
    if (argument.rfind("--", 0) != 0) {
      if (arguments.command.empty())
        arguments.command = argument;
      else
        arguments.positional.push_back(argument);
      continue;
    }
    std::string value;
    const size_t equals = argument.find('=');
    if (equals != std::string::npos) {
      value = argument.substr(equals + 1);
      argument.resize(equals);
    } else if (argument == "--descriptor-set" || argument == "--timeout-ms" ||
               argument == "--output") {
      if (i + 1 >= argc)
        usage("missing value for " + argument);
      value = argv[++i];
    }
    if (argument == "--descriptor-set") {
      arguments.descriptor_sets.push_back(value);
    } else if (argument == "--timeout-ms") {
      char* end = nullptr;
      const long timeout = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || timeout < 1 || timeout > kMaxTimeoutMs)
        usage("--timeout-ms takes 1.." + std::to_string(kMaxTimeoutMs) + ", not " + value);
      arguments.timeout_ms = static_cast<int>(timeout);
    } else if (argument == "--verbose" && equals == std::string::npos) {
      arguments.verbose = true;
    } else if (argument == "--output") {
      if (value != "json" && value != "text")
        usage("--output takes text or json, not " + value);
      arguments.json_output = value == "json";
    } else {
      usage("unknown option " + argument);
    }
  }
  return arguments;
}

// ----------------------------------------------------------------- list

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
// registered; and, for a node that is no usable instance, why. With
// `json_services`, appends the same as an object there instead.
void print_service(const std::string& name,
                   const std::vector<std::pair<std::string, std::string>>& children,
                   nlohmann::ordered_json* json_services) {
  std::vector<std::string> lines;
  nlohmann::ordered_json json_instances = nlohmann::ordered_json::array();
  nlohmann::ordered_json json_unusable = nlohmann::ordered_json::array();
  size_t instances = 0;
  for (const auto& [id, data] : children) {
    std::string error;
    std::optional<percore::ServiceInstance> instance = percore::parse_curator_json(data, &error);
    if (!instance) {
      lines.push_back("  " + id + "  unreadable: " + error);
      json_unusable.push_back({{"id", id}, {"reason", "unreadable: " + error}});
      continue;
    }
    if (!instance->port) {
      // What clients skip, and why (percore speaks plain-text baidu_std).
      const std::string reason =
          "only an sslPort (" + std::to_string(*instance->ssl_port) + "), no plain-text port";
      lines.push_back("  " + id + "  unusable: " + reason);
      json_unusable.push_back({{"id", id}, {"reason", reason}});
      continue;
    }
    ++instances;
    const bool enabled = !instance->enabled.has_value() || *instance->enabled;
    const bool ipv6 = instance->address.find(':') != std::string::npos;
    json_instances.push_back({{"id", instance->id},
                              {"address", instance->address},
                              {"port", *instance->port},
                              {"serviceType", instance->service_type},
                              {"enabled", enabled},
                              {"registrationTimeUTC", instance->registration_time_utc}});
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
  if (json_services != nullptr) {
    json_services->push_back(
        {{"name", name}, {"instances", json_instances}, {"unusable", json_unusable}});
    return;
  }
  std::printf("%s (%zu instance%s)\n", name.c_str(), instances, instances == 1 ? "" : "s");
  for (const std::string& line : lines)
    std::printf("%s\n", line.c_str());
}

int run_list(const Arguments& arguments) {
  if (arguments.positional.size() != 1)
    usage("expected: list zk://...");
  auto fail = [&](const std::string& error) {
    if (arguments.json_output)
      std::printf("%s\n", dump({{"error", error}}).c_str());
    else
      std::fprintf(stderr, "percore-cli: %s\n", error.c_str());
    return kExitCallFailed;
  };
  std::string error;
  std::optional<percore::ZooKeeperUri> uri =
      percore::parse_zookeeper_uri(arguments.positional[0], /*service_required=*/false, &error);
  if (!uri)
    usage(error);
  percore::ZooKeeperOptions options;
  options.hosts = uri->hosts;
  options.connect_timeout_ms = arguments.timeout_ms;
  percore::ZooKeeperClient client(options);
  if (!client.connect(&error))
    return fail(error);
  const std::string path = uri->path.empty() ? "/" : uri->path;
  std::vector<std::pair<std::string, std::string>> children;
  if (!read_children(client, path, &children, &error))
    return fail(error);
  nlohmann::ordered_json services = nlohmann::ordered_json::array();
  nlohmann::ordered_json* json_services = arguments.json_output ? &services : nullptr;
  // Instances hold data; the service nodes of a base path hold none.
  const bool service_node = std::any_of(children.begin(), children.end(),
                                        [](const auto& child) { return !child.second.empty(); });
  if (children.empty()) {
    if (!arguments.json_output)
      std::printf("nothing registered under %s\n", path.c_str());
  } else if (service_node) {
    print_service(uri->last_segment(), children, json_services);
  } else {
    for (const auto& child : children) {
      if (path == "/" && child.first == "zookeeper")
        continue;  // ZooKeeper's own node.
      const std::string service_path = (path == "/" ? "" : path) + "/" + child.first;
      std::vector<std::pair<std::string, std::string>> instances;
      if (read_children(client, service_path, &instances, &error))
        print_service(child.first, instances, json_services);
    }
  }
  if (arguments.json_output)
    std::printf("%s\n", dump({{"services", services}}).c_str());
  return 0;
}

// ------------------------------------------------------ types and schemas

// The services compiled into this program. Naming them also keeps their
// generated code (and so their descriptors) in the link.
std::vector<const pb::ServiceDescriptor*> compiled_in_services() {
  // The health messages have no service in percore's proto; kept for
  // describe and descriptor sets that import them.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();
  return {example::EchoService::descriptor(), prime::PrimeService::descriptor()};
}

class CollectErrors : public pb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const pb::Message*,
                ErrorLocation, const std::string& message) override {
    text_ += (text_.empty() ? "" : "; ") + filename + ": " + element_name + ": " + message;
  }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
};

// protobuf's default JSON name of a field (descriptor.cc's ToJsonName).
std::string default_json_name(const std::string& field_name) {
  std::string json_name;
  bool capitalize_next = false;
  for (char character : field_name) {
    if (character == '_') {
      capitalize_next = true;
    } else if (capitalize_next) {
      json_name.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(character))));
      capitalize_next = false;
    } else {
      json_name.push_back(character);
    }
  }
  return json_name;
}

// protoc writes every field's json_name into a descriptor set, and
// describe would print each as an option: keep only those a .proto set.
void clear_default_json_names(pb::DescriptorProto* message) {
  for (pb::FieldDescriptorProto& field : *message->mutable_field()) {
    if (field.json_name() == default_json_name(field.name()))
      field.clear_json_name();
  }
  for (pb::DescriptorProto& nested : *message->mutable_nested_type())
    clear_default_json_names(&nested);
}

// Where types are looked up: the generated pool, or, with descriptor sets, a
// pool of their own over the sets' files and then the generated ones. A pool
// of its own because a set usually holds files compiled in here too (an
// import, or the very service): added to the generated pool they would
// clash.
class Schema {
 public:
  explicit Schema(const std::vector<std::string>& descriptor_sets) {
    compiled_in_services();
    if (descriptor_sets.empty())
      return;
    std::map<std::string, std::string> added;  // file name -> its bytes
    std::vector<std::string> names;
    for (const std::string& path : descriptor_sets) {
      std::ifstream in(path, std::ios::binary);
      if (!in)
        bad_input("cannot read descriptor set " + path);
      const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      pb::FileDescriptorSet set;
      if (!set.ParseFromString(bytes) || set.file_size() == 0)
        bad_input(path + " is no FileDescriptorSet (protoc --descriptor_set_out=" + path +
                  " --include_imports ...)");
      for (pb::FileDescriptorProto& file : *set.mutable_file()) {
        for (pb::DescriptorProto& message : *file.mutable_message_type())
          clear_default_json_names(&message);
        // Sets written with --include_imports share their imports.
        const std::string file_bytes = file.SerializeAsString();
        auto [it, inserted] = added.emplace(file.name(), file_bytes);
        if (!inserted) {
          if (it->second != file_bytes)
            bad_input(path + ": " + file.name() + " differs from the one of another set");
          continue;
        }
        if (!files_.Add(file))
          bad_input(path + ": " + file.name() + " clashes with another file of the sets");
        names.push_back(file.name());
      }
    }
    generated_ =
        std::make_unique<pb::DescriptorPoolDatabase>(*pb::DescriptorPool::generated_pool());
    merged_ = std::make_unique<pb::MergedDescriptorDatabase>(&files_, generated_.get());
    own_pool_ = std::make_unique<pb::DescriptorPool>(merged_.get(), &errors_);
    // Built now, so that a broken set is reported as such, not as an
    // unknown method.
    for (const std::string& name : names) {
      if (own_pool_->FindFileByName(name) == nullptr)
        bad_input("descriptor set: cannot build " + name + ": " + errors_.text());
    }
  }

  const pb::DescriptorPool& pool() const {
    return own_pool_ != nullptr ? *own_pool_ : *pb::DescriptorPool::generated_pool();
  }
  // Where a file's types came from, for describe.
  std::string source(const pb::FileDescriptor& file) const {
    pb::FileDescriptorProto ignored;
    const bool from_set = own_pool_ != nullptr && files_.FindFileByName(file.name(), &ignored);
    return from_set ? "descriptor set" : "compiled in";
  }
  std::string known_services() const {
    std::string text;
    for (const pb::ServiceDescriptor* service : compiled_in_services())
      text += (text.empty() ? "" : ", ") + service->full_name();
    return text + (own_pool_ != nullptr ? " and those of the descriptor sets"
                                        : "; others need --descriptor-set FILE.pb");
  }

 private:
  // Its lookups are not const, though they change nothing.
  mutable pb::SimpleDescriptorDatabase files_;
  std::unique_ptr<pb::DescriptorPoolDatabase> generated_;
  std::unique_ptr<pb::MergedDescriptorDatabase> merged_;
  CollectErrors errors_;
  std::unique_ptr<pb::DescriptorPool> own_pool_;
};

// "package.Service.Method" or grpcurl's "package.Service/Method".
std::string dotted(std::string name) {
  std::replace(name.begin(), name.end(), '/', '.');
  return name;
}

const pb::MethodDescriptor* find_method(const Schema& schema, const std::string& name) {
  const std::string full_name = dotted(name);
  if (const pb::MethodDescriptor* method = schema.pool().FindMethodByName(full_name))
    return method;
  const size_t dot = full_name.rfind('.');
  const pb::ServiceDescriptor* service =
      dot == std::string::npos ? nullptr
                               : schema.pool().FindServiceByName(full_name.substr(0, dot));
  if (service != nullptr) {
    std::string methods;
    for (int i = 0; i < service->method_count(); ++i)
      methods += (i == 0 ? "" : ", ") + service->method(i)->name();
    bad_input("unknown method " + name + ": " + service->full_name() + " has " + methods);
  }
  bad_input("unknown method " + name +
            " (expected package.Service.Method; known services: " + schema.known_services() + ")");
}

// ------------------------------------------------------------------ call

std::string read_body(const std::string& argument) {
  if (argument == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  if (!argument.empty() && argument[0] == '@') {
    std::ifstream in(argument.substr(1), std::ios::binary);
    if (!in)
      bad_input("cannot read the request body from " + argument.substr(1));
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  return argument;
}

// The request from protobuf's JSON mapping; unknown fields and missing
// proto2 required fields are errors.
void json_to_request(const std::string& json, pb::Message* request) {
  const std::string type = request->GetDescriptor()->full_name();
  pb::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const pb::util::Status status = pb::util::JsonStringToMessage(json, request, options);
  if (!status.ok()) {
    std::string reason(status.message());
    if (reason.rfind(": ", 0) == 0)
      reason.erase(0, 2);  // The field path, empty at the top level.
    bad_input("bad JSON for " + type + ": " + reason);
  }
  if (!request->IsInitialized()) {
    bad_input("bad JSON for " + type + ": missing field(s) " +
              request->InitializationErrorString());
  }
}

int report_failure(const Arguments& arguments, int32_t code, const std::string& text) {
  if (arguments.json_output) {
    std::printf(
        "%s\n",
        dump({{"code", code}, {"name", percore::error_code_name(code)}, {"error", text}}).c_str());
  } else {
    std::fprintf(stderr, "percore-cli: error %d: %s (%s)\n", static_cast<int>(code), text.c_str(),
                 percore::error_code_name(code).c_str());
  }
  return kExitCallFailed;
}

int run_call(const Arguments& arguments) {
  if (arguments.positional.size() != 2 && arguments.positional.size() != 3)
    usage("expected: call TARGET package.Service.Method [JSON]");
  const std::string& target = arguments.positional[0];
  const Schema schema(arguments.descriptor_sets);
  const pb::MethodDescriptor* method = find_method(schema, arguments.positional[1]);
  if (method->client_streaming() || method->server_streaming())
    bad_input(method->full_name() + " is a streaming method: percore calls unary ones");

  pb::DynamicMessageFactory factory;
  std::unique_ptr<pb::Message> request(factory.GetPrototype(method->input_type())->New());
  std::unique_ptr<pb::Message> response(factory.GetPrototype(method->output_type())->New());
  json_to_request(read_body(arguments.positional.size() == 3 ? arguments.positional[2] : "{}"),
                  request.get());

  percore::ChannelOptions options;
  // One call: one group of its own rather than one per core.
  options.private_groups = percore::ClientRuntimeOptions{.groups = 1};
  options.timeout_ms = arguments.timeout_ms;
  options.naming_timeout_ms = arguments.timeout_ms;
  percore::Channel channel;
  std::string error;
  if (!channel.Init(target, options, &error)) {
    // No server to call: the code a call would end with.
    return report_failure(arguments, percore::to_int(percore::ErrorCode::kHostDown),
                          "cannot use target " + target + ": " + error);
  }
  percore::Controller controller;
  controller.set_timeout_ms(arguments.timeout_ms);
  channel.CallMethod(method, &controller, request.get(), response.get(), nullptr);
  if (controller.Failed()) {
    const std::string text =
        controller.ErrorText().empty()
            ? std::string(percore::error_code_description(controller.ErrorCode()))
            : controller.ErrorText();
    return report_failure(arguments, controller.ErrorCode(), text);
  }

  pb::util::JsonPrintOptions print;
  // A proto3 false or 0 would otherwise print as nothing at all.
  print.always_print_primitive_fields = true;
  std::string json;
  const pb::util::Status status = pb::util::MessageToJsonString(*response, &json, print);
  if (!status.ok()) {
    return report_failure(arguments, percore::to_int(percore::ErrorCode::kBadResponse),
                          "cannot print the response as JSON: " + std::string(status.message()));
  }
  // Re-read to indent by two (protobuf's pretty printing indents by one);
  // ordered, so that fields keep their order.
  const nlohmann::ordered_json value = nlohmann::ordered_json::parse(json);
  if (arguments.json_output) {
    std::printf("%s\n", dump({{"code", 0}, {"response", value}}).c_str());
  } else {
    std::printf(
        "%s\n",
        value.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace).c_str());
  }
  return 0;
}

// -------------------------------------------------------------- describe

// The message and enum types `roots` use, transitively, outermost first
// (a nested type prints inside its outermost message).
std::vector<const void*> used_types(const std::vector<const pb::Descriptor*>& roots,
                                    std::vector<const pb::Descriptor*>* messages,
                                    std::vector<const pb::EnumDescriptor*>* enums) {
  std::set<const void*> seen;
  std::deque<const pb::Descriptor*> pending(roots.begin(), roots.end());
  std::vector<const void*> order;
  auto outermost = [](const pb::Descriptor* type) {
    while (type->containing_type() != nullptr)
      type = type->containing_type();
    return type;
  };
  while (!pending.empty()) {
    const pb::Descriptor* type = outermost(pending.front());
    pending.pop_front();
    if (!seen.insert(type).second)
      continue;
    messages->push_back(type);
    order.push_back(type);
    // Fields of the nested types too: they print with it.
    std::deque<const pb::Descriptor*> inside{type};
    while (!inside.empty()) {
      const pb::Descriptor* current = inside.front();
      inside.pop_front();
      for (int i = 0; i < current->nested_type_count(); ++i)
        inside.push_back(current->nested_type(i));
      for (int i = 0; i < current->field_count(); ++i) {
        const pb::FieldDescriptor* field = current->field(i);
        if (field->message_type() != nullptr) {
          pending.push_back(field->message_type());
        } else if (const pb::EnumDescriptor* enum_type = field->enum_type()) {
          if (enum_type->containing_type() != nullptr) {
            pending.push_back(enum_type->containing_type());
          } else if (seen.insert(enum_type).second) {
            enums->push_back(enum_type);
            order.push_back(enum_type);
          }
        }
      }
    }
  }
  return order;
}

int run_describe(const Arguments& arguments) {
  if (arguments.positional.empty() || arguments.positional.size() > 2)
    usage("expected: describe [TARGET | FILE.pb] SYMBOL");
  std::vector<std::string> descriptor_sets = arguments.descriptor_sets;
  if (arguments.positional.size() == 2) {
    // A file that exists is a descriptor set; anything else a target, which
    // is not contacted (no server reflection).
    const std::string& source = arguments.positional[0];
    struct stat info {};
    if (source.find("://") == std::string::npos && ::stat(source.c_str(), &info) == 0 &&
        S_ISREG(info.st_mode)) {
      descriptor_sets.push_back(source);
    } else if (!arguments.json_output) {
      std::fprintf(stderr,
                   "percore-cli: no server reflection: %s is not contacted; described from "
                   "the compiled-in types%s\n",
                   source.c_str(), descriptor_sets.empty() ? "" : " and the descriptor sets");
    }
  }
  const Schema schema(descriptor_sets);
  const pb::DescriptorPool& pool = schema.pool();
  const std::string symbol = dotted(arguments.positional.back());

  std::string kind;
  std::string definition;
  const pb::FileDescriptor* file = nullptr;
  std::vector<const pb::MethodDescriptor*> methods;
  std::vector<const pb::Descriptor*> roots;
  if (const pb::ServiceDescriptor* service = pool.FindServiceByName(symbol)) {
    kind = "service";
    definition = service->DebugString();
    file = service->file();
    for (int i = 0; i < service->method_count(); ++i)
      methods.push_back(service->method(i));
  } else if (const pb::MethodDescriptor* method = pool.FindMethodByName(symbol)) {
    kind = "method";
    definition = method->DebugString();
    file = method->file();
    methods.push_back(method);
  } else if (const pb::Descriptor* message = pool.FindMessageTypeByName(symbol)) {
    kind = "message";
    file = message->file();
    roots.push_back(message);
  } else if (const pb::EnumDescriptor* enum_type = pool.FindEnumTypeByName(symbol)) {
    kind = "enum";
    definition = enum_type->DebugString();
    file = enum_type->file();
  } else {
    bad_input("unknown symbol " + arguments.positional.back() +
              " (known services: " + schema.known_services() + ")");
  }
  for (const pb::MethodDescriptor* method : methods) {
    roots.push_back(method->input_type());
    roots.push_back(method->output_type());
  }
  std::vector<const pb::Descriptor*> messages;
  std::vector<const pb::EnumDescriptor*> enums;
  const std::vector<const void*> order = used_types(roots, &messages, &enums);
  auto text_of = [&](const void* type) {
    for (const pb::Descriptor* message : messages) {
      if (message == type)
        return std::make_pair(message->full_name(), message->DebugString());
    }
    for (const pb::EnumDescriptor* enum_type : enums) {
      if (enum_type == type)
        return std::make_pair(enum_type->full_name(), enum_type->DebugString());
    }
    return std::make_pair(std::string(), std::string());
  };

  if (arguments.json_output) {
    nlohmann::ordered_json json_methods = nlohmann::ordered_json::array();
    for (const pb::MethodDescriptor* method : methods) {
      json_methods.push_back({{"name", method->name()},
                              {"fullName", method->full_name()},
                              {"requestType", method->input_type()->full_name()},
                              {"responseType", method->output_type()->full_name()}});
    }
    nlohmann::ordered_json types = nlohmann::ordered_json::object();
    for (const void* type : order) {
      const auto [name, text] = text_of(type);
      types[name] = text;
    }
    nlohmann::ordered_json out = {
        {"kind", kind}, {"name", symbol}, {"file", file->name()}, {"source", schema.source(*file)}};
    if (!definition.empty())
      out["definition"] = definition;
    if (!methods.empty())
      out["methods"] = json_methods;
    out["types"] = types;
    std::printf("%s\n", dump(out).c_str());
    return 0;
  }
  std::printf("%s is a %s (%s, %s):\n", symbol.c_str(), kind.c_str(), file->name().c_str(),
              schema.source(*file).c_str());
  if (!definition.empty())
    std::printf("%s\n", definition.c_str());
  for (const void* type : order) {
    const auto [name, text] = text_of(type);
    std::printf("// %s\n%s\n", name.c_str(), text.c_str());
  }
  return 0;
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
  const Arguments arguments = parse_arguments(argc, argv);
  set_up_log(arguments.verbose);
  if (arguments.command == "list")
    return run_list(arguments);
  if (arguments.command == "call")
    return run_call(arguments);
  if (arguments.command == "describe")
    return run_describe(arguments);
  usage(arguments.command.empty() ? "expected a command: list, call or describe"
                                  : "unknown command " + arguments.command);
}
