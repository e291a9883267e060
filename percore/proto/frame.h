#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

// Constants of brpc's baidu_std framing (docs/PROTOCOL.md): a 12-byte header
// "PRPC" + body_size (uint32 BE) + meta_size (uint32 BE), then the body.
// Stream frames (brpc's streaming_rpc_protocol.cpp) share the connection and
// the header layout, with "STRM" for magic.
namespace percore {

inline constexpr size_t kFrameHeaderBytes = 12;
inline constexpr char kFrameMagic[4] = {'P', 'R', 'P', 'C'};
inline constexpr char kStreamFrameMagic[4] = {'S', 'T', 'R', 'M'};
// Default limit on body_size; both sides make it configurable.
inline constexpr size_t kDefaultMaxBodyBytes = 64u << 20;
// How far a STRM frame's body may exceed max_body_bytes: a stream call's
// answer (up to max_body_bytes) travels inside a DATA frame, whose own header
// and meta come on top.
inline constexpr size_t kStreamWrapBytes = 64;

// compress_type values of the meta (brpc's numbers), applied to the message
// only, never the attachment (docs/PROTOCOL.md). Any other value is answered
// with 1003 rather than misparsed.
enum class CompressType : int32_t { kNone = 0, kSnappy = 1, kGzip = 2, kZlib = 3 };

// What the frame decoder made of the bytes it was given; the rejections are
// also counted by ServerStats::rejected_frames (indexed by value: new values
// go at the end).
enum class DecodeStatus {
  kFrame,     // `frame` holds the next complete frame.
  kNeedMore,  // No complete frame buffered yet.
  // Rejections: the stream cannot be trusted past this point; close it.
  kBadMagic,                   // The first 4 bytes are not "PRPC" (nor an accepted "STRM").
  kBodyTooLarge,               // body_size exceeds the configured maximum.
  kMetaSizeExceedsBody,        // meta_size > body_size.
  kBadMeta,                    // The meta does not parse as RpcMeta.
  kNeitherRequestNorResponse,  // The meta sets neither, or both.
  kBadAttachmentSize,          // Negative, or more than body_size - meta_size.
  kMissingServiceOrMethod,     // A request without service_name or method_name.
  // Only from a decoder that accepts stream frames:
  kStreamFrame,    // `stream_frame` holds the next complete STRM frame.
  kBadStreamMeta,  // Rejection: the meta does not parse as StreamFrameMeta or lacks stream_id.
};

inline bool is_rejection(DecodeStatus status) {
  return status != DecodeStatus::kFrame && status != DecodeStatus::kNeedMore &&
         status != DecodeStatus::kStreamFrame;
}

// A short text for logs and error_text, e.g. "bad magic (expected PRPC)".
std::string_view decode_status_text(DecodeStatus status);

}  // namespace percore
