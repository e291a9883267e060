#include "proto/frame_encoder.h"

#include <google/protobuf/message_lite.h>

#include <cstring>
#include <limits>

namespace percore {
namespace {

void put_uint32_big_endian(char* out, uint32_t value) {
  out[0] = static_cast<char>(value >> 24);
  out[1] = static_cast<char>(value >> 16);
  out[2] = static_cast<char>(value >> 8);
  out[3] = static_cast<char>(value);
}

}  // namespace

EncodeStatus encode_frame(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out) {
  const size_t message_bytes = message == nullptr ? 0 : message->ByteSizeLong();
  if (attachment.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return EncodeStatus::kBodyTooLarge;
  }
  if (attachment.empty()) {
    meta.clear_attachment_size();
  } else {
    meta.set_attachment_size(static_cast<int32_t>(attachment.size()));
  }
  const size_t meta_bytes = meta.ByteSizeLong();
  const size_t body_bytes = meta_bytes + message_bytes + attachment.size();
  if (body_bytes > max_body_bytes || body_bytes > std::numeric_limits<uint32_t>::max()) {
    return EncodeStatus::kBodyTooLarge;
  }

  char* header = out.append_space(kFrameHeaderBytes + meta_bytes + message_bytes);
  std::memcpy(header, kFrameMagic, sizeof(kFrameMagic));
  put_uint32_big_endian(header + 4, static_cast<uint32_t>(body_bytes));
  put_uint32_big_endian(header + 8, static_cast<uint32_t>(meta_bytes));
  auto* cursor = reinterpret_cast<uint8_t*>(header + kFrameHeaderBytes);
  // ByteSizeLong() above cached the sizes that these serializers rely on.
  cursor = meta.SerializeWithCachedSizesToArray(cursor);
  if (message != nullptr)
    message->SerializeWithCachedSizesToArray(cursor);
  if (!attachment.empty())
    out.append_owned(std::move(attachment));
  return EncodeStatus::kOk;
}

}  // namespace percore
