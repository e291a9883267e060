#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace percore {

// Writes the RpcMeta of a request byte for byte as protobuf serializes it
// (fields in number order, the same varints), without building an RpcMeta:
// the service and method part, the same for every call of a method, is
// encoded once. A client makes one per method it calls.
// Owns: the encoded constant part. Threads: const methods from any thread.
class RequestMetaEncoder {
 public:
  struct CallFields {
    int64_t correlation_id = 0;
    int64_t log_id = 0;           // 0: absent.
    int32_t timeout_ms = 0;       // 0: absent.
    int32_t attachment_size = 0;  // 0: absent.
    int32_t compress_type = 0;    // CompressType of the message; 0: absent.
    // The call's trace; each 0: absent. Most calls carry none, and then
    // cost one test (of trace_id | span_id | parent_span_id).
    int64_t trace_id = 0;
    int64_t span_id = 0;
    int64_t parent_span_id = 0;
    // The client's stream attached to the call (RpcMeta.stream_settings:
    // stream_id, need_feedback, writable = true); 0: none.
    int64_t stream_id = 0;
    bool stream_need_feedback = false;
    // RpcMeta.authentication_data (call authentication); empty: absent. Not
    // owned: it must outlive write().
    std::string_view authentication_data{};
  };

  RequestMetaEncoder(std::string_view service_name, std::string_view method_name);

  // Bytes the meta of `fields` takes.
  size_t size(const CallFields& fields) const;
  // Writes exactly size(fields) bytes at `out`; returns the end.
  char* write(const CallFields& fields, char* out) const;

 private:
  size_t request_size(const CallFields& fields) const;
  static bool has_trace(const CallFields& fields) {
    return (fields.trace_id | fields.span_id | fields.parent_span_id) != 0;
  }

  std::string names_;  // Fields 1 and 2 of RpcRequestMeta, encoded.
};

}  // namespace percore
