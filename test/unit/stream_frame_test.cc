#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/stream_frame.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/frame.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/proto/streaming_rpc_meta.pb.h>
#include "test/support/bytes.h"

namespace percore {
namespace {

using testing::flatten;
using testing::patterned_bytes;

std::string big_endian(uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  return std::string(bytes, 4);
}

// A STRM header written by hand, for frames the encoder would refuse.
std::string stream_header(uint32_t body_bytes, uint32_t meta_bytes) {
  return std::string("STRM") + big_endian(body_bytes) + big_endian(meta_bytes);
}

std::string hand_built_stream_frame(const wire::StreamFrameMeta& meta, std::string_view data) {
  const std::string meta_bytes = meta.SerializeAsString();
  return stream_header(static_cast<uint32_t>(meta_bytes.size() + data.size()),
                       static_cast<uint32_t>(meta_bytes.size())) +
         meta_bytes + std::string(data);
}

std::string encode_stream(const wire::StreamFrameMeta& meta, std::string data = {},
                          size_t max_body_bytes = kDefaultMaxBodyBytes) {
  GatherBuffer out;
  EXPECT_EQ(encode_stream_frame(meta, std::move(data), max_body_bytes, out), EncodeStatus::kOk);
  return flatten(out);
}

std::string encode_request(int64_t correlation_id, std::string_view text) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.set_correlation_id(correlation_id);
  example::EchoRequest request;
  request.set_message(std::string(text));
  GatherBuffer out;
  EXPECT_EQ(encode_frame(meta, &request, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  return flatten(out);
}

FrameDecoderOptions accepting(size_t max_body_bytes = kDefaultMaxBodyBytes) {
  FrameDecoderOptions options;
  options.max_body_bytes = max_body_bytes;
  options.accept_stream_frames = true;
  return options;
}

// What the decoder returned, owning its bytes.
struct Decoded {
  DecodeStatus status;
  wire::StreamFrameMeta stream_meta;  // kStreamFrame.
  std::string data;                   // kStreamFrame.
  int64_t correlation_id = 0;         // kFrame.
  std::string message;                // kFrame.
};

// Takes every complete frame out; returns the status that stopped it.
DecodeStatus drain(FrameDecoder& decoder, std::vector<Decoded>& out) {
  Frame frame;
  StreamFrame stream_frame;
  while (true) {
    const DecodeStatus status = decoder.next(frame, stream_frame);
    if (status == DecodeStatus::kStreamFrame) {
      out.push_back({status, stream_frame.meta, std::string(stream_frame.data), 0, {}});
    } else if (status == DecodeStatus::kFrame) {
      out.push_back({status, {}, {}, frame.meta.correlation_id(), std::string(frame.message)});
    } else {
      return status;
    }
  }
}

DecodeStatus decode_all(std::string_view bytes, FrameDecoderOptions options = accepting()) {
  FrameDecoder decoder(options);
  decoder.feed(bytes);
  std::vector<Decoded> frames;
  const DecodeStatus status = drain(decoder, frames);
  if (is_rejection(status)) {
    // Sticky, even with good bytes after.
    decoder.feed(encode_request(9, "x"));
    Frame frame;
    StreamFrame stream_frame;
    EXPECT_EQ(decoder.next(frame, stream_frame), status);
  }
  return status;
}

TEST(StreamFrameTest, MetasAreBrpcs) {
  const wire::StreamFrameMeta data = data_frame_meta(2, 1);
  EXPECT_EQ(data.stream_id(), 2);
  EXPECT_EQ(data.source_stream_id(), 1);
  EXPECT_EQ(data.frame_type(), wire::FRAME_TYPE_DATA);
  EXPECT_TRUE(data.has_has_continuation());  // Written even when false, as brpc does.
  EXPECT_FALSE(data.has_continuation());
  EXPECT_TRUE(data_frame_meta(2, 1, true).has_continuation());

  const wire::StreamFrameMeta feedback = feedback_frame_meta(1, 2, 5);
  EXPECT_EQ(feedback.frame_type(), wire::FRAME_TYPE_FEEDBACK);
  EXPECT_EQ(feedback.feedback().consumed_size(), 5);
  EXPECT_EQ(feedback.source_stream_id(), 2);

  const wire::StreamFrameMeta close = close_frame_meta(2, 1);
  EXPECT_EQ(close.frame_type(), wire::FRAME_TYPE_CLOSE);
  EXPECT_TRUE(close.has_source_stream_id());
  EXPECT_FALSE(close.has_feedback());

  const wire::StreamFrameMeta rst = rst_frame_meta(1);
  EXPECT_EQ(rst.frame_type(), wire::FRAME_TYPE_RST);
  EXPECT_EQ(rst.stream_id(), 1);
  EXPECT_FALSE(rst.has_source_stream_id());  // So that no RST answers an RST.
}

TEST(StreamFrameTest, EncodesHeaderMetaAndData) {
  const wire::StreamFrameMeta meta = data_frame_meta(7, 3);
  const std::string bytes = encode_stream(meta, "payload");
  const std::string meta_bytes = meta.SerializeAsString();
  EXPECT_EQ(bytes, stream_header(static_cast<uint32_t>(meta_bytes.size() + 7),
                                 static_cast<uint32_t>(meta_bytes.size())) +
                       meta_bytes + "payload");
}

TEST(StreamFrameTest, RoundTripsEveryFrameType) {
  const std::string large = patterned_bytes(100000);  // Moved in as its own chunk.
  const std::vector<std::pair<wire::StreamFrameMeta, std::string>> frames = {
      {data_frame_meta(2, 1), "hello"},
      {data_frame_meta(2, 1, true), large},
      {data_frame_meta(int64_t{1} << 40, -1), ""},
      {feedback_frame_meta(1, 2, int64_t{1} << 50), ""},
      {close_frame_meta(2, 1), ""},
      {rst_frame_meta(1), ""},
  };
  for (const auto& [meta, data] : frames) {
    SCOPED_TRACE(meta.ShortDebugString());
    const std::string bytes = encode_stream(meta, data);
    FrameDecoder decoder(accepting());
    decoder.feed(bytes);
    Frame frame;
    StreamFrame stream_frame;
    ASSERT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kStreamFrame);
    EXPECT_EQ(stream_frame.meta.SerializeAsString(), meta.SerializeAsString());
    EXPECT_EQ(stream_frame.stream_id(), meta.stream_id());
    EXPECT_EQ(stream_frame.type(), meta.frame_type());
    EXPECT_EQ(stream_frame.data, data);
    EXPECT_EQ(stream_frame.body_bytes, bytes.size() - kFrameHeaderBytes);
    EXPECT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kNeedMore);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
  }
}

TEST(StreamFrameTest, EncoderRefusesABodyOverTheLimit) {
  const wire::StreamFrameMeta meta = data_frame_meta(2, 1);
  const size_t meta_bytes = meta.ByteSizeLong();
  // Exactly at the limit: accepted.
  GatherBuffer out;
  EXPECT_EQ(encode_stream_frame(meta, std::string(10, 'x'), meta_bytes + 10, out),
            EncodeStatus::kOk);
  EXPECT_EQ(out.size(), kFrameHeaderBytes + meta_bytes + 10);
  // One byte over: refused, nothing appended.
  GatherBuffer refused;
  EXPECT_EQ(encode_stream_frame(meta, std::string(11, 'x'), meta_bytes + 10, refused),
            EncodeStatus::kBodyTooLarge);
  EXPECT_TRUE(refused.empty());
  // The meta alone past the limit.
  EXPECT_EQ(encode_stream_frame(meta, std::string(), meta_bytes - 1, refused),
            EncodeStatus::kBodyTooLarge);
  EXPECT_TRUE(refused.empty());
  // No limit at all (SIZE_MAX): the size check must not overflow.
  EXPECT_EQ(encode_stream_frame(meta, std::string(), SIZE_MAX, refused), EncodeStatus::kOk);
}

TEST(StreamFrameTest, DecoderAcceptsABodyExactlyAtTheLimitPlusTheWrapMargin) {
  // A STRM frame may exceed max_body_bytes by kStreamWrapBytes: a stream
  // call's answer (up to max_body_bytes) travels inside a DATA frame.
  const wire::StreamFrameMeta meta = data_frame_meta(2, 1);
  const std::string bytes = encode_stream(meta, std::string(200, 'm'));
  const size_t body = bytes.size() - kFrameHeaderBytes;
  EXPECT_EQ(decode_all(bytes, accepting(body - kStreamWrapBytes)), DecodeStatus::kNeedMore);
  EXPECT_EQ(decode_all(bytes, accepting(body - kStreamWrapBytes - 1)),
            DecodeStatus::kBodyTooLarge);
}

TEST(StreamFrameTest, Rejections) {
  // body_size over the maximum: rejected from the header alone.
  EXPECT_EQ(decode_all(stream_header(1001 + kStreamWrapBytes, 4), accepting(1000)),
            DecodeStatus::kBodyTooLarge);
  EXPECT_EQ(decode_all(stream_header(0xffffffffu, 4)), DecodeStatus::kBodyTooLarge);
  // meta_size over body_size.
  EXPECT_EQ(decode_all(stream_header(4, 5)), DecodeStatus::kMetaSizeExceedsBody);
  EXPECT_EQ(decode_all(stream_header(0, 1)), DecodeStatus::kMetaSizeExceedsBody);
  // A meta that does not parse.
  const std::string garbage = "\xff\xff\xff\xff\xff\xff\x01";
  EXPECT_EQ(decode_all(stream_header(7, 7) + garbage), DecodeStatus::kBadStreamMeta);
  // A truncated meta: field 1 announced as a varint, cut.
  EXPECT_EQ(decode_all(stream_header(2, 2) + "\x08\x80"), DecodeStatus::kBadStreamMeta);
  // A meta without stream_id (required in brpc), including an empty one.
  wire::StreamFrameMeta no_id;
  no_id.set_frame_type(wire::FRAME_TYPE_DATA);
  EXPECT_EQ(decode_all(hand_built_stream_frame(no_id, "x")), DecodeStatus::kBadStreamMeta);
  EXPECT_EQ(decode_all(stream_header(0, 0)), DecodeStatus::kBadStreamMeta);
  // An unknown frame type is not the decoder's business.
  wire::StreamFrameMeta unknown;
  unknown.set_stream_id(1);
  EXPECT_EQ(decode_all(hand_built_stream_frame(unknown, "")), DecodeStatus::kNeedMore);
  const std::string type_99 = std::string("\x08\x01\x18\x63", 4);
  EXPECT_EQ(decode_all(stream_header(4, 4) + type_99), DecodeStatus::kNeedMore);
}

TEST(StreamFrameTest, RejectionTexts) {
  EXPECT_EQ(decode_status_text(DecodeStatus::kStreamFrame), "stream frame");
  EXPECT_NE(decode_status_text(DecodeStatus::kBadStreamMeta).find("StreamFrameMeta"),
            std::string_view::npos);
  EXPECT_TRUE(is_rejection(DecodeStatus::kBadStreamMeta));
  EXPECT_FALSE(is_rejection(DecodeStatus::kStreamFrame));
}

TEST(StreamFrameTest, NotOptedInItIsBadMagic) {
  const std::string bytes = encode_stream(data_frame_meta(2, 1), "hello");
  FrameDecoderOptions plain;
  EXPECT_EQ(decode_all(bytes, plain), DecodeStatus::kBadMagic);
  // At once, from the first byte that differs from PRPC.
  EXPECT_EQ(decode_all("S", plain), DecodeStatus::kBadMagic);
  // The one-argument next() does not read stream frames, even opted in.
  FrameDecoder decoder(accepting());
  decoder.feed(bytes);
  Frame frame;
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kBadMagic);
  // And an opted-in decoder still turns other protocols away.
  EXPECT_EQ(decode_all("GET / HTTP/1.1\r\n\r\n"), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("STRX"), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("SX"), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("ST"), DecodeStatus::kNeedMore);
  EXPECT_EQ(decode_all("PR"), DecodeStatus::kNeedMore);
}

