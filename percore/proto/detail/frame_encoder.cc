#include <percore/proto/detail/frame_encoder.h>

#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/big_endian.h>
#include <percore/proto/detail/gather_buffer_output_stream.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/message_lite.h>

#include <algorithm>
#include <cstring>
#include <limits>

namespace percore {
namespace {

struct FrameLayout {
  size_t meta_bytes = 0;
  size_t message_bytes = 0;
  size_t body_bytes = 0;
  size_t head_bytes() const { return kFrameHeaderBytes + meta_bytes + message_bytes; }
};

// The two kinds of meta a frame is encoded with: an RpcMeta, serialized by
// protobuf, and a response's, written by ResponseMetaEncoder. plan() sets
// the attachment's size in the meta and returns (and, for protobuf, caches)
// the meta's size; write() writes that many bytes.
struct ProtobufMeta {
  wire::RpcMeta& meta;

  size_t plan(size_t attachment_bytes) {
    if (attachment_bytes == 0) {
      meta.clear_attachment_size();
    } else {
      meta.set_attachment_size(static_cast<int32_t>(attachment_bytes));
    }
    return meta.ByteSizeLong();
  }
  char* write(char* out) const {
    return reinterpret_cast<char*>(
        meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(out)));
  }
};

struct WrittenResponseMeta {
  ResponseMetaEncoder::Fields& fields;

  size_t plan(size_t attachment_bytes) {
    fields.attachment_size = static_cast<int32_t>(attachment_bytes);
    return ResponseMetaEncoder::size(fields);
  }
  char* write(char* out) const { return ResponseMetaEncoder::write(fields, out); }
};

// Sets attachment_size and computes the sizes of the frame.
template <typename Meta>
EncodeStatus plan_frame(Meta meta, size_t message_bytes, size_t attachment_bytes,
                        size_t max_body_bytes, FrameLayout& layout) {
  if (attachment_bytes > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return EncodeStatus::kBodyTooLarge;
  }
  layout.message_bytes = message_bytes;
  layout.meta_bytes = meta.plan(attachment_bytes);
  layout.body_bytes = layout.meta_bytes + layout.message_bytes + attachment_bytes;
  if (layout.body_bytes > max_body_bytes ||
      layout.body_bytes > std::numeric_limits<uint32_t>::max()) {
    return EncodeStatus::kBodyTooLarge;
  }
  return EncodeStatus::kOk;
}

// Writes header, meta and message: layout.head_bytes() bytes at `out`.
template <typename Meta>
void write_head(Meta meta, const google::protobuf::MessageLite* message,
                const FrameLayout& layout, char* out) {
  std::memcpy(out, kFrameMagic, sizeof(kFrameMagic));
  put_uint32_big_endian(out + 4, static_cast<uint32_t>(layout.body_bytes));
  put_uint32_big_endian(out + 8, static_cast<uint32_t>(layout.meta_bytes));
  char* cursor = meta.write(out + kFrameHeaderBytes);
  PERCORE_ASSERT(static_cast<size_t>(cursor - out) == kFrameHeaderBytes + layout.meta_bytes);
  // The caller's ByteSizeLong() cached the sizes this serializer relies on.
  if (message != nullptr)
    message->SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(cursor));
}

template <typename Meta>
EncodeStatus encode_message_frame(Meta meta, const google::protobuf::MessageLite* message,
                                  std::string&& attachment, size_t max_body_bytes,
                                  GatherBuffer& out) {
  FrameLayout layout;
  const EncodeStatus status =
      plan_frame(meta, message == nullptr ? 0 : message->ByteSizeLong(), attachment.size(),
                 max_body_bytes, layout);
  if (status != EncodeStatus::kOk)
    return status;
  write_head(meta, message, layout, out.append_space(layout.head_bytes()));
  if (!attachment.empty())
    out.append_owned(std::move(attachment));
  return EncodeStatus::kOk;
}

