#include <percore/proto/detail/compression.h>

#include <google/protobuf/message_lite.h>
#include <snappy.h>
#include <zlib.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace percore {
namespace {

// zlib's windowBits: 15 (a 32 KiB window) for the zlib format, plus 16 for
// the gzip format (RFC 1952).
constexpr int kZlibWindowBits = 15;
constexpr int kGzipWindowBits = 15 + 16;
// Inflate output goes into blocks of this size, never reallocated: a bomb
// holds at most the limit, not the limit plus a copy being grown.
constexpr size_t kInflateBlockBytes = 256 * 1024;
// The first block's least size, when the input is small: a small message
// does not pay for zeroing a whole block.
constexpr size_t kFirstInflateBytes = 16 * 1024;
// A thread's serialization buffer is kept between calls up to this size.
constexpr size_t kMaxKeptScratchBytes = 1 << 20;

// Why inflate stopped, in words.
std::string zlib_reason(const z_stream& stream, int code) {
  if (code == Z_NEED_DICT)
    return "needs a preset dictionary, which baidu_std has no way to name";
  if (stream.msg != nullptr)
    return stream.msg;
  if (code == Z_BUF_ERROR || code == Z_OK)
    return "the stream is truncated";
  std::string text = "zlib error ";
  text += std::to_string(code);
  return text;
}

std::string zlib_failure(const char* format, const z_stream& stream, int code) {
  std::string text = "does not decompress as ";
  text += format;
  text += ": ";
  text += zlib_reason(stream, code);
  return text;
}

std::string too_large(size_t max_bytes) {
  std::string text = "decompresses to more than ";
  text += std::to_string(max_bytes);
  text += " bytes (max_body_bytes)";
  return text;
}

bool deflate_into(std::string_view input, int window_bits, std::string& out) {
  z_stream stream{};
  if (deflateInit2(&stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, window_bits, 8,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  const size_t offset = out.size();
  // deflateBound() is enough for one deflate(Z_FINISH) call.
  const size_t bound = deflateBound(&stream, static_cast<uLong>(input.size()));
  out.resize(offset + bound);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  stream.avail_in = static_cast<uInt>(input.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data() + offset);
  stream.avail_out = static_cast<uInt>(bound);
  const int code = deflate(&stream, Z_FINISH);
  const size_t written = bound - stream.avail_out;
  deflateEnd(&stream);
  if (code != Z_STREAM_END) {
    out.resize(offset);
    return false;
  }
  out.resize(offset + written);
  return true;
}

DecompressStatus inflate_bounded(std::string_view input, int window_bits, const char* format,
                                 size_t max_bytes, std::string& out, std::string* error) {
  out.clear();
  // protobuf's GzipInputStream, which brpc reads with, makes an empty
  // message of empty input.
  if (input.empty())
    return DecompressStatus::kOk;
  z_stream stream{};
  if (inflateInit2(&stream, window_bits) != Z_OK) {
    if (error != nullptr)
      *error = zlib_failure(format, stream, Z_MEM_ERROR);
    return DecompressStatus::kCorrupt;
  }
  // One byte past the limit tells "exactly the limit" from "more". Blocks
  // are sized to stop there, so the output buffers never pass it.
  const size_t capacity = std::min(max_bytes, std::numeric_limits<size_t>::max() - 1) + 1;
  // The first block is `out`, so a message that fits is never copied.
  out.resize(std::min({capacity, kInflateBlockBytes,
                       std::max(kFirstInflateBytes, input.size() * 2)}));
  std::vector<std::string> more;
  std::string* block = &out;
  size_t filled = 0;    // In *block.
  size_t produced = 0;  // In all blocks.
  size_t streams = 1;
  size_t stream_start_left = input.size();
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
  stream.avail_in = static_cast<uInt>(input.size());
  int code = Z_OK;
  for (;;) {
    if (filled == block->size()) {
      if (produced == capacity)
        break;  // Full and not at the end: more than max_bytes.
      block = &more.emplace_back(std::min(kInflateBlockBytes, capacity - produced), '\0');
      filled = 0;
    }
    const size_t space = block->size() - filled;
    stream.next_out = reinterpret_cast<Bytef*>(block->data() + filled);
    stream.avail_out = static_cast<uInt>(space);
    code = inflate(&stream, Z_NO_FLUSH);
    filled += space - stream.avail_out;
    produced += space - stream.avail_out;
    if (code == Z_STREAM_END) {
      if (stream.avail_in == 0)
        break;
      // Concatenated streams (gzip members), read on as GzipInputStream does.
      ++streams;
      stream_start_left = stream.avail_in;
      code = inflateReset(&stream);
      if (code != Z_OK)
        break;
      continue;
    }
    if (code == Z_OK)
      continue;
    // Z_BUF_ERROR with output space left: the input ended early.
    if (code == Z_BUF_ERROR && stream.avail_out == 0)
      continue;
    break;
  }
  DecompressStatus status = DecompressStatus::kOk;
  if (code != Z_STREAM_END && produced == capacity) {
    status = DecompressStatus::kTooLarge;
    if (error != nullptr)
      *error = too_large(max_bytes);
  } else if (code != Z_STREAM_END) {
    status = DecompressStatus::kCorrupt;
    if (error != nullptr && streams == 1) {
      *error = zlib_failure(format, stream, code);
    } else if (error != nullptr) {
      // The bytes after a complete stream are not another one.
      *error = "does not decompress as ";
      *error += format;
      *error += ": the ";
      *error += std::to_string(stream_start_left);
      *error += " bytes after the end of the stream are not another stream (";
      *error += zlib_reason(stream, code);
      *error += ")";
    }
  } else if (produced > max_bytes) {
    status = DecompressStatus::kTooLarge;
    if (error != nullptr)
      *error = too_large(max_bytes);
  }
  inflateEnd(&stream);
  if (status != DecompressStatus::kOk) {
    out.clear();
    return status;
  }
  if (more.empty()) {
    out.resize(produced);
    return status;
  }
  // Several blocks: one exact-size copy.
  more.back().resize(filled);
  out.reserve(produced);
  for (std::string& piece : more) {
    out.append(piece);
    std::string().swap(piece);
  }
  return status;
}

DecompressStatus snappy_bounded(std::string_view input, size_t max_bytes, std::string& out,
                                std::string* error) {
  size_t length = 0;
  if (!snappy::GetUncompressedLength(input.data(), input.size(), &length)) {
    if (error != nullptr)
      *error = "does not decompress as snappy: no valid length header";
    return DecompressStatus::kCorrupt;
  }
  if (length > max_bytes) {
    if (error != nullptr) {
      *error = too_large(max_bytes);
      *error += " (the snappy header announces ";
      *error += std::to_string(length);
      *error += ")";
    }
    return DecompressStatus::kTooLarge;
  }
  // Validated before the announced length is allocated: a few bytes of
  // garbage announcing 64 MiB then cost their own size, not 64 MiB zeroed.
  if (!snappy::IsValidCompressedBuffer(input.data(), input.size())) {
    if (error != nullptr)
      *error = "does not decompress as snappy: corrupt input";
    out.clear();
    return DecompressStatus::kCorrupt;
  }
  out.resize(length);
  if (!snappy::RawUncompress(input.data(), input.size(), out.data())) {
    if (error != nullptr)
      *error = "does not decompress as snappy: corrupt input";
    out.clear();
    return DecompressStatus::kCorrupt;
  }
  return DecompressStatus::kOk;
}

}  // namespace

bool is_supported_compress_type(int32_t value) {
  return value >= static_cast<int32_t>(CompressType::kNone) &&
         value <= static_cast<int32_t>(CompressType::kZlib);
}

std::string_view compress_type_name(int32_t value) {
  switch (value) {
    case static_cast<int32_t>(CompressType::kNone):
      return "none";
    case static_cast<int32_t>(CompressType::kSnappy):
      return "snappy";
    case static_cast<int32_t>(CompressType::kGzip):
      return "gzip";
    case static_cast<int32_t>(CompressType::kZlib):
      return "zlib";
    default:
      return "unknown";
  }
}

bool compress(CompressType type, std::string_view input, std::string& out) {
  // zlib takes 32-bit lengths; frames are smaller than 4 GiB anyway.
  if (input.size() > std::numeric_limits<uInt>::max())
    return false;
  switch (type) {
    case CompressType::kNone:
      out.append(input);
      return true;
    case CompressType::kSnappy: {
      const size_t offset = out.size();
      out.resize(offset + snappy::MaxCompressedLength(input.size()));
      size_t written = 0;
      snappy::RawCompress(input.data(), input.size(), out.data() + offset, &written);
      out.resize(offset + written);
      return true;
    }
    case CompressType::kGzip:
      return deflate_into(input, kGzipWindowBits, out);
    case CompressType::kZlib:
      return deflate_into(input, kZlibWindowBits, out);
  }
  return false;
}

bool serialize_compressed(const google::protobuf::MessageLite& message, CompressType type,
                          std::string& out) {
  if (type == CompressType::kNone)
    return message.AppendToString(&out);
  thread_local std::string serialized;
  serialized.clear();
  if (!message.AppendToString(&serialized))
    return false;
  const bool ok = compress(type, serialized, out);
  if (serialized.capacity() > kMaxKeptScratchBytes)
    std::string().swap(serialized);
  return ok;
}

DecompressStatus decompress(CompressType type, std::string_view input, size_t max_bytes,
                            std::string& out, std::string* error) {
  if (input.size() > std::numeric_limits<uInt>::max()) {
    if (error != nullptr)
      *error = "compressed message larger than 4 GiB";
    return DecompressStatus::kCorrupt;
  }
  switch (type) {
    case CompressType::kNone:
      if (input.size() > max_bytes) {
        if (error != nullptr)
          *error = too_large(max_bytes);
        return DecompressStatus::kTooLarge;
      }
      out.assign(input);
      return DecompressStatus::kOk;
    case CompressType::kSnappy:
      return snappy_bounded(input, max_bytes, out, error);
    case CompressType::kGzip:
      return inflate_bounded(input, kGzipWindowBits, "gzip", max_bytes, out, error);
    case CompressType::kZlib:
      return inflate_bounded(input, kZlibWindowBits, "zlib", max_bytes, out, error);
  }
  if (error != nullptr) {
    *error = "unsupported compress_type ";
    *error += std::to_string(static_cast<int32_t>(type));
  }
  return DecompressStatus::kCorrupt;
}

}  // namespace percore
