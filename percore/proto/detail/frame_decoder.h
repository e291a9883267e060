#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include <percore/proto/detail/stream_frame.h>
#include <percore/proto/frame.h>
#include <percore/proto/rpc_meta.pb.h>

namespace percore {

// One decoded frame. The views point into the decoder's buffer and are valid
// until the decoder's next prepare(), feed() or next() call.
struct Frame {
  wire::RpcMeta meta;
  std::string_view message;     // The serialized request or response.
  std::string_view attachment;  // Raw bytes after the message.
  uint32_t body_bytes = 0;

  bool is_request() const { return meta.has_request(); }
};

// Fixed-size read buffers shared by the decoders of one thread: a decoder
// takes a block when bytes arrive and gives it back once it holds no partial
// frame (FrameDecoder::release), so an idle connection holds no read buffer
// and a busy one does not allocate per read. Keeps at most `max_cached`
// blocks; frames larger than a block get their own allocation.
//
// Owns: the cached blocks. Threads: one owner thread, with every decoder
// that uses it.
class ReadBlockPool {
 public:
  ReadBlockPool(size_t block_bytes, size_t max_cached)
      : block_bytes_(block_bytes), max_cached_(max_cached) {}
  ReadBlockPool(const ReadBlockPool&) = delete;
  ReadBlockPool& operator=(const ReadBlockPool&) = delete;

  size_t block_bytes() const { return block_bytes_; }
  std::unique_ptr<char[]> take();
  void give(std::unique_ptr<char[]> block);
  size_t cached() const { return free_.size(); }

 private:
  const size_t block_bytes_;
  const size_t max_cached_;
  std::vector<std::unique_ptr<char[]>> free_;
};

struct FrameDecoderOptions {
  // Largest accepted body_size (meta + message + attachment), in bytes.
  // Default 64 MiB; a frame of exactly this size is accepted.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  // Where buffers come from and go back to (release()); null: plain
  // allocations. Must outlive the decoder's calls to prepare() and release().
  ReadBlockPool* block_pool = nullptr;
  // Small space of the owner's (e.g. 512 bytes inside a connection object)
  // used while what is buffered fits, before any block: a quiet connection
  // reads and decodes its small requests there, with no block and no copy.
  // Must outlive the decoder. Empty: none.
  std::span<char> inline_space = {};
  // Also decode brpc's stream frames ("STRM"), for a connection that carries
  // streams; read with next(Frame&, StreamFrame&). Off: "STRM" is bad magic,
  // as it is to a peer that never opened a stream.
  bool accept_stream_frames = false;
};

// Incremental baidu_std decoder: bytes go in as they arrive, split anywhere;
// complete frames come out: PRPC frames, and STRM frames when accepted. A
// reader reads straight into prepare()'s space, so a body is copied at most
// once (from the kernel) before it is parsed.
// After a rejection the decoder keeps answering that rejection.
//
// Owns: its receive buffer. Threads: one owner thread at a time.
class FrameDecoder {
 public:
  // The largest body this decoder accepts (FrameDecoderOptions).
  size_t max_body_bytes() const { return options_.max_body_bytes; }
  explicit FrameDecoder(FrameDecoderOptions options = {});
  FrameDecoder(const FrameDecoder&) = delete;
  FrameDecoder& operator=(const FrameDecoder&) = delete;

  // Writable space of at least `min_bytes`; for a frame whose header is in,
  // more, toward the whole frame but at most three times what has arrived
  // (so a large body arrives in few reads and a header alone reserves
  // little). Invalidates views.
  std::span<char> prepare(size_t min_bytes);
  // Marks `bytes` of the prepared space as filled.
  void commit(size_t bytes);
  // Copies `bytes` in: prepare + memcpy + commit.
  void feed(std::string_view bytes);
  // Gives the buffer back (to the block pool, or to the heap) if no byte is
  // buffered; a reader calls it before it waits for more input, so that an
  // idle connection holds no buffer. Invalidates views.
  void release();
  // Forgets every buffered byte (they were another layer's: a TLS
  // ClientHello handed to the handshake), then release().
  void drop_buffered() {
    begin_ = end_;
    release();
  }

  // Decodes the next frame into `frame`, or says why not. A STRM frame is
  // bad magic here, even with accept_stream_frames: read such a decoder with
  // the overload below.
  DecodeStatus next(Frame& frame) { return next_frame(frame, nullptr); }
  // The same, a STRM frame decoded into `stream_frame` (kStreamFrame) when
  // the options accept them. Each call fills one of the two.
  DecodeStatus next(Frame& frame, StreamFrame& stream_frame) {
    return next_frame(frame, &stream_frame);
  }

  // The next frame before it is whole (next() said kNeedMore): whether its
  // 12-byte header is in (and valid), with its sizes and kind; then
  // whether its meta is in too, parsed into `meta` (false also when it does
  // not parse: next() rejects it once whole). For a server that must read
  // a request's meta before it takes the body (authentication).
  struct PendingHeader {
    uint32_t body_bytes = 0;
    uint32_t meta_bytes = 0;
    bool stream = false;
  };
  bool peek_header(PendingHeader* header) const;
  bool peek_meta(wire::RpcMeta& meta) const;

  // Bytes received but not yet returned as frames.
  size_t buffered_bytes() const { return end_ - begin_; }
  std::string_view buffered() const { return std::string_view(data_ + begin_, end_ - begin_); }
  const FrameDecoderOptions& options() const { return options_; }

 private:
  // kNeedMore when the header (or its start) is fine; `stream`: it is STRM.
  DecodeStatus check_header(uint32_t& body_bytes, uint32_t& meta_bytes, bool& stream) const;
  DecodeStatus next_frame(Frame& frame, StreamFrame* stream_frame);
  DecodeStatus next_stream_frame(StreamFrame& stream_frame, uint32_t body_bytes,
                                 uint32_t meta_bytes);

  FrameDecoderOptions options_;
  enum class Storage : uint8_t { kNone, kInline, kPool, kHeap };

  char* data_ = nullptr;           // The buffer in use (inline space, or owned_).
  std::unique_ptr<char[]> owned_;  // A pool block or a heap buffer.
  size_t capacity_ = 0;
  Storage storage_ = Storage::kNone;
  size_t begin_ = 0;                                  // First unreturned byte.
  size_t end_ = 0;                                    // One past the last received byte.
  DecodeStatus rejection_ = DecodeStatus::kNeedMore;  // Sticky once set.
};

}  // namespace percore
