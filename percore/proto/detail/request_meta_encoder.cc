#include <percore/proto/detail/request_meta_encoder.h>

#include <algorithm>

#include <percore/proto/detail/meta_wire.h>

namespace percore {
namespace {

using namespace meta_wire;  // This file writes RpcMeta by hand.

constexpr uint8_t kRequestKey = key(1, 2);             // RpcMeta.request
constexpr uint8_t kAuthenticationDataKey = key(7, 2);  // RpcMeta.authentication_data
constexpr uint8_t kServiceNameKey = key(1, 2);         // RpcRequestMeta.service_name
constexpr uint8_t kMethodNameKey = key(2, 2);          // RpcRequestMeta.method_name
constexpr uint8_t kLogIdKey = key(3, 0);               // RpcRequestMeta.log_id
constexpr uint8_t kTraceIdKey = key(4, 0);             // RpcRequestMeta.trace_id
constexpr uint8_t kSpanIdKey = key(5, 0);              // RpcRequestMeta.span_id
constexpr uint8_t kParentSpanIdKey = key(6, 0);        // RpcRequestMeta.parent_span_id
constexpr uint8_t kTimeoutMsKey = key(8, 0);           // RpcRequestMeta.timeout_ms

size_t optional_field_size(int64_t value) {
  return value != 0 ? 1 + varint_size(as_varint(value)) : 0;
}

char* write_optional_field(uint8_t field_key, int64_t value, char* out) {
  if (value == 0)
    return out;
  *out++ = static_cast<char>(field_key);
  return write_varint(as_varint(value), out);
}

void append_length_delimited(std::string& out, uint8_t key, std::string_view bytes) {
  char buffer[10];
  out.push_back(static_cast<char>(key));
  out.append(buffer, write_varint(bytes.size(), buffer));
  out.append(bytes);
}

}  // namespace

RequestMetaEncoder::RequestMetaEncoder(std::string_view service_name,
                                       std::string_view method_name) {
  append_length_delimited(names_, kServiceNameKey, service_name);
  append_length_delimited(names_, kMethodNameKey, method_name);
}

size_t RequestMetaEncoder::request_size(const CallFields& fields) const {
  size_t bytes = names_.size();
  if (fields.log_id != 0)
    bytes += 1 + varint_size(as_varint(fields.log_id));
  if (has_trace(fields)) {
    bytes += optional_field_size(fields.trace_id) + optional_field_size(fields.span_id) +
             optional_field_size(fields.parent_span_id);
  }
  if (fields.timeout_ms != 0)
    bytes += 1 + varint_size(as_varint(fields.timeout_ms));
  return bytes;
}

size_t RequestMetaEncoder::size(const CallFields& fields) const {
  const size_t request = request_size(fields);
  size_t bytes = 1 + varint_size(request) + request;
  if (fields.compress_type != 0)
    bytes += 1 + varint_size(as_varint(fields.compress_type));
  bytes += 1 + varint_size(as_varint(fields.correlation_id));
  if (fields.attachment_size != 0)
    bytes += 1 + varint_size(as_varint(fields.attachment_size));
  if (!fields.authentication_data.empty()) {
    bytes += 1 + varint_size(fields.authentication_data.size()) +
             fields.authentication_data.size();
  }
  if (fields.stream_id != 0)
    bytes += meta_wire::stream_settings_field_size(fields.stream_id);
  return bytes;
}

char* RequestMetaEncoder::write(const CallFields& fields, char* out) const {
  *out++ = static_cast<char>(kRequestKey);
  out = write_varint(request_size(fields), out);
  out = std::copy(names_.begin(), names_.end(), out);
  if (fields.log_id != 0) {
    *out++ = static_cast<char>(kLogIdKey);
    out = write_varint(as_varint(fields.log_id), out);
  }
  if (has_trace(fields)) {
    out = write_optional_field(kTraceIdKey, fields.trace_id, out);
    out = write_optional_field(kSpanIdKey, fields.span_id, out);
    out = write_optional_field(kParentSpanIdKey, fields.parent_span_id, out);
  }
  if (fields.timeout_ms != 0) {
    *out++ = static_cast<char>(kTimeoutMsKey);
    out = write_varint(as_varint(fields.timeout_ms), out);
  }
  if (fields.compress_type != 0) {
    *out++ = static_cast<char>(kCompressTypeKey);
    out = write_varint(as_varint(fields.compress_type), out);
  }
  // Protobuf writes a set proto2 field even when it is 0.
  *out++ = static_cast<char>(kCorrelationIdKey);
  out = write_varint(as_varint(fields.correlation_id), out);
  if (fields.attachment_size != 0) {
    *out++ = static_cast<char>(kAttachmentSizeKey);
    out = write_varint(as_varint(fields.attachment_size), out);
  }
  if (!fields.authentication_data.empty()) {
    *out++ = static_cast<char>(kAuthenticationDataKey);
    out = write_varint(fields.authentication_data.size(), out);
    out = std::copy(fields.authentication_data.begin(), fields.authentication_data.end(), out);
  }
  if (fields.stream_id != 0)
    out = meta_wire::write_stream_settings_field(fields.stream_id, fields.stream_need_feedback, out);
  return out;
}

}  // namespace percore