// A STRM frame split at every byte, with a PRPC frame on either side.
TEST(StreamFrameTest, SplitAtEveryByte) {
  const std::string data = patterned_bytes(300, 7);
  const std::string bytes = encode_request(1, "before") +
                            encode_stream(data_frame_meta(2, 1), data) + encode_request(2, "after");
  for (size_t split = 0; split <= bytes.size(); ++split) {
    SCOPED_TRACE(split);
    FrameDecoder decoder(accepting());
    std::vector<Decoded> frames;
    decoder.feed(std::string_view(bytes).substr(0, split));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    decoder.feed(std::string_view(bytes).substr(split));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    ASSERT_EQ(frames.size(), 3u);
    EXPECT_EQ(frames[0].status, DecodeStatus::kFrame);
    EXPECT_EQ(frames[0].correlation_id, 1);
    EXPECT_EQ(frames[1].status, DecodeStatus::kStreamFrame);
    EXPECT_EQ(frames[1].stream_meta.stream_id(), 2);
    EXPECT_EQ(frames[1].data, data);
    EXPECT_EQ(frames[2].status, DecodeStatus::kFrame);
    EXPECT_EQ(frames[2].correlation_id, 2);
  }
}

// Byte by byte: every prefix is need-more, never a rejection.
TEST(StreamFrameTest, OneByteAtATime) {
  const std::string bytes = encode_stream(feedback_frame_meta(1, 2, 12345));
  FrameDecoder decoder(accepting());
  std::vector<Decoded> frames;
  for (char byte : bytes) {
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    decoder.feed(std::string_view(&byte, 1));
  }
  ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].stream_meta.feedback().consumed_size(), 12345);
}