template <typename Meta>
EncodeStatus encode_message_frame_referencing(
    Meta meta, const google::protobuf::MessageLite& message,
    const std::function<std::shared_ptr<const void>()>& keep_alive, std::string&& attachment,
    size_t max_body_bytes, GatherBuffer& out) {
  FrameLayout layout;
  const EncodeStatus status =
      plan_frame(meta, message.ByteSizeLong(), attachment.size(), max_body_bytes, layout);
  if (status != EncodeStatus::kOk)
    return status;
  if (layout.message_bytes < kReferenceMessagesFrom) {
    write_head(meta, &message, layout, out.append_space(layout.head_bytes()));
  } else {
    write_head(meta, nullptr, layout, out.append_space(kFrameHeaderBytes + layout.meta_bytes));
    GatherBufferOutputStream stream(out, keep_alive());
    {
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.EnableAliasing(true);
      message.SerializeWithCachedSizes(&coded);  // Sizes cached by ByteSizeLong() above.
    }  // Gives back the unused end of the last arena space.
    PERCORE_ASSERT(static_cast<size_t>(stream.ByteCount()) == layout.message_bytes);
  }
  if (!attachment.empty())
    out.append_owned(std::move(attachment));
  return EncodeStatus::kOk;
}

template <typename Meta>
EncodeStatus encode_bytes_frame(Meta meta, std::string_view message_bytes,
                                std::string&& attachment, size_t max_body_bytes,
                                GatherBuffer& out) {
  FrameLayout layout;
  const EncodeStatus status =
      plan_frame(meta, message_bytes.size(), attachment.size(), max_body_bytes, layout);
  if (status != EncodeStatus::kOk)
    return status;
  char* head = out.append_space(layout.head_bytes());
  write_head(meta, nullptr, layout, head);
  std::memcpy(head + kFrameHeaderBytes + layout.meta_bytes, message_bytes.data(),
              message_bytes.size());
  if (!attachment.empty())
    out.append_owned(std::move(attachment));
  return EncodeStatus::kOk;
}

}  // namespace

EncodeStatus encode_frame(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out) {
  return encode_message_frame(ProtobufMeta{meta}, message, std::move(attachment), max_body_bytes,
                              out);
}

EncodeStatus encode_frame(ResponseMetaEncoder::Fields& meta,
                          const google::protobuf::MessageLite* message, std::string&& attachment,
                          size_t max_body_bytes, GatherBuffer& out) {
  return encode_message_frame(WrittenResponseMeta{meta}, message, std::move(attachment),
                              max_body_bytes, out);
}

EncodeStatus encode_frame_referencing(
    wire::RpcMeta& meta, const google::protobuf::MessageLite& message,
    const std::function<std::shared_ptr<const void>()>& keep_alive, std::string&& attachment,
    size_t max_body_bytes, GatherBuffer& out) {
  return encode_message_frame_referencing(ProtobufMeta{meta}, message, keep_alive,
                                          std::move(attachment), max_body_bytes, out);
}

EncodeStatus encode_frame_referencing(
    ResponseMetaEncoder::Fields& meta, const google::protobuf::MessageLite& message,
    const std::function<std::shared_ptr<const void>()>& keep_alive, std::string&& attachment,
    size_t max_body_bytes, GatherBuffer& out) {
  return encode_message_frame_referencing(WrittenResponseMeta{meta}, message, keep_alive,
                                          std::move(attachment), max_body_bytes, out);
}

EncodeStatus encode_frame(wire::RpcMeta& meta, std::string_view message_bytes,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out) {
  return encode_bytes_frame(ProtobufMeta{meta}, message_bytes, std::move(attachment),
                            max_body_bytes, out);
}

EncodeStatus encode_frame(ResponseMetaEncoder::Fields& meta, std::string_view message_bytes,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out) {
  return encode_bytes_frame(WrittenResponseMeta{meta}, message_bytes, std::move(attachment),
                            max_body_bytes, out);
}

