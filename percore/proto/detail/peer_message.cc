#include <percore/proto/detail/peer_message.h>

#include <google/protobuf/message_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <optional>

namespace percore {

bool PeerMessageParser::parse(std::string_view bytes, google::protobuf::MessageLite& message,
                              std::string* error) {
  std::optional<google::protobuf::LogSilencer> silencer;
#if defined(NDEBUG)
  if (silence_protobuf_.load(std::memory_order_relaxed))
    silencer.emplace();
#else
  // Debug builds of generated code log every string that is not UTF-8, even
  // in messages that parse: silence always (the lock costs nothing that
  // matters in a debug build).
  silencer.emplace();
#endif
  if (!message.ParsePartialFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    silence_protobuf_.store(true, std::memory_order_relaxed);
    if (error != nullptr)
      *error = "does not parse as " + message.GetTypeName();
    return false;
  }
  if (!message.IsInitialized()) {
    if (error != nullptr) {
      *error =
          "misses required fields of " + message.GetTypeName() + ": " +
          message.InitializationErrorString();
    }
    return false;
  }
  return true;
}

}  // namespace percore
