#include <percore/server_io/detail/service_table.h>

#include <algorithm>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

namespace percore::detail {
namespace {

// The generated prototype of message `name` (empty: none, no error).
bool stream_prototype(const std::string& name, const google::protobuf::Message** prototype,
                      std::string* error) {
  *prototype = nullptr;
  if (name.empty())
    return true;
  const google::protobuf::Descriptor* descriptor =
      google::protobuf::DescriptorPool::generated_pool()->FindMessageTypeByName(name);
  if (descriptor != nullptr)
    *prototype = google::protobuf::MessageFactory::generated_factory()->GetPrototype(descriptor);
  if (*prototype == nullptr && error != nullptr) {
    *error = "no message type ";
    *error += name;
    *error += " compiled into this program (method_stream_types)";
  }
  return *prototype != nullptr;
}

}  // namespace

bool ServiceTable::add(google::protobuf::Service* service, const ServiceOptions& options,
                       std::string* error) {
  const google::protobuf::ServiceDescriptor* descriptor = service->GetDescriptor();
  if (services_.contains(descriptor->full_name())) {
    if (error != nullptr)
      *error = "service " + descriptor->full_name() + " is already added";
    return false;
  }
  std::vector<std::string> named;
  for (const auto& [method_name, mode] : options.method_modes)
    named.push_back(method_name);
  for (const auto& [method_name, limit] : options.method_max_run_ms)
    named.push_back(method_name);
  for (const auto& [method_name, types] : options.method_stream_types) {
    named.push_back(method_name);
    const google::protobuf::Message* prototype = nullptr;
    if (!stream_prototype(types.input, &prototype, error) ||
        !stream_prototype(types.output, &prototype, error)) {
      return false;
    }
  }
  for (const std::string& method_name : named) {
    if (descriptor->FindMethodByName(method_name) == nullptr) {
      if (error != nullptr) {
        *error = "service " + descriptor->full_name() + " has no method " + method_name;
      }
      return false;
    }
  }
  auto& methods = services_[descriptor->full_name()];
  for (int i = 0; i < descriptor->method_count(); ++i) {
    const google::protobuf::MethodDescriptor* method = descriptor->method(i);
    auto entry = std::make_unique<MethodEntry>(io_threads_, method_count_++);
    entry->service = service;
    entry->method = method;
    entry->request_prototype = &service->GetRequestPrototype(method);
    entry->response_prototype = &service->GetResponsePrototype(method);
    const auto mode = options.method_modes.find(method->name());
    entry->mode = mode == options.method_modes.end() ? options.default_mode : mode->second;
    const auto max_run = options.method_max_run_ms.find(method->name());
    entry->max_run_ms = std::max(
        0, max_run == options.method_max_run_ms.end() ? options.default_max_run_ms : max_run->second);
    entry->full_name = method->full_name();
    if (const auto types = options.method_stream_types.find(method->name());
        types != options.method_stream_types.end()) {
      stream_prototype(types->second.input, &entry->stream_input_prototype, nullptr);
      stream_prototype(types->second.output, &entry->stream_output_prototype, nullptr);
    }
    methods.emplace(method->name(), std::move(entry));
  }
  return true;
}

void ServiceTable::adopt(std::unique_ptr<google::protobuf::Service> service) {
  owned_.push_back(std::move(service));
}

const std::unordered_map<std::string, std::unique_ptr<MethodEntry>>* ServiceTable::find_service(
    const std::string& service_name) const {
  const auto found = services_.find(service_name);
  return found == services_.end() ? nullptr : &found->second;
}

MethodEntry* ServiceTable::find_method(
    const std::unordered_map<std::string, std::unique_ptr<MethodEntry>>& methods,
    const std::string& method_name) {
  const auto found = methods.find(method_name);
  return found == methods.end() ? nullptr : found->second.get();
}

}  // namespace percore::detail
