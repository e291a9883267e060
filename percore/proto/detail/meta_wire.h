#pragma once

#include <cstddef>
#include <cstdint>

// Protobuf's wire format for the few RpcMeta fields the per-call paths write
// by hand (RequestMetaEncoder, ResponseMetaEncoder), byte for byte as
// protobuf 3's serializer writes them (encoding.md in protobuf's docs).
namespace percore::meta_wire {

// Field keys: (number << 3) | wire type (0: varint, 2: length-delimited).
constexpr uint8_t key(int number, int wire_type) {
  return static_cast<uint8_t>((number << 3) | wire_type);
}

// Protobuf writes int32 and int64 as the varint of the 64-bit two's
// complement value: a negative number takes 10 bytes.
inline uint64_t as_varint(int64_t value) {
  return static_cast<uint64_t>(value);
}

inline size_t varint_size(uint64_t value) {
  size_t bytes = 1;
  while (value >= 0x80) {
    value >>= 7;
    ++bytes;
  }
  return bytes;
}

inline char* write_varint(uint64_t value, char* out) {
  while (value >= 0x80) {
    *out++ = static_cast<char>(value | 0x80);
    value >>= 7;
  }
  *out++ = static_cast<char>(value);
  return out;
}

// A varint field: its key and value.
inline size_t varint_field_size(int64_t value) {
  return 1 + varint_size(as_varint(value));
}

inline char* write_varint_field(uint8_t field_key, int64_t value, char* out) {
  *out++ = static_cast<char>(field_key);
  return write_varint(as_varint(value), out);
}

// A length-delimited field of `bytes` bytes: key, length and the bytes.
inline size_t delimited_field_size(size_t bytes) {
  return 1 + varint_size(bytes) + bytes;
}

// RpcMeta's fields that requests and responses both carry.
inline constexpr uint8_t kCompressTypeKey = key(3, 0);    // RpcMeta.compress_type
inline constexpr uint8_t kCorrelationIdKey = key(4, 0);   // RpcMeta.correlation_id
inline constexpr uint8_t kAttachmentSizeKey = key(5, 0);  // RpcMeta.attachment_size

// RpcMeta.stream_settings { stream_id, need_feedback, writable: true }, as
// both sides attach a stream (brpc's StreamSettings): the field's size.
inline size_t stream_settings_body_size(int64_t stream_id) {
  return varint_field_size(stream_id) + 2 + 2;
}
inline size_t stream_settings_field_size(int64_t stream_id) {
  return delimited_field_size(stream_settings_body_size(stream_id));
}
// Writes the field; returns the end.
inline char* write_stream_settings_field(int64_t stream_id, bool need_feedback, char* out) {
  *out++ = static_cast<char>(key(8, 2));  // RpcMeta.stream_settings
  out = write_varint(stream_settings_body_size(stream_id), out);
  out = write_varint_field(key(1, 0), stream_id, out);  // StreamSettings.stream_id
  *out++ = static_cast<char>(key(2, 0));                // StreamSettings.need_feedback
  *out++ = need_feedback ? 1 : 0;
  *out++ = static_cast<char>(key(3, 0));  // StreamSettings.writable
  *out++ = 1;
  return out;
}

}  // namespace percore::meta_wire
