#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <percore/base/utf8.h>

namespace percore::detail {

// Follows the frames a WebSocket client sends, from the bytes as they come
// off the socket and before Beast parses them, for what Beast does not do:
//  - a reason in every protocol close (Beast's carry the code alone);
//  - a message past the limit refused at its frame header, not after
//    `limit` bytes of it arrived;
//  - when the frame or message being received began, so that one begun and
//    never finished (a half header included) can be timed out.
// It checks what RFC 6455 5.2–5.5 and 7.4 ask of a client's frames, as a
// server that negotiated no extension: reserved bits clear, known opcodes,
// control frames unfragmented and at most 125 bytes, every frame masked,
// lengths in their shortest form with the top bit of a 64-bit one clear,
// continuations only inside a message, a close frame's code one a peer may
// send and its reason UTF-8, text messages UTF-8.
//
// Owns: the frame being read (header bytes, payload left, the mask, a
// control frame's payload), the UTF-8 state of a text message.
// Threads: one, the socket's reader (its WatchedSocket's).
class WebSocketFrameWatch {
 public:
  using Clock = std::chrono::steady_clock;

  // What ended the watch: a close code (1002, 1007, 1009) and its reason.
  struct Violation {
    uint16_t close_code = 0;
    std::string reason;
  };

  // `max_message_bytes`: the largest message (all its frames' payloads);
  // `limit_name` says where it comes from in the 1009's reason.
  WebSocketFrameWatch(uint64_t max_message_bytes, std::string limit_name);

  // Reads `bytes`, the next ones received, at `now`. Returns how many of
  // them may go on to the WebSocket: all, or once a violation is found or a
  // whole close frame came, those before that frame began.
  size_t feed(std::string_view bytes, Clock::time_point now);

  const std::optional<Violation>& violation() const { return violation_; }
  // The client's close frame came whole (and valid); nothing after it is
  // read.
  bool close_received() const { return close_received_; }
  // When the first byte of a frame not yet whole arrived, or of a message
  // whose last frame has not arrived; unset between messages.
  std::optional<Clock::time_point> incomplete_since() const { return incomplete_since_; }
  // Reading paused (the reader's choice, not the client's): a message
  // already begun is timed from `now` again.
  void restart_clock(Clock::time_point now);

 private:
  // Checks the header in header_; sets violation_ if it breaks a rule.
  void on_header();
  // The frame's payload is all here.
  void on_frame_end();
  void on_close_frame();
  // A close frame's next payload byte arrived.
  void check_close_payload();
  void fail(uint16_t close_code, std::string reason);

  const uint64_t max_message_bytes_;
  const std::string limit_name_;
  std::array<unsigned char, 14> header_{};
  size_t header_bytes_ = 0;
  size_t header_needed_ = 2;
  bool in_payload_ = false;
  uint64_t payload_left_ = 0;
  uint8_t opcode_ = 0;
  bool fin_ = false;
  std::array<unsigned char, 4> mask_{};
  uint64_t mask_offset_ = 0;
  std::string control_payload_;
  bool in_message_ = false;  // A data frame without FIN came; more follow.
  bool text_message_ = false;
  uint64_t message_bytes_ = 0;
  Utf8Check utf8_;
  Utf8Check close_reason_utf8_;
  std::optional<Clock::time_point> incomplete_since_;
  std::optional<Violation> violation_;
  bool close_received_ = false;
};

}  // namespace percore::detail
