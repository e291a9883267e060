#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <percore/proto/frame.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/request_meta_encoder.h>
#include <percore/proto/detail/response_meta_encoder.h>
#include <percore/proto/rpc_meta.pb.h>

namespace google::protobuf {
class MessageLite;
}

namespace percore {

enum class EncodeStatus {
  kOk,
  // body_size would exceed the limit; nothing was appended.
  kBodyTooLarge,
};

// Appends one baidu_std frame to `out`: header, meta, message, attachment.
// The meta and the message are serialized once, straight into the buffer;
// the attachment is moved in (large ones are referenced, not copied).
// Sets meta.attachment_size from `attachment` (cleared when empty).
// `message` may be null for a frame without a message (an error response).
// The message must already be initialized (required fields set): checking is
// the caller's business, since the answer to a missing field differs by side.
// Any thread; touches only its arguments.
EncodeStatus encode_frame(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out);
// The same for a response whose meta ResponseMetaEncoder writes (the
// server's per-call path, no RpcMeta built); sets meta.attachment_size.
// Same bytes as with the equivalent RpcMeta.
EncodeStatus encode_frame(ResponseMetaEncoder::Fields& meta,
                          const google::protobuf::MessageLite* message, std::string&& attachment,
                          size_t max_body_bytes, GatherBuffer& out);

// Messages of at least this many bytes are encoded by reference by
// encode_frame_referencing().
inline constexpr size_t kReferenceMessagesFrom = 64 * 1024;

// As encode_frame(), but a message of kReferenceMessagesFrom bytes or more
// has its long string and bytes fields referenced from `out` where the
// message holds them, not copied (protobuf's aliasing serialization). Then
// `keep_alive()` is called, once, for an owner that keeps `message` alive
// and unchanged until `out` has consumed the frame. A smaller message is
// copied in, and keep_alive is not called. Any thread.
EncodeStatus encode_frame_referencing(
    wire::RpcMeta& meta, const google::protobuf::MessageLite& message,
    const std::function<std::shared_ptr<const void>()>& keep_alive, std::string&& attachment,
    size_t max_body_bytes, GatherBuffer& out);
EncodeStatus encode_frame_referencing(
    ResponseMetaEncoder::Fields& meta, const google::protobuf::MessageLite& message,
    const std::function<std::shared_ptr<const void>()>& keep_alive, std::string&& attachment,
    size_t max_body_bytes, GatherBuffer& out);

// As above, with the message already serialized (and compressed, as
// meta.compress_type says): the bytes are copied in as they are.
EncodeStatus encode_frame(wire::RpcMeta& meta, std::string_view message_bytes,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out);
EncodeStatus encode_frame(ResponseMetaEncoder::Fields& meta, std::string_view message_bytes,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out);

// Appends only the head of a frame (header, meta, message) to `out`, sized for
// an attachment of `attachment_bytes` that the caller sends right after it.
// For a sender that keeps the head and the attachment apart (the client
// proxy, which may have to send a call again). Any thread.
EncodeStatus encode_frame_head(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                               size_t attachment_bytes, size_t max_body_bytes, std::string& out);

// The sizes of a request frame's head, for writing it where the caller
// chooses (the client proxy writes a large one into an uninitialized shared
// block).
struct RequestHeadLayout {
  size_t meta_bytes = 0;
  size_t message_bytes = 0;
  size_t body_bytes = 0;  // Meta + message + attachment: the header's body_size.
  size_t head_bytes() const { return kFrameHeaderBytes + meta_bytes + message_bytes; }
};

// Plans the head of a request with `message_bytes` of message (for a
// protobuf message: its ByteSizeLong(), which caches the sizes that
// write_request_head() relies on) and fields.attachment_size of attachment.
// kBodyTooLarge when the body would exceed max_body_bytes (or 4 GiB - 1).
EncodeStatus plan_request_head(const RequestMetaEncoder& meta,
                               const RequestMetaEncoder::CallFields& fields,
                               size_t message_bytes, size_t max_body_bytes,
                               RequestHeadLayout& layout);
// Writes the planned head, layout.head_bytes() bytes, at `out`. Any thread.
void write_request_head(const RequestMetaEncoder& meta,
                        const RequestMetaEncoder::CallFields& fields,
                        const RequestHeadLayout& layout,
                        const google::protobuf::MessageLite& message, char* out);
// The same with the message already serialized (and compressed as
// fields.compress_type says).
void write_request_head(const RequestMetaEncoder& meta,
                        const RequestMetaEncoder::CallFields& fields,
                        const RequestHeadLayout& layout, std::string_view message_bytes,
                        char* out);

// The head of a request frame, its meta written by `meta` (no RpcMeta is
// built): the client's per-call path. Same bytes as encode_frame_head with
// the equivalent RpcMeta. Any thread.
EncodeStatus encode_request_head(const RequestMetaEncoder& meta,
                                 const RequestMetaEncoder::CallFields& fields,
                                 const google::protobuf::MessageLite& message,
                                 size_t max_body_bytes, std::string& out);
// The same with the message already serialized and compressed as
// fields.compress_type says. Any thread.
EncodeStatus encode_request_head(const RequestMetaEncoder& meta,
                                 const RequestMetaEncoder::CallFields& fields,
                                 std::string_view message_bytes, size_t max_body_bytes,
                                 std::string& out);

}  // namespace percore
