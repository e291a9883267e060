#include <percore/server_io/detail/service_table.h>

#include <algorithm>

namespace percore::detail {

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
    auto entry = std::make_unique<MethodEntry>();
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
