#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <percore/proto/frame.h>

namespace google::protobuf {
class MessageLite;
}

// The message compression of baidu_std (RpcMeta.compress_type), in brpc's
// formats (brpc src/brpc/compress.cpp, src/brpc/policy/snappy_compress.cpp,
// src/brpc/policy/gzip_compress.cpp):
//   1 snappy: snappy's raw format (a varint of the uncompressed length, then
//             snappy elements), not the framing format;
//   2 gzip:   the gzip format of RFC 1952 (header, deflate, CRC-32 and size);
//   3 zlib:   the zlib format of RFC 1950 (header, deflate, Adler-32).
// Only the message is compressed, never the meta or the attachment.
// All functions: any thread, concurrently; they touch only their arguments.
namespace percore {

// True for 0..3, the compress_type values percore implements.
bool is_supported_compress_type(int32_t value);

// "none", "snappy", "gzip", "zlib", or "unknown" for other values.
std::string_view compress_type_name(int32_t value);

// Appends `input` compressed as `type` to `out` (kNone: appended as it is).
// gzip and zlib use zlib's default level (6). False only when zlib fails
// (out of memory); `out` is then as it was.
bool compress(CompressType type, std::string_view input, std::string& out);

// Serializes `message` and appends it compressed as `type` to `out`; the
// message must be initialized. False as compress().
bool serialize_compressed(const google::protobuf::MessageLite& message, CompressType type,
                          std::string& out);

enum class DecompressStatus {
  kOk,
  kCorrupt,   // Not a valid stream of that format (or trailing bytes after it
              // that are not another stream).
  kTooLarge,  // It would decompress to more than max_bytes.
};

// Replaces `out` with `input` decompressed as `type` (kNone: copied).
// Read as brpc reads (protobuf's GzipInputStream): gzip and zlib accept
// several streams one after the other (gzip members) and make an empty
// message of empty input; bytes after a stream that are not another stream
// are refused. Empty snappy input is refused, as snappy refuses it.
// The output is bounded, whatever `input` claims:
// - zlib and gzip inflate into blocks of 256 KiB, never reallocated, sized
//   to stop at max_bytes + 1 bytes in all. So a bomb never allocates more
//   than max_bytes + 1 bytes of output (the last block is cut to fit; the
//   limit plus one 256 KiB block is a safe bound), plus zlib's state (about
//   40 KiB). A stream within the limit that fills more than one block is
//   then copied once into `out` at its exact size, so for an instant it is
//   held twice.
// - snappy: the announced length is checked against max_bytes and the
//   stream validated before the length is allocated, so corrupt input
//   costs about its own size.
// On failure `*error` (if not null) says why, e.g.
// "does not decompress as gzip: incorrect header check" or "decompresses to
// more than 1048576 bytes (max_body_bytes)"; `out` is then unspecified.
DecompressStatus decompress(CompressType type, std::string_view input, size_t max_bytes,
                            std::string& out, std::string* error);

}  // namespace percore
