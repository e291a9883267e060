// WebSocketFrameWatch: the client frames RFC 6455 forbids are found with a
// close code and a reason, at the first byte that shows them; a message past
// the limit at its header; a frame or message begun and not finished keeps
// its start time, across feeds and control frames; UTF-8 split across feeds
// and frames is taken whole.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include <percore/server_io/detail/web_socket_frame_watch.h>

namespace percore::detail {
namespace {

using Clock = WebSocketFrameWatch::Clock;
using std::chrono::milliseconds;

constexpr uint8_t kMask[4] = {0x11, 0x22, 0x33, 0x44};

// A client frame: `first` is FIN, RSV and the opcode; the payload masked,
// its length in the shortest form unless `length_width` (2 or 8) says.
std::string frame(uint8_t first, const std::string& payload, int length_width = 0) {
  std::string out;
  out += static_cast<char>(first);
  const uint64_t size = payload.size();
  if (length_width == 8 || (length_width == 0 && size > 0xFFFF)) {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out += static_cast<char>((size >> shift) & 0xFF);
  } else if (length_width == 2 || (length_width == 0 && size > 125)) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(size >> 8);
    out += static_cast<char>(size & 0xFF);
  } else {
    out += static_cast<char>(0x80 | size);
  }
  for (const uint8_t byte : kMask)
    out += static_cast<char>(byte);
  for (size_t i = 0; i < payload.size(); ++i)
    out += static_cast<char>(static_cast<uint8_t>(payload[i]) ^ kMask[i % 4]);
  return out;
}

std::string close_payload(uint16_t code, const std::string& reason) {
  std::string out;
  out += static_cast<char>(code >> 8);
  out += static_cast<char>(code & 0xFF);
  return out + reason;
}

// Feeds `bytes` one at a time; returns how many passed.
size_t feed_bytewise(WebSocketFrameWatch& watch, const std::string& bytes) {
  size_t passed = 0;
  for (const char byte : bytes)
    passed += watch.feed(std::string_view(&byte, 1), Clock::now());
  return passed;
}

TEST(WebSocketFrameWatchTest, ValidFramesPassWholeAndTheCloseIsHeldBack) {
  WebSocketFrameWatch watch(1 << 20, "the limit");
  const std::string bytes = frame(0x81, "hello") + frame(0x82, std::string(300, 'b')) +
                            frame(0x82, std::string(70000, 'c')) + frame(0x89, "ping") +
                            frame(0x01, "fir") + frame(0x8A, "") + frame(0x80, "st");
  const std::string close = frame(0x88, close_payload(1000, "bye"));
  EXPECT_EQ(watch.feed(bytes + close + frame(0x81, "after"), Clock::now()), bytes.size());
  EXPECT_FALSE(watch.violation());
  EXPECT_TRUE(watch.close_received());
  EXPECT_FALSE(watch.incomplete_since());
  EXPECT_EQ(watch.feed(frame(0x81, "later"), Clock::now()), 0u);
  // A byte at a time: the close's last byte is the one held.
  WebSocketFrameWatch bytewise(1 << 20, "the limit");
  EXPECT_EQ(feed_bytewise(bytewise, bytes + close), bytes.size() + close.size() - 1);
  EXPECT_FALSE(bytewise.violation());
  EXPECT_TRUE(bytewise.close_received());
}

struct BadFrame {
  const char* name;
  std::string bytes;
  uint16_t code;
  const char* reason_part;
};

TEST(WebSocketFrameWatchTest, EachFrameTheRfcForbidsIsFoundWithItsCodeAndReason) {
  std::string unmasked = frame(0x81, "hi");
  unmasked[1] = static_cast<char>(unmasked[1] & 0x7F);
  std::string top_bit("\x82\xFF\x80", 3);
  const BadFrame cases[] = {
      {"reserved bits", frame(0xC1, "x"), 1002, "reserved bits"},
      {"reserved opcode", frame(0x83, "x"), 1002, "reserved opcode 3"},
      {"unmasked", unmasked, 1002, "unmasked"},
      {"fragmented ping", frame(0x09, "p"), 1002, "fragmented control frame"},
      {"long ping", frame(0x89, std::string(126, 'p')), 1002, "7-bit form"},
      {"short ping in 16 bits", frame(0x89, "p", 2), 1002, "7-bit form"},
      {"64-bit top bit", top_bit, 1002, "most significant bit"},
      {"16-bit not shortest", frame(0x82, "abc", 2), 1002, "shortest form"},
      {"64-bit not shortest", frame(0x82, "abc", 8), 1002, "shortest form"},
      {"continuation alone", frame(0x80, "x"), 1002, "no message begun"},
      {"message inside a message", frame(0x01, "a") + frame(0x81, "b"), 1002,
       "before the last one's final frame"},
      {"close of 1 byte", frame(0x88, "\x03"), 1002, "1 byte"},
      {"close code 1005", frame(0x88, close_payload(1005, "")), 1002, "close code 1005"},
      {"close code 2999", frame(0x88, close_payload(2999, "")), 1002, "close code 2999"},
      {"close reason not UTF-8", frame(0x88, close_payload(1000, "\xC3\x28")), 1007,
       "reason is not UTF-8"},
      {"text not UTF-8", frame(0x81, "ok \xC3\x28"), 1007, "not UTF-8"},
      {"text surrogate", frame(0x81, "\xED\xA0\x80"), 1007, "not UTF-8"},
      {"text overlong", frame(0x81, "\xC0\xAF"), 1007, "not UTF-8"},
      {"text ends mid-character", frame(0x81, "\xE2\x82"), 1007, "inside a UTF-8 sequence"},
      {"too large", frame(0x82, std::string(1025, 'x')), 1009, "exceeds 1024 bytes (the limit)"},
      {"too large in pieces", frame(0x02, std::string(1000, 'x')) + frame(0x80, std::string(25, 'y')),
       1009, "exceeds 1024 bytes (the limit)"},
  };
  for (const BadFrame& bad : cases) {
    SCOPED_TRACE(bad.name);
    for (const bool bytewise : {false, true}) {
      WebSocketFrameWatch watch(1024, "the limit");
      if (bytewise) {
        feed_bytewise(watch, bad.bytes);
      } else {
        watch.feed(bad.bytes, Clock::now());
      }
      ASSERT_TRUE(watch.violation());
      EXPECT_EQ(watch.violation()->close_code, bad.code);
      EXPECT_NE(watch.violation()->reason.find(bad.reason_part), std::string::npos)
          << watch.violation()->reason;
      EXPECT_EQ(watch.feed("\x81", Clock::now()), 0u) << "nothing passes after a violation";
    }
  }
}

TEST(WebSocketFrameWatchTest, EachFaultIsFoundAtTheFirstByteThatShowsIt) {
  struct Prefix {
    const char* name;
    std::string before;  // Whole frames first.
    std::string bytes;   // The fault shows at the last of these.
  };
  const Prefix cases[] = {
      {"reserved bits", "", "\xC1"},
      {"reserved opcode", "", "\x83"},
      {"fragmented ping", "", "\x09"},
      {"continuation alone", "", "\x80"},
      {"message inside a message", frame(0x01, "a"), "\x81"},
      {"unmasked", "", std::string("\x81\x05", 2)},
      {"close of 1 byte", "", std::string("\x88\x81", 2)},
      {"64-bit top bit", "", std::string("\x82\xFF\x80", 3)},
      {"close code", "", frame(0x88, close_payload(1005, "and more")).substr(0, 8)},
      {"close reason", "", frame(0x88, close_payload(1000, "\xFF" "and more")).substr(0, 9)},
  };
  for (const Prefix& prefix : cases) {
    SCOPED_TRACE(prefix.name);
    WebSocketFrameWatch watch(1024, "the limit");
    ASSERT_EQ(watch.feed(prefix.before, Clock::now()), prefix.before.size());
    feed_bytewise(watch, prefix.bytes.substr(0, prefix.bytes.size() - 1));
    EXPECT_FALSE(watch.violation()) << "found before its byte";
    feed_bytewise(watch, prefix.bytes.substr(prefix.bytes.size() - 1));
    EXPECT_TRUE(watch.violation()) << "not found at its byte";
  }
}

TEST(WebSocketFrameWatchTest, WhatCameBeforeTheBadFramePasses) {
  WebSocketFrameWatch watch(1024, "the limit");
  const std::string good = frame(0x81, "fine");
  EXPECT_EQ(watch.feed(good + frame(0xC1, "bad") + frame(0x81, "after"), Clock::now()),
            good.size());
  ASSERT_TRUE(watch.violation());
}

TEST(WebSocketFrameWatchTest, ATooLargeMessageIsFoundAtItsHeaderWithoutItsPayload) {
  WebSocketFrameWatch watch(1024, "the limit");
  std::string header("\x82\xFF\x00\x00\x00\x00\x40\x00\x00\x00", 10);  // 1 GiB.
  EXPECT_EQ(watch.feed(header, Clock::now()), 0u);
  ASSERT_TRUE(watch.violation());
  EXPECT_EQ(watch.violation()->close_code, 1009);
}

TEST(WebSocketFrameWatchTest, Utf8SplitAcrossFeedsAndFramesIsWhole) {
  WebSocketFrameWatch watch(1024, "the limit");
  // "€" (E2 82 AC) split across a text frame and its continuation, fed a
  // byte at a time.
  const std::string bytes = frame(0x01, "a\xE2") + frame(0x89, "") + frame(0x80, "\x82\xAC" "b");
  EXPECT_EQ(feed_bytewise(watch, bytes), bytes.size());
  EXPECT_FALSE(watch.violation());
}

TEST(WebSocketFrameWatchTest, AFrameOrMessageBegunKeepsItsStartUntilItEnds) {
  WebSocketFrameWatch watch(1024, "the limit");
  const auto start = Clock::now();
  // Half a header.
  EXPECT_EQ(watch.feed("\x81", start), 1u);
  ASSERT_TRUE(watch.incomplete_since());
  EXPECT_EQ(*watch.incomplete_since(), start);
  const std::string rest = frame(0x81, "x").substr(1);
  watch.feed(rest, start + milliseconds(5));
  EXPECT_FALSE(watch.incomplete_since());
  // A message in two frames with a ping between: timed from its first byte.
  watch.feed(frame(0x01, "a"), start + milliseconds(10));
  watch.feed(frame(0x89, "p"), start + milliseconds(20));
  ASSERT_TRUE(watch.incomplete_since());
  EXPECT_EQ(*watch.incomplete_since(), start + milliseconds(10));
  watch.restart_clock(start + milliseconds(30));
  EXPECT_EQ(*watch.incomplete_since(), start + milliseconds(30));
  watch.feed(frame(0x80, "b"), start + milliseconds(40));
  EXPECT_FALSE(watch.incomplete_since());
  // A whole ping between messages leaves no clock running.
  watch.feed(frame(0x89, "p"), start + milliseconds(50));
  EXPECT_FALSE(watch.incomplete_since());
  watch.restart_clock(start + milliseconds(60));
  EXPECT_FALSE(watch.incomplete_since());
}

}  // namespace
}  // namespace percore::detail
