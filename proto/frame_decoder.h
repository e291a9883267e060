#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "proto/frame.h"
#include "proto/rpc_meta.pb.h"

namespace percore {

enum class DecodeStatus {
  kFrame,     // `frame` holds the next complete frame.
  kNeedMore,  // No complete frame buffered yet.
  // Rejections: the stream cannot be trusted past this point; close it.
  kBadMagic,                   // The first 4 bytes are not "PRPC".
  kBodyTooLarge,               // body_size exceeds the configured maximum.
  kMetaSizeExceedsBody,        // meta_size > body_size.
  kBadMeta,                    // The meta does not parse as RpcMeta.
  kNeitherRequestNorResponse,  // The meta sets neither, or both.
  kBadAttachmentSize,          // Negative, or more than body_size - meta_size.
  kMissingServiceOrMethod,     // A request without service_name or method_name.
};

inline bool is_rejection(DecodeStatus status) {
  return status != DecodeStatus::kFrame && status != DecodeStatus::kNeedMore;
}

// A short text for logs and error_text, e.g. "bad magic (expected PRPC)".
std::string_view decode_status_text(DecodeStatus status);

// One decoded frame. The views point into the decoder's buffer and are valid
// until the decoder's next prepare(), feed() or next() call.
struct Frame {
  wire::RpcMeta meta;
  std::string_view message;     // The serialized request or response.
  std::string_view attachment;  // Raw bytes after the message.
  uint32_t body_bytes = 0;

  bool is_request() const { return meta.has_request(); }
};

struct FrameDecoderOptions {
  // Largest accepted body_size (meta + message + attachment), in bytes.
  // Default 64 MiB; a frame of exactly this size is accepted.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
};

// Incremental baidu_std decoder: bytes go in as they arrive, split anywhere;
// complete frames come out. A reader reads straight into prepare()'s space,
// so a body is copied at most once (from the kernel) before it is parsed.
// After a rejection the decoder keeps answering that rejection.
//
// Owns: its receive buffer. Threads: one owner thread at a time.
class FrameDecoder {
 public:
  explicit FrameDecoder(FrameDecoderOptions options = {});
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // Writable space of at least `min_bytes` (more when a known large frame is
  // still incomplete, so that one read can take it whole). Invalidates views.
  std::span<char> prepare(size_t min_bytes);
  // Marks `bytes` of the prepared space as filled.
  void commit(size_t bytes);
  // Copies `bytes` in: prepare + memcpy + commit.
  void feed(std::string_view bytes);

  // Decodes the next frame into `frame`, or says why not.
  DecodeStatus next(Frame& frame);

  // Bytes received but not yet returned as frames.
  size_t buffered_bytes() const { return end_ - begin_; }
  const FrameDecoderOptions& options() const { return options_; }

 private:
  DecodeStatus check_header(uint32_t& body_bytes, uint32_t& meta_bytes) const;

  FrameDecoderOptions options_;
  std::unique_ptr<char[]> buffer_;
  size_t capacity_ = 0;
  size_t begin_ = 0;                                  // First unreturned byte.
  size_t end_ = 0;                                    // One past the last received byte.
  DecodeStatus rejection_ = DecodeStatus::kNeedMore;  // Sticky once set.
};

}  // namespace percore