EncodeStatus encode_frame_head(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                               size_t attachment_bytes, size_t max_body_bytes, std::string& out) {
  FrameLayout layout;
  const EncodeStatus status =
      plan_frame(ProtobufMeta{meta}, message == nullptr ? 0 : message->ByteSizeLong(), attachment_bytes,
                 max_body_bytes, layout);
  if (status != EncodeStatus::kOk)
    return status;
  const size_t offset = out.size();
  out.resize(offset + layout.head_bytes());
  write_head(ProtobufMeta{meta}, message, layout, out.data() + offset);
  return EncodeStatus::kOk;
}

EncodeStatus plan_request_head(const RequestMetaEncoder& meta,
                               const RequestMetaEncoder::CallFields& fields,
                               size_t message_bytes, size_t max_body_bytes,
                               RequestHeadLayout& layout) {
  layout.meta_bytes = meta.size(fields);
  layout.message_bytes = message_bytes;
  layout.body_bytes =
      layout.meta_bytes + message_bytes + static_cast<size_t>(std::max(0, fields.attachment_size));
  if (layout.body_bytes > max_body_bytes ||
      layout.body_bytes > std::numeric_limits<uint32_t>::max()) {
    return EncodeStatus::kBodyTooLarge;
  }
  return EncodeStatus::kOk;
}

namespace {

// Header and meta at `out`; returns where the message goes.
char* write_request_header_and_meta(const RequestMetaEncoder& meta,
                                    const RequestMetaEncoder::CallFields& fields,
                                    const RequestHeadLayout& layout, char* out) {
  std::memcpy(out, kFrameMagic, sizeof(kFrameMagic));
  put_uint32_big_endian(out + 4, static_cast<uint32_t>(layout.body_bytes));
  put_uint32_big_endian(out + 8, static_cast<uint32_t>(layout.meta_bytes));
  return meta.write(fields, out + kFrameHeaderBytes);
}

}  // namespace

void write_request_head(const RequestMetaEncoder& meta,
                        const RequestMetaEncoder::CallFields& fields,
                        const RequestHeadLayout& layout,
                        const google::protobuf::MessageLite& message, char* out) {
  char* cursor = write_request_header_and_meta(meta, fields, layout, out);
  // plan_request_head()'s caller took message_bytes from ByteSizeLong(),
  // which cached the sizes the serializer relies on.
  message.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(cursor));
}

void write_request_head(const RequestMetaEncoder& meta,
                        const RequestMetaEncoder::CallFields& fields,
                        const RequestHeadLayout& layout, std::string_view message_bytes,
                        char* out) {
  char* cursor = write_request_header_and_meta(meta, fields, layout, out);
  std::memcpy(cursor, message_bytes.data(), message_bytes.size());
}

namespace {

// Plans the head, appends it to `out` and writes it there; `message` is a
// MessageLite or its serialized bytes (write_request_head's overloads).
template <typename Message>
EncodeStatus append_request_head(const RequestMetaEncoder& meta,
                                 const RequestMetaEncoder::CallFields& fields,
                                 size_t message_bytes, const Message& message,
                                 size_t max_body_bytes, std::string& out) {
  RequestHeadLayout layout;
  const EncodeStatus status =
      plan_request_head(meta, fields, message_bytes, max_body_bytes, layout);
  if (status != EncodeStatus::kOk)
    return status;
  const size_t offset = out.size();
  out.resize(offset + layout.head_bytes());
  write_request_head(meta, fields, layout, message, out.data() + offset);
  return EncodeStatus::kOk;
}

}  // namespace

EncodeStatus encode_request_head(const RequestMetaEncoder& meta,
                                 const RequestMetaEncoder::CallFields& fields,
                                 const google::protobuf::MessageLite& message,
                                 size_t max_body_bytes, std::string& out) {
  return append_request_head(meta, fields, message.ByteSizeLong(), message, max_body_bytes, out);
}

EncodeStatus encode_request_head(const RequestMetaEncoder& meta,
                                 const RequestMetaEncoder::CallFields& fields,
                                 std::string_view message_bytes, size_t max_body_bytes,
                                 std::string& out) {
  return append_request_head(meta, fields, message_bytes.size(), message_bytes, max_body_bytes,
                             out);
}

}  // namespace percore
