#pragma once

#include <atomic>
#include <string>
#include <string_view>

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

 private:
  std::atomic<bool> silence_protobuf_{false};
};

}  // namespace percore
