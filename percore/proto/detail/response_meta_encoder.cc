#include <percore/proto/detail/response_meta_encoder.h>

#include <algorithm>

#include <percore/proto/detail/meta_wire.h>

namespace percore {
namespace {

using namespace meta_wire;  // This file writes RpcMeta by hand.

constexpr uint8_t kResponseKey = key(2, 2);   // RpcMeta.response
constexpr uint8_t kErrorCodeKey = key(1, 0);  // RpcResponseMeta.error_code
constexpr uint8_t kErrorTextKey = key(2, 2);  // RpcResponseMeta.error_text

size_t response_size(const ResponseMetaEncoder::Fields& fields) {
  if (fields.error_code == 0)
    return 0;
  return varint_field_size(fields.error_code) + delimited_field_size(fields.error_text.size());
}

}  // namespace

size_t ResponseMetaEncoder::size(const Fields& fields) {
  size_t bytes = delimited_field_size(response_size(fields));
  if (fields.compress_type != 0)
    bytes += varint_field_size(fields.compress_type);
  bytes += varint_field_size(fields.correlation_id);
  if (fields.attachment_size != 0)
    bytes += varint_field_size(fields.attachment_size);
  if (fields.stream_id != 0)
    bytes += meta_wire::stream_settings_field_size(fields.stream_id);
  return bytes;
}

char* ResponseMetaEncoder::write(const Fields& fields, char* out) {
  *out++ = static_cast<char>(kResponseKey);
  out = write_varint(response_size(fields), out);
  if (fields.error_code != 0) {
    out = write_varint_field(kErrorCodeKey, fields.error_code, out);
    *out++ = static_cast<char>(kErrorTextKey);
    out = write_varint(fields.error_text.size(), out);
    out = std::copy(fields.error_text.begin(), fields.error_text.end(), out);
  }
  if (fields.compress_type != 0)
    out = write_varint_field(kCompressTypeKey, fields.compress_type, out);
  // Protobuf writes a set proto2 field even when it is 0.
  out = write_varint_field(kCorrelationIdKey, fields.correlation_id, out);
  if (fields.attachment_size != 0)
    out = write_varint_field(kAttachmentSizeKey, fields.attachment_size, out);
  if (fields.stream_id != 0)
    out = meta_wire::write_stream_settings_field(fields.stream_id, fields.stream_need_feedback, out);
  return out;
}

}  // namespace percore
