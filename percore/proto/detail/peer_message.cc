#include <percore/proto/detail/peer_message.h>

#include <google/protobuf/message_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <optional>

#include <percore/proto/detail/compression.h>

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

bool PeerMessageParser::parse(std::string_view bytes, CompressType type, size_t max_bytes,
                              google::protobuf::MessageLite& message, std::string* error) {
  if (type == CompressType::kNone)
    return parse(bytes, message, error);
  // Reused by the thread's next compressed message, unless it grew large.
  constexpr size_t kMaxKeptBytes = 1 << 20;
  thread_local std::string inflated;
  std::string reason;
  bool ok = decompress(type, bytes, max_bytes, inflated, &reason) == DecompressStatus::kOk;
  if (ok)
    ok = parse(inflated, message, &reason);
  if (inflated.capacity() > kMaxKeptBytes) {
    std::string().swap(inflated);
  } else {
    inflated.clear();
  }
  if (!ok && error != nullptr) {
    // Built by append: GCC 12 -O3 reports a false -Wrestrict on assigning a
    // literal to *error here.
    std::string text(1, '(');
    text.append(compress_type_name(static_cast<int32_t>(type)));
    text.append(") ");
    text.append(reason);
    error->swap(text);
  }
  return ok;
}

}  // namespace percore
