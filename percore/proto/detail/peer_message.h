#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>

#include <percore/proto/frame.h>

namespace google::protobuf {
class MessageLite;
}

namespace percore {

// Parses messages a peer sent without letting the peer flood the log.
// protobuf writes an ERROR line of its own for some bad input (a string
// field of a proto3 message that is not UTF-8; required fields missing, with
// ParseFromArray): a peer could make one line per message. This parser
// checks required fields itself (ParsePartialFromArray, then
// IsInitialized(), no log), and once a parse through it has failed (protobuf
// may have logged that one), runs the later parses under protobuf's
// LogSilencer, which costs a global lock and so is not paid before then.
// The caller logs failures itself, rate-limited.
//
// Owns: one flag. Threads: any, concurrently.
class PeerMessageParser {
 public:
  // Parses `bytes` into `message` (cleared first). False with the reason
  // in *error, e.g. "does not parse as example.EchoRequest" or
  // "misses required fields of example.EchoRequest: message".
  bool parse(std::string_view bytes, google::protobuf::MessageLite& message, std::string* error);
  // Parses `bytes` compressed as `type` (RpcMeta.compress_type): inflated
  // first, to at most `max_bytes` (max_body_bytes), then parsed. The error
  // says which step failed: "(gzip) does not decompress as gzip: ...",
  // "(gzip) decompresses to more than N bytes (max_body_bytes)", or a
  // parse error as above. kNone parses `bytes` in place.
  bool parse(std::string_view bytes, CompressType type, size_t max_bytes,
             google::protobuf::MessageLite& message, std::string* error);

 private:
  std::atomic<bool> silence_protobuf_{false};
};

}  // namespace percore
