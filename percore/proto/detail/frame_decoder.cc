#include <percore/proto/detail/frame_decoder.h>

#include <percore/proto/detail/big_endian.h>

#include <algorithm>
#include <cstring>

#include <percore/proto/detail/assert.h>

namespace percore {
namespace {

constexpr size_t kInitialCapacity = 16 * 1024;
// The least a partly received frame's buffer grows by.
constexpr size_t kFrameGrowthStep = 64 * 1024;
// An idle decoder whose buffer grew past this (for a large frame) gives the
// memory back.
constexpr size_t kShrinkAbove = 1 << 20;

}  // namespace

std::string_view decode_status_text(DecodeStatus status) {
  switch (status) {
    case DecodeStatus::kFrame:
      return "frame";
    case DecodeStatus::kNeedMore:
      return "need more bytes";
    case DecodeStatus::kBadMagic:
      return "bad magic (expected PRPC)";
    case DecodeStatus::kBodyTooLarge:
      return "body_size exceeds the maximum body size";
    case DecodeStatus::kMetaSizeExceedsBody:
      return "meta_size exceeds body_size";
    case DecodeStatus::kBadMeta:
      return "meta does not parse as RpcMeta";
    case DecodeStatus::kNeitherRequestNorResponse:
      return "meta is neither a request nor a response";
    case DecodeStatus::kBadAttachmentSize:
      return "attachment_size is negative or exceeds the body";
    case DecodeStatus::kMissingServiceOrMethod:
      return "request without service_name or method_name";
    case DecodeStatus::kStreamFrame:
      return "stream frame";
    case DecodeStatus::kBadStreamMeta:
      return "stream frame meta does not parse as StreamFrameMeta or has no stream_id";
  }
  return "unknown decode status";
}

std::unique_ptr<char[]> ReadBlockPool::take() {
  if (free_.empty())
    return std::make_unique_for_overwrite<char[]>(block_bytes_);
  std::unique_ptr<char[]> block = std::move(free_.back());
  free_.pop_back();
  return block;
}

void ReadBlockPool::give(std::unique_ptr<char[]> block) {
  if (free_.size() < max_cached_)
    free_.push_back(std::move(block));
}

FrameDecoder::FrameDecoder(FrameDecoderOptions options) : options_(options) {}

std::span<char> FrameDecoder::prepare(size_t min_bytes) {
  // `needed`: the free space below which the buffer grows (or compacts);
  // `wanted`: how much room a growth makes.
  size_t needed = std::max<size_t>(min_bytes, 1);
  size_t wanted = needed;
  // A frame whose header is in: make room toward all of it, but never more
  // than three times what has arrived, so that a header alone cannot make
  // the decoder reserve the body it announces (a peer sending headers only
  // must not exhaust the address space). Growth by 4x keeps the copies under
  // a third of a large frame. It grows only once the room left is under a
  // growth step: reads that take little at a time (a slow peer, TLS records
  // of 16 KiB) fill the room first, so each byte is copied a bounded number
  // of times, not once per read.
  size_t frame_rest = 0;
  uint32_t body_bytes = 0;
  uint32_t meta_bytes = 0;
  bool stream = false;
  if (buffered_bytes() >= kFrameHeaderBytes &&
      check_header(body_bytes, meta_bytes, stream) == DecodeStatus::kNeedMore) {
    const size_t frame_bytes = kFrameHeaderBytes + body_bytes;
    if (frame_bytes > buffered_bytes()) {
      frame_rest = frame_bytes - buffered_bytes();
      wanted = std::max(wanted,
                        std::min(frame_rest, std::max(3 * buffered_bytes(), kFrameGrowthStep)));
      needed = std::max(needed, std::min(frame_rest, kFrameGrowthStep));
    }
  }

  if (begin_ == end_) {
    begin_ = end_ = 0;
    if ((capacity_ > kShrinkAbove && wanted <= kInitialCapacity) ||
        (storage_ == Storage::kInline && wanted > capacity_))
      release();
  }
  ReadBlockPool* pool = options_.block_pool;
  const std::span<char> inline_space = options_.inline_space;
  if (data_ == nullptr && wanted <= inline_space.size()) {
    data_ = inline_space.data();
    capacity_ = inline_space.size();
    storage_ = Storage::kInline;
  }
  if (capacity_ - end_ < needed) {
    const size_t live = end_ - begin_;
    if (capacity_ - live >= wanted && begin_ > 0) {
      std::memmove(data_, data_ + begin_, live);
    } else {
      std::unique_ptr<char[]> grown;
      size_t capacity;
      Storage storage;
      if (pool != nullptr && storage_ != Storage::kPool && live + wanted <= pool->block_bytes()) {
        grown = pool->take();
        capacity = pool->block_bytes();
        storage = Storage::kPool;
      } else if (frame_rest > 0) {
        capacity = std::max(live + wanted, kInitialCapacity);  // Sized by the rule above.
        grown = std::make_unique_for_overwrite<char[]>(capacity);
        storage = Storage::kHeap;
      } else {
        capacity = std::max(capacity_ * 2, kInitialCapacity);
        while (capacity - live < wanted)
          capacity *= 2;
        grown = std::make_unique_for_overwrite<char[]>(capacity);
        storage = Storage::kHeap;
      }
      if (live > 0)
        std::memcpy(grown.get(), data_ + begin_, live);
      if (storage_ == Storage::kPool)
        pool->give(std::move(owned_));
      owned_ = std::move(grown);
      data_ = owned_.get();
      capacity_ = capacity;
      storage_ = storage;
    }
    begin_ = 0;
    end_ = live;
  }
  return std::span<char>(data_ + end_, capacity_ - end_);
}

void FrameDecoder::release() {
  if (begin_ != end_ || data_ == nullptr)
    return;
  if (storage_ == Storage::kPool)
    options_.block_pool->give(std::move(owned_));
  owned_.reset();
  data_ = nullptr;
  capacity_ = 0;
  begin_ = end_ = 0;
  storage_ = Storage::kNone;
}

void FrameDecoder::commit(size_t bytes) {
  PERCORE_ASSERT(end_ + bytes <= capacity_);
  end_ += bytes;
}

void FrameDecoder::feed(std::string_view bytes) {
  if (bytes.empty())
    return;
  std::span<char> space = prepare(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  commit(bytes.size());
}

DecodeStatus FrameDecoder::check_header(uint32_t& body_bytes, uint32_t& meta_bytes,
                                        bool& stream) const {
  const char* header = data_ + begin_;
  const size_t available = buffered_bytes();
  const size_t magic_bytes = std::min(available, sizeof(kFrameMagic));
  // Check the magic on a partial header too, so that a peer speaking another
  // protocol is turned away at once. STRM is looked at only when PRPC does not
  // match, so that an RPC frame costs nothing more.
  stream = false;
  if (std::memcmp(header, kFrameMagic, magic_bytes) != 0) {
    if (!options_.accept_stream_frames || std::memcmp(header, kStreamFrameMagic, magic_bytes) != 0)
      return DecodeStatus::kBadMagic;
    stream = true;
  }
  if (available < kFrameHeaderBytes)
    return DecodeStatus::kNeedMore;
  body_bytes = get_uint32_big_endian(header + 4);
  meta_bytes = get_uint32_big_endian(header + 8);
  // A STRM frame may carry a whole answer of max_body_bytes (a stream call's
  // answer travels inside DATA) plus its own header and meta.
  if (body_bytes > options_.max_body_bytes + (stream ? kStreamWrapBytes : 0))
    return DecodeStatus::kBodyTooLarge;
  if (meta_bytes > body_bytes)
    return DecodeStatus::kMetaSizeExceedsBody;
  return DecodeStatus::kNeedMore;
}

bool FrameDecoder::peek_header(PendingHeader* header) const {
  if (rejection_ != DecodeStatus::kNeedMore || buffered_bytes() < kFrameHeaderBytes)
    return false;
  return check_header(header->body_bytes, header->meta_bytes, header->stream) ==
         DecodeStatus::kNeedMore;
}

bool FrameDecoder::peek_meta(wire::RpcMeta& meta) const {
  PendingHeader header;
  if (!peek_header(&header) || header.stream ||
      buffered_bytes() < kFrameHeaderBytes + size_t{header.meta_bytes}) {
    return false;
  }
  return meta.ParseFromArray(data_ + begin_ + kFrameHeaderBytes,
                             static_cast<int>(header.meta_bytes));
}

DecodeStatus FrameDecoder::next_frame(Frame& frame, StreamFrame* stream_frame) {
  if (rejection_ != DecodeStatus::kNeedMore)
    return rejection_;
  if (begin_ == end_)
    return DecodeStatus::kNeedMore;

  uint32_t body_bytes = 0;
  uint32_t meta_bytes = 0;
  bool stream = false;
  DecodeStatus status = check_header(body_bytes, meta_bytes, stream);
  if (status != DecodeStatus::kNeedMore)
    return rejection_ = status;
  if (stream) [[unlikely]] {
    if (stream_frame == nullptr)
      return rejection_ = DecodeStatus::kBadMagic;  // A caller that reads RPC frames only.
    if (buffered_bytes() < kFrameHeaderBytes + size_t{body_bytes})
      return DecodeStatus::kNeedMore;
    return next_stream_frame(*stream_frame, body_bytes, meta_bytes);
  }
  if (buffered_bytes() < kFrameHeaderBytes + size_t{body_bytes})
    return DecodeStatus::kNeedMore;

  const char* body = data_ + begin_ + kFrameHeaderBytes;
  if (!frame.meta.ParseFromArray(body, static_cast<int>(meta_bytes))) {
    return rejection_ = DecodeStatus::kBadMeta;
  }
  const wire::RpcMeta& meta = frame.meta;
  if (meta.has_request() == meta.has_response()) {
    return rejection_ = DecodeStatus::kNeitherRequestNorResponse;
  }
  const uint32_t payload_bytes = body_bytes - meta_bytes;
  const int32_t attachment_bytes = meta.attachment_size();
  if (attachment_bytes < 0 || static_cast<uint32_t>(attachment_bytes) > payload_bytes) {
    return rejection_ = DecodeStatus::kBadAttachmentSize;
  }
  if (meta.has_request() &&
      (meta.request().service_name().empty() || meta.request().method_name().empty())) {
    return rejection_ = DecodeStatus::kMissingServiceOrMethod;
  }

  const uint32_t message_bytes = payload_bytes - static_cast<uint32_t>(attachment_bytes);
  frame.message = std::string_view(body + meta_bytes, message_bytes);
  frame.attachment = std::string_view(body + meta_bytes + message_bytes, attachment_bytes);
  frame.body_bytes = body_bytes;
  begin_ += kFrameHeaderBytes + body_bytes;
  return DecodeStatus::kFrame;
}

DecodeStatus FrameDecoder::next_stream_frame(StreamFrame& stream_frame, uint32_t body_bytes,
                                             uint32_t meta_bytes) {
  const char* body = data_ + begin_ + kFrameHeaderBytes;
  wire::StreamFrameMeta& meta = stream_frame.meta;
  // brpc drops such a frame and reads on; here, as for a bad RpcMeta, the
  // bytes past it are not trusted.
  if (!meta.ParseFromArray(body, static_cast<int>(meta_bytes)) || !meta.has_stream_id()) {
    return rejection_ = DecodeStatus::kBadStreamMeta;
  }
  // An unknown frame_type is no rejection: brpc ignores such a frame
  // (Stream::OnReceived), and so may the stream layer.
  stream_frame.data = std::string_view(body + meta_bytes, body_bytes - meta_bytes);
  stream_frame.body_bytes = body_bytes;
  begin_ += kFrameHeaderBytes + body_bytes;
  return DecodeStatus::kStreamFrame;
}

}  // namespace percore