TEST(StreamFrameTest, InterleavedWithRpcFrames) {
  std::string bytes;
  std::vector<DecodeStatus> expected;
  for (int i = 0; i < 20; ++i) {
    if (i % 3 == 0) {
      bytes += encode_request(i, "call");
      expected.push_back(DecodeStatus::kFrame);
    } else {
      bytes += encode_stream(data_frame_meta(i, 100 + i), patterned_bytes(i * 50, i));
      expected.push_back(DecodeStatus::kStreamFrame);
    }
  }
  FrameDecoder decoder(accepting());
  // In reads of 37 bytes, as a socket might hand them over.
  std::vector<Decoded> frames;
  for (size_t at = 0; at < bytes.size(); at += 37) {
    decoder.feed(std::string_view(bytes).substr(at, 37));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
  }
  ASSERT_EQ(frames.size(), expected.size());
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE(i);
    ASSERT_EQ(frames[i].status, expected[i]);
    if (expected[i] == DecodeStatus::kFrame) {
      EXPECT_EQ(frames[i].correlation_id, i);
    } else {
      EXPECT_EQ(frames[i].stream_meta.stream_id(), i);
      EXPECT_EQ(frames[i].stream_meta.source_stream_id(), 100 + i);
      EXPECT_EQ(frames[i].data, patterned_bytes(i * 50, i));
    }
  }
}

// A bad stream frame after good frames: the good ones come out first.
TEST(StreamFrameTest, RejectionAfterGoodFrames) {
  const std::string bytes =
      encode_request(1, "a") + encode_stream(close_frame_meta(2, 1)) + stream_header(3, 4);
  FrameDecoder decoder(accepting());
  decoder.feed(bytes);
  std::vector<Decoded> frames;
  EXPECT_EQ(drain(decoder, frames), DecodeStatus::kMetaSizeExceedsBody);
  ASSERT_EQ(frames.size(), 2u);
  EXPECT_EQ(frames[1].stream_meta.frame_type(), wire::FRAME_TYPE_CLOSE);
}

// prepare() sizes its space for a STRM frame whose header is in, as for PRPC.
TEST(StreamFrameTest, PrepareGrowsTowardAWholeStreamFrame) {
  const std::string bytes = encode_stream(data_frame_meta(2, 1), patterned_bytes(200000));
  FrameDecoder decoder(accepting());
  decoder.feed(std::string_view(bytes).substr(0, 100000));
  const std::span<char> space = decoder.prepare(1);
  EXPECT_GE(space.size(), bytes.size() - 100000);
}

}  // namespace
}  // namespace percore
