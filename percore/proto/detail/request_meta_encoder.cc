#include <percore/proto/detail/request_meta_encoder.h>

#include <algorithm>

namespace percore {
namespace {

// Field keys: (number << 3) | wire type.
constexpr uint8_t kRequestKey = (1 << 3) | 2;         // RpcMeta.request
constexpr uint8_t kCompressTypeKey = (3 << 3) | 0;   // RpcMeta.compress_type
constexpr uint8_t kCorrelationIdKey = (4 << 3) | 0;   // RpcMeta.correlation_id
constexpr uint8_t kAttachmentSizeKey = (5 << 3) | 0;  // RpcMeta.attachment_size
constexpr uint8_t kAuthenticationDataKey = (7 << 3) | 2;  // RpcMeta.authentication_data
constexpr uint8_t kStreamSettingsKey = (8 << 3) | 2;  // RpcMeta.stream_settings
constexpr uint8_t kStreamIdKey = (1 << 3) | 0;        // StreamSettings.stream_id
constexpr uint8_t kNeedFeedbackKey = (2 << 3) | 0;    // StreamSettings.need_feedback
constexpr uint8_t kWritableKey = (3 << 3) | 0;        // StreamSettings.writable
constexpr uint8_t kServiceNameKey = (1 << 3) | 2;     // RpcRequestMeta.service_name
constexpr uint8_t kMethodNameKey = (2 << 3) | 2;      // RpcRequestMeta.method_name
constexpr uint8_t kLogIdKey = (3 << 3) | 0;           // RpcRequestMeta.log_id
constexpr uint8_t kTraceIdKey = (4 << 3) | 0;         // RpcRequestMeta.trace_id
constexpr uint8_t kSpanIdKey = (5 << 3) | 0;          // RpcRequestMeta.span_id
constexpr uint8_t kParentSpanIdKey = (6 << 3) | 0;    // RpcRequestMeta.parent_span_id
constexpr uint8_t kTimeoutMsKey = (8 << 3) | 0;       // RpcRequestMeta.timeout_ms

// Protobuf writes int32 and int64 as the varint of the 64-bit two's
// complement value: a negative number takes 10 bytes.
size_t varint_size(uint64_t value) {
  size_t bytes = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++bytes;
  }
  return bytes;
}

char* write_varint(uint64_t value, char* out) {
  while (value >= 0x80) {
    *out++ = static_cast<char>(value | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

uint64_t as_varint(int64_t value) {
  return static_cast<uint64_t>(value);
}

size_t optional_field_size(int64_t value) {
  return value != 0 ? 1 + varint_size(as_varint(value)) : 0;
}

char* write_optional_field(uint8_t key, int64_t value, char* out) {
  if (value == 0)
    return out;
  *out++ = static_cast<char>(key);
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
  if (fields.stream_id != 0) {
    const size_t settings = stream_settings_size(fields);
    bytes += 1 + varint_size(settings) + settings;
  }
  return bytes;
}

size_t RequestMetaEncoder::stream_settings_size(const CallFields& fields) {
  return 1 + varint_size(as_varint(fields.stream_id)) + 2 + 2;
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
  if (fields.stream_id != 0) {
    *out++ = static_cast<char>(kStreamSettingsKey);
    out = write_varint(stream_settings_size(fields), out);
    *out++ = static_cast<char>(kStreamIdKey);
    out = write_varint(as_varint(fields.stream_id), out);
    *out++ = static_cast<char>(kNeedFeedbackKey);
    *out++ = fields.stream_need_feedback ? 1 : 0;
    *out++ = static_cast<char>(kWritableKey);
    *out++ = 1;
  }
  return out;
}

}  // namespace percore
