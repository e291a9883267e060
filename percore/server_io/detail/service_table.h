#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/service.h>

#include <atomic>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <percore/proto/detail/peer_message.h>
#include <percore/server_io/detail/answer_counters.h>
#include <percore/server_io/server.h>

namespace percore::detail {

// One hosted method: where to call it, how, and its counters.
struct MethodEntry {
  // `writers`: the server's I/O threads (AnswerCounters); `index`: see below.
  MethodEntry(int writers, size_t method_index) : index(method_index), counters(writers) {}

  // 0, 1, 2, ... in the order the server's methods were added: an I/O
  // thread's per-method state is a vector indexed by it, not a map.
  const size_t index;
  google::protobuf::Service* service = nullptr;
  const google::protobuf::MethodDescriptor* method = nullptr;
  const google::protobuf::Message* request_prototype = nullptr;
  const google::protobuf::Message* response_prototype = nullptr;
  ExecutionMode mode = ExecutionMode::kInline;
  int max_run_ms = 0;  // kProcessPool: ServiceOptions::method_max_run_ms.
  std::string full_name;  // "package.Service.Method"
  AnswerCounters counters;
  // kProcessPool: workers that died while running this method, and workers
  // killed for running past max_run_ms or the call's deadline.
  std::atomic<uint64_t> worker_crashes{0};
  std::atomic<uint64_t> worker_kills{0};
  PeerMessageParser request_parser;  // Any I/O thread.
  // ServiceOptions::method_stream_types, from the generated pool: the
  // prototypes of a WebSocket stream's messages (null: raw bytes).
  const google::protobuf::Message* stream_input_prototype = nullptr;
  const google::protobuf::Message* stream_output_prototype = nullptr;
};

// The services a server hosts, by full name. Filled before the server starts,
// read-only afterwards, so any thread may look up without a lock.
class ServiceTable {
 public:
  // `io_threads`: the server's, the writers of each method's counters.
  explicit ServiceTable(int io_threads) : io_threads_(io_threads) {}

  // Control thread, before start.
  bool add(google::protobuf::Service* service, const ServiceOptions& options, std::string* error);
  void adopt(std::unique_ptr<google::protobuf::Service> service);

  // Any thread after start. Null when unknown.
  const std::unordered_map<std::string, std::unique_ptr<MethodEntry>>* find_service(
      const std::string& service_name) const;
  static MethodEntry* find_method(
      const std::unordered_map<std::string, std::unique_ptr<MethodEntry>>& methods,
      const std::string& method_name);

  // Methods added so far (each MethodEntry::index is below it). Control
  // thread before start; any thread after.
  size_t method_count() const { return method_count_; }

  template <typename Visitor>
  void for_each_method(Visitor&& visit) const {
    for (const auto& [service_name, methods] : services_) {
      for (const auto& [method_name, entry] : methods)
        visit(*entry);
    }
  }

 private:
  const int io_threads_;
  size_t method_count_ = 0;
  // service full name -> method name -> entry
  std::unordered_map<std::string, std::unordered_map<std::string, std::unique_ptr<MethodEntry>>>
      services_;
  std::vector<std::unique_ptr<google::protobuf::Service>> owned_;
};

}  // namespace percore::detail
