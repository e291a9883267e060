#include <percore/server_io/detail/web_socket_frame_watch.h>

#include <algorithm>
#include <utility>

namespace percore::detail {
namespace {

// RFC 6455 5.2.
constexpr uint8_t kContinuation = 0x0;
constexpr uint8_t kText = 0x1;
constexpr uint8_t kBinary = 0x2;
constexpr uint8_t kClose = 0x8;
constexpr uint8_t kPing = 0x9;
constexpr uint8_t kPong = 0xA;
constexpr uint16_t kProtocolError = 1002;
constexpr uint16_t kBadPayload = 1007;
constexpr uint16_t kTooBig = 1009;

bool is_control(uint8_t opcode) { return (opcode & 0x8) != 0; }

// The close codes a peer may send (RFC 6455 7.4.1 and 7.4.2, with 1012 and
// 1013 from IANA's registry, as Beast accepts): 1004–1006 and 1015 are never
// on the wire; 1014 and 1016–2999 are reserved; 3000–4999 are applications'.
bool is_sendable_close_code(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

WebSocketFrameWatch::WebSocketFrameWatch(uint64_t max_message_bytes, std::string limit_name)
    : max_message_bytes_(max_message_bytes), limit_name_(std::move(limit_name)) {}

size_t WebSocketFrameWatch::feed(std::string_view bytes, Clock::time_point now) {
  if (violation_ || close_received_)
    return 0;
  size_t frame_start = 0;  // In `bytes`; 0 when the frame began before.
  for (size_t i = 0; i < bytes.size();) {
    if (!in_payload_) {
      if (header_bytes_ == 0) {
        frame_start = i;
        if (!incomplete_since_)
          incomplete_since_ = now;
      }
      header_[header_bytes_++] = static_cast<unsigned char>(bytes[i++]);
      on_header();
      if (violation_ || close_received_)
        return frame_start;
      continue;
    }
    const size_t take = static_cast<size_t>(std::min<uint64_t>(payload_left_, bytes.size() - i));
    if (is_control(opcode_) || text_message_) {
      for (size_t k = 0; k < take; ++k) {
        const auto byte = static_cast<unsigned char>(
            static_cast<unsigned char>(bytes[i + k]) ^ mask_[(mask_offset_ + k) % 4]);
        if (is_control(opcode_)) {
          control_payload_ += static_cast<char>(byte);
          if (opcode_ == kClose) {
            check_close_payload();
            if (violation_)
              return frame_start;
          }
        } else if (!utf8_.feed(byte)) {
          fail(kBadPayload, "a text message is not UTF-8");
          return frame_start;
        }
      }
    }
    mask_offset_ += take;
    payload_left_ -= take;
    i += take;
    if (payload_left_ == 0) {
      on_frame_end();
      if (violation_ || close_received_)
        return frame_start;
    }
  }
  return bytes.size();
}

void WebSocketFrameWatch::on_header() {
  // Each rule is checked at the first byte that can break it.
  if (header_bytes_ == 1) {
    fin_ = (header_[0] & 0x80) != 0;
    opcode_ = header_[0] & 0x0F;
    if ((header_[0] & 0x70) != 0)
      return fail(kProtocolError, "reserved bits set in a frame (no extension was negotiated)");
    if (opcode_ != kContinuation && opcode_ != kText && opcode_ != kBinary &&
        opcode_ != kClose && opcode_ != kPing && opcode_ != kPong) {
      return fail(kProtocolError, "a frame with the reserved opcode " + std::to_string(opcode_));
    }
    if (is_control(opcode_)) {
      if (!fin_)
        return fail(kProtocolError, "a fragmented control frame");
    } else if (opcode_ == kContinuation) {
      if (!in_message_)
        return fail(kProtocolError, "a continuation frame with no message begun");
    } else if (in_message_) {
      return fail(kProtocolError, "a new message began before the last one's final frame");
    }
    return;
  }
  if (header_bytes_ == 2) {
    const bool masked = (header_[1] & 0x80) != 0;
    const uint8_t length7 = header_[1] & 0x7F;
    if (!masked)
      return fail(kProtocolError, "an unmasked frame (a client masks every frame)");
    if (is_control(opcode_) && length7 > 125) {
      return fail(kProtocolError,
                  "a control frame whose length is not in the 7-bit form (at most 125 bytes)");
    }
    if (opcode_ == kClose && length7 == 1)
      return fail(kProtocolError, "a close frame of 1 byte (a code takes 2)");
    header_needed_ = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + 4;
  }
  if (header_bytes_ == 3 && (header_[1] & 0x7F) == 127 && (header_[2] & 0x80) != 0)
    return fail(kProtocolError, "a 64-bit frame length with its most significant bit set");
  if (header_bytes_ == header_needed_ - 4) {
    // The length is whole: checked before the mask key comes.
    const uint8_t length7 = header_[1] & 0x7F;
    uint64_t length = length7;
    if (length7 >= 126) {
      const size_t width = length7 == 126 ? 2 : 8;
      length = 0;
      for (size_t k = 0; k < width; ++k)
        length = (length << 8) | header_[2 + k];
      if (length < (length7 == 126 ? 126u : 65536u))
        return fail(kProtocolError, "a frame length not in its shortest form");
    }
    if (!is_control(opcode_)) {
      const uint64_t so_far = opcode_ == kContinuation ? message_bytes_ : 0;
      if (length > max_message_bytes_ - std::min(so_far, max_message_bytes_)) {
        return fail(kTooBig, "a message exceeds " + std::to_string(max_message_bytes_) +
                                 " bytes (" + limit_name_ + ")");
      }
    }
    payload_left_ = length;
  }
  if (header_bytes_ < header_needed_)
    return;
  // The whole header.
  std::copy_n(header_.begin() + static_cast<std::ptrdiff_t>(header_needed_ - 4), 4,
              mask_.begin());
  header_bytes_ = 0;
  header_needed_ = 2;
  if (!is_control(opcode_)) {
    if (opcode_ != kContinuation) {
      message_bytes_ = 0;
      text_message_ = opcode_ == kText;
      utf8_.reset();
    }
    message_bytes_ += payload_left_;
  }
  const uint64_t length = payload_left_;
  control_payload_.clear();
  close_reason_utf8_.reset();
  mask_offset_ = 0;
  in_payload_ = true;
  if (length == 0)
    on_frame_end();
}

void WebSocketFrameWatch::on_frame_end() {
  in_payload_ = false;
  if (is_control(opcode_)) {
    if (opcode_ == kClose)
      on_close_frame();
  } else if (!fin_) {
    in_message_ = true;
    return;  // The message goes on: its clock runs.
  } else {
    in_message_ = false;
    if (text_message_ && !utf8_.complete())
      return fail(kBadPayload, "a text message ends inside a UTF-8 sequence");
  }
  if (!in_message_)
    incomplete_since_.reset();
}

void WebSocketFrameWatch::check_close_payload() {
  // RFC 6455 5.5.1 and 7.4, checked as the bytes arrive.
  const size_t size = control_payload_.size();
  if (size == 2) {
    const auto code = static_cast<uint16_t>(
        (static_cast<unsigned char>(control_payload_[0]) << 8) |
        static_cast<unsigned char>(control_payload_[1]));
    if (!is_sendable_close_code(code))
      return fail(kProtocolError, "close code " + std::to_string(code) + " may not be sent");
  } else if (size > 2 && !close_reason_utf8_.feed(static_cast<unsigned char>(control_payload_.back()))) {
    return fail(kBadPayload, "a close frame's reason is not UTF-8");
  }
}

void WebSocketFrameWatch::on_close_frame() {
  if (!close_reason_utf8_.complete())
    return fail(kBadPayload, "a close frame's reason is not UTF-8");
  close_received_ = true;
}

void WebSocketFrameWatch::restart_clock(Clock::time_point now) {
  if (incomplete_since_)
    incomplete_since_ = now;
}

void WebSocketFrameWatch::fail(uint16_t close_code, std::string reason) {
  violation_ = Violation{close_code, std::move(reason)};
}

}  // namespace percore::detail
