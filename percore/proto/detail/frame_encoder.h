#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <percore/proto/frame.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/request_meta_encoder.h>
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

// As above, with the message already serialized (and compressed, as
// meta.compress_type says): the bytes are copied in as they are.
EncodeStatus encode_frame(wire::RpcMeta& meta, std::string_view message_bytes,
                          std::string&& attachment, size_t max_body_bytes, GatherBuffer& out);

// Appends only the head of a frame (header, meta, message) to `out`, sized for
// an attachment of `attachment_bytes` that the caller sends right after it.
// For a sender that keeps the head and the attachment apart (the client
// proxy, which may have to send a call again). Any thread.
EncodeStatus encode_frame_head(wire::RpcMeta& meta, const google::protobuf::MessageLite* message,
                               size_t attachment_bytes, size_t max_body_bytes, std::string& out);

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
