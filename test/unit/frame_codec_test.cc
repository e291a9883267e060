#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <percore/proto/echo.pb.h>
#include <percore/proto/frame.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/prime.pb.h>
#include <percore/proto/rpc_meta.pb.h>
#include "test/support/bytes.h"

namespace percore {
namespace {

using testing::flatten;
using testing::patterned_bytes;

using google::protobuf::MessageLite;
using google::protobuf::util::MessageDifferencer;

std::string big_endian(uint32_t value) {
  const char bytes[4] = {static_cast<char>(value >> 24), static_cast<char>(value >> 16),
                         static_cast<char>(value >> 8), static_cast<char>(value)};
  return std::string(bytes, 4);
}

// A header written by hand, for frames that encode_frame would refuse.
std::string header(uint32_t body_bytes, uint32_t meta_bytes) {
  return "PRPC" + big_endian(body_bytes) + big_endian(meta_bytes);
}

// Header + serialized meta + payload, sizes taken as they are: whatever
// attachment_size the meta claims is not adjusted.
std::string hand_built_frame(const wire::RpcMeta& meta, std::string_view payload) {
  const std::string meta_bytes = meta.SerializeAsString();
  return header(static_cast<uint32_t>(meta_bytes.size() + payload.size()),
                static_cast<uint32_t>(meta_bytes.size())) +
         meta_bytes + std::string(payload);
}

wire::RpcMeta request_meta(std::string_view service, std::string_view method,
                           int64_t correlation_id) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name(std::string(service));
  meta.mutable_request()->set_method_name(std::string(method));
  meta.set_correlation_id(correlation_id);
  return meta;
}

wire::RpcMeta response_meta(int64_t correlation_id, int32_t error_code = 0,
                            std::string_view error_text = {}) {
  wire::RpcMeta meta;
  meta.set_correlation_id(correlation_id);
  wire::RpcResponseMeta* response = meta.mutable_response();
  if (error_code != 0)
    response->set_error_code(error_code);
  if (!error_text.empty())
    response->set_error_text(std::string(error_text));
  return meta;
}

// A frame as it should come out of the decoder, owning its bytes.
struct DecodedFrame {
  wire::RpcMeta meta;
  std::string message;
  std::string attachment;
  uint32_t body_bytes = 0;
};

DecodedFrame copy_of(const Frame& frame) {
  return DecodedFrame{frame.meta, std::string(frame.message), std::string(frame.attachment),
                      frame.body_bytes};
}

// Encodes into `out`; returns what decoding that frame must give back.
DecodedFrame encode_into(GatherBuffer& out, wire::RpcMeta meta, const MessageLite* message,
                         std::string attachment) {
  DecodedFrame expected;
  expected.message = message == nullptr ? std::string() : message->SerializeAsString();
  expected.attachment = attachment;
  const size_t size_before = out.size();
  EXPECT_EQ(encode_frame(meta, message, std::move(attachment), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  // encode_frame fills in attachment_size; the decoder sees the result.
  expected.meta = meta;
  expected.body_bytes = static_cast<uint32_t>(out.size() - size_before - kFrameHeaderBytes);
  return expected;
}

std::string encode(wire::RpcMeta meta, const MessageLite* message, std::string attachment = {}) {
  GatherBuffer out;
  encode_into(out, std::move(meta), message, std::move(attachment));
  return flatten(out);
}

// Takes every complete frame out of the decoder; returns the status that
// stopped it.
DecodeStatus drain(FrameDecoder& decoder, std::vector<DecodedFrame>& frames) {
  Frame frame;
  DecodeStatus status;
  while ((status = decoder.next(frame)) == DecodeStatus::kFrame)
    frames.push_back(copy_of(frame));
  return status;
}

// Feeds all of `bytes` at once and drains; for the rejection tests.
DecodeStatus decode_all(std::string_view bytes, FrameDecoderOptions options = {}) {
  FrameDecoder decoder(options);
  decoder.feed(bytes);
  std::vector<DecodedFrame> frames;
  const DecodeStatus status = drain(decoder, frames);
  // Rejections are sticky: asking again, even with more bytes, changes nothing.
  if (is_rejection(status)) {
    Frame frame;
    EXPECT_EQ(decoder.next(frame), status);
    decoder.feed(encode(request_meta("example.EchoService", "Echo", 9), nullptr));
    EXPECT_EQ(decoder.next(frame), status);
  }
  return status;
}

void expect_same_frames(const std::vector<DecodedFrame>& actual,
                        const std::vector<DecodedFrame>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    EXPECT_TRUE(MessageDifferencer::Equals(actual[i].meta, expected[i].meta))
        << "frame " << i << ": " << actual[i].meta.ShortDebugString() << " vs "
        << expected[i].meta.ShortDebugString();
    EXPECT_EQ(actual[i].message, expected[i].message) << "frame " << i;
    EXPECT_EQ(actual[i].attachment, expected[i].attachment) << "frame " << i;
    EXPECT_EQ(actual[i].body_bytes, expected[i].body_bytes) << "frame " << i;
  }
}

// --- Round trips -----------------------------------------------------------

TEST(FrameCodecTest, RequestRoundTrip) {
  wire::RpcMeta meta = request_meta("example.EchoService", "Echo", 7);
  meta.mutable_request()->set_log_id(42);
  meta.mutable_request()->set_timeout_ms(500);
  meta.mutable_request()->set_trace_id(-3);
  meta.mutable_request()->set_request_id("req-1");
  example::EchoRequest request;
  request.set_message("hello");

  FrameDecoder decoder;
  decoder.feed(encode(meta, &request));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.is_request());
  EXPECT_FALSE(frame.meta.has_response());
  EXPECT_EQ(frame.meta.request().service_name(), "example.EchoService");
  EXPECT_EQ(frame.meta.request().method_name(), "Echo");
  EXPECT_EQ(frame.meta.request().log_id(), 42);
  EXPECT_EQ(frame.meta.request().timeout_ms(), 500);
  EXPECT_EQ(frame.meta.request().trace_id(), -3);
  EXPECT_EQ(frame.meta.request().request_id(), "req-1");
  EXPECT_EQ(frame.meta.correlation_id(), 7);
  EXPECT_FALSE(frame.meta.has_attachment_size());
  EXPECT_EQ(frame.meta.compress_type(), 0);
  EXPECT_TRUE(frame.attachment.empty());

  example::EchoRequest decoded;
  ASSERT_TRUE(decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(decoded.message(), "hello");
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kNeedMore);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST(FrameCodecTest, RequestWithAttachmentRoundTrip) {
  prime::IsPrimeRequest request;
  request.set_number(1000003);

  FrameDecoder decoder;
  decoder.feed(encode(request_meta("prime.PrimeService", "IsPrime", 1), &request, "ATTACH"));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.is_request());
  EXPECT_EQ(frame.meta.request().service_name(), "prime.PrimeService");
  EXPECT_EQ(frame.meta.request().method_name(), "IsPrime");
  EXPECT_EQ(frame.meta.attachment_size(), 6);
  EXPECT_EQ(frame.attachment, "ATTACH");
  prime::IsPrimeRequest decoded;
  ASSERT_TRUE(decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(decoded.number(), 1000003u);
}

TEST(FrameCodecTest, ResponseRoundTrip) {
  example::EchoResponse response;
  response.set_message("hello");

  FrameDecoder decoder;
  decoder.feed(encode(response_meta(7), &response));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_FALSE(frame.is_request());
  EXPECT_TRUE(frame.meta.has_response());
  EXPECT_EQ(frame.meta.response().error_code(), 0);
  EXPECT_EQ(frame.meta.correlation_id(), 7);
  EXPECT_TRUE(frame.attachment.empty());
  example::EchoResponse decoded;
  ASSERT_TRUE(decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(decoded.message(), "hello");
}

TEST(FrameCodecTest, ResponseWithLargeAttachmentRoundTrip) {
  // Large enough to be referenced by the GatherBuffer rather than copied.
  const std::string attachment = patterned_bytes(10000);
  prime::IsPrimeResponse response;
  response.set_is_prime(true);

  FrameDecoder decoder;
  decoder.feed(encode(response_meta(3), &response, attachment));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_FALSE(frame.is_request());
  EXPECT_EQ(frame.meta.attachment_size(), 10000);
  EXPECT_EQ(frame.attachment, attachment);
  prime::IsPrimeResponse decoded;
  ASSERT_TRUE(decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_TRUE(decoded.is_prime());
}

TEST(FrameCodecTest, ErrorResponseWithoutMessage) {
  FrameDecoder decoder;
  decoder.feed(encode(response_meta(2, 1002, "no such method"), nullptr));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.meta.response().error_code(), 1002);
  EXPECT_EQ(frame.meta.response().error_text(), "no such method");
  EXPECT_TRUE(frame.message.empty());
  EXPECT_TRUE(frame.attachment.empty());
}

TEST(FrameCodecTest, EncoderWritesTheHeader) {
  example::EchoRequest request;
  request.set_message("hello");
  wire::RpcMeta meta = request_meta("example.EchoService", "Echo", 1);
  const std::string bytes = encode(meta, &request, "xyz");
  meta.set_attachment_size(3);
  const std::string meta_bytes = meta.SerializeAsString();
  const std::string message_bytes = request.SerializeAsString();
  EXPECT_EQ(bytes, header(static_cast<uint32_t>(meta_bytes.size() + message_bytes.size() + 3),
                          static_cast<uint32_t>(meta_bytes.size())) +
                       meta_bytes + message_bytes + "xyz");
}

TEST(FrameCodecTest, EncoderSetsAndClearsAttachmentSize) {
  GatherBuffer out;
  wire::RpcMeta meta = response_meta(1);
  meta.set_attachment_size(99);  // Stale: the attachment passed decides.
  ASSERT_EQ(encode_frame(meta, nullptr, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_FALSE(meta.has_attachment_size());
  ASSERT_EQ(encode_frame(meta, nullptr, std::string(600, 'a'), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(meta.attachment_size(), 600);

  FrameDecoder decoder;
  decoder.feed(flatten(out));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.attachment.empty());
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.attachment, std::string(600, 'a'));
}

TEST(FrameCodecTest, EncodesAfterWhatTheBufferHolds) {
  GatherBuffer out;
  out.append_copy("earlier bytes");
  example::EchoRequest request;
  request.set_message("hello");
  wire::RpcMeta meta = request_meta("example.EchoService", "Echo", 1);
  ASSERT_EQ(encode_frame(meta, &request, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  const std::string bytes = flatten(out);
  ASSERT_TRUE(bytes.starts_with("earlier bytesPRPC"));
  EXPECT_EQ(bytes.substr(13), encode(request_meta("example.EchoService", "Echo", 1), &request));
}

// --- Arbitrary splits ------------------------------------------------------

// Requests and responses, small and large attachments, an empty message, an
// error response without message, and an attachment that contains "PRPC".
class FrameStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    GatherBuffer out;
    example::EchoRequest echo_request;
    echo_request.set_message("hello");
    expected_.push_back(
        encode_into(out, request_meta("example.EchoService", "Echo", 1), &echo_request, ""));

    example::EchoResponse echo_response;
    echo_response.set_message("hello");
    expected_.push_back(encode_into(out, response_meta(1), &echo_response, "ATTACH"));

    prime::IsPrimeRequest empty_request;  // number 0: serializes to no bytes.
    ASSERT_EQ(empty_request.ByteSizeLong(), 0u);
    expected_.push_back(encode_into(out, request_meta("prime.PrimeService", "IsPrime", 2),
                                    &empty_request, patterned_bytes(700)));

    expected_.push_back(encode_into(
        out, response_meta(3, 1002, "no such method: example.EchoService.Nope"), nullptr, ""));

    prime::IsPrimeResponse prime_response;
    prime_response.set_is_prime(true);
    expected_.push_back(encode_into(out, response_meta(2), &prime_response, "xxPRPCxx"));

    wire::RpcMeta traced = request_meta("example.EchoService", "Echo", 4);
    traced.mutable_request()->set_log_id(-1);
    traced.mutable_request()->set_timeout_ms(1);
    (*traced.mutable_user_fields())["key"] = "value";
    expected_.push_back(encode_into(out, traced, &echo_request, ""));

    stream_ = flatten(out);
  }

  std::vector<DecodedFrame> expected_;
  std::string stream_;
};

TEST_F(FrameStreamTest, DecodesWholeStream) {
  FrameDecoder decoder;
  decoder.feed(stream_);
  std::vector<DecodedFrame> frames;
  EXPECT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
  expect_same_frames(frames, expected_);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

TEST_F(FrameStreamTest, DecodesWhenSplitAtEveryPoint) {
  for (size_t split = 0; split <= stream_.size(); ++split) {
    SCOPED_TRACE(::testing::Message() << "split at " << split);
    FrameDecoder decoder;
    std::vector<DecodedFrame> frames;
    decoder.feed(std::string_view(stream_).substr(0, split));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    decoder.feed(std::string_view(stream_).substr(split));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    expect_same_frames(frames, expected_);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
    if (::testing::Test::HasFailure())
      break;
  }
}

// A reader as the server's: reads land in prepare()'s space (the inline
// space while the decoder is quiet, a pool block or a buffer for a large
// frame), and the buffer is released whenever nothing is buffered.
TEST_F(FrameStreamTest, DecodesThroughInlineSpaceAndPoolBlocksWhateverTheReadSizes) {
  for (const size_t read_size : {1u, 7u, 63u, 64u, 65u, 1000u, 5000u}) {
    SCOPED_TRACE(::testing::Message() << "reads of " << read_size);
    ReadBlockPool pool(1024, 2);
    char inline_space[64];
    FrameDecoder decoder(FrameDecoderOptions{kDefaultMaxBodyBytes, &pool, inline_space});
    std::vector<DecodedFrame> frames;
    size_t offset = 0;
    while (offset < stream_.size()) {
      const bool quiet = decoder.buffered_bytes() == 0;
      if (quiet)
        decoder.release();
      const std::span<char> space = decoder.prepare(quiet ? 1 : 256);
      const size_t bytes = std::min({read_size, space.size(), stream_.size() - offset});
      std::memcpy(space.data(), stream_.data() + offset, bytes);
      decoder.commit(bytes);
      offset += bytes;
      ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
    }
    expect_same_frames(frames, expected_);
    decoder.release();
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
    EXPECT_LE(pool.cached(), 2u);
  }
}

TEST(FrameDecoderStorageTest, SmallFramesAreReadAndDecodedInTheInlineSpace) {
  ReadBlockPool pool(4096, 4);
  char inline_space[512];
  FrameDecoder decoder(FrameDecoderOptions{kDefaultMaxBodyBytes, &pool, inline_space});
  example::EchoResponse response;
  response.set_message("small");
  const std::string bytes = encode(response_meta(1), &response);
  const std::span<char> space = decoder.prepare(1);
  EXPECT_EQ(space.data(), inline_space);
  EXPECT_EQ(space.size(), sizeof(inline_space));
  std::memcpy(space.data(), bytes.data(), bytes.size());
  decoder.commit(bytes.size());
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_GE(frame.message.data(), inline_space);  // Parsed in place, not copied.
  EXPECT_LT(frame.message.data(), inline_space + sizeof(inline_space));
  decoder.release();
  EXPECT_EQ(pool.cached(), 0u);  // No block was ever taken.
}

TEST(FrameDecoderStorageTest, BlockGoesBackToThePoolOnceNothingIsBuffered) {
  ReadBlockPool pool(4096, 4);
  FrameDecoder decoder(FrameDecoderOptions{kDefaultMaxBodyBytes, &pool});
  const std::span<char> first = decoder.prepare(1000);
  EXPECT_EQ(first.size(), 4096u);
  const std::string bytes = encode(response_meta(1), nullptr, "attachment");
  // Half a frame: release() must keep it.
  std::memcpy(first.data(), bytes.data(), bytes.size() / 2);
  decoder.commit(bytes.size() / 2);
  decoder.release();
  EXPECT_EQ(pool.cached(), 0u);
  const std::span<char> rest = decoder.prepare(1);
  std::memcpy(rest.data(), bytes.data() + bytes.size() / 2, bytes.size() - bytes.size() / 2);
  decoder.commit(bytes.size() - bytes.size() / 2);
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.attachment, "attachment");
  decoder.release();
  EXPECT_EQ(pool.cached(), 1u);
  EXPECT_EQ(decoder.prepare(1000).data(), first.data());  // The same block again.
}

TEST(FrameDecoderStorageTest, FrameLargerThanABlockGetsItsOwnBufferAndTheBlockGoesBack) {
  ReadBlockPool pool(4096, 4);
  FrameDecoder decoder(FrameDecoderOptions{kDefaultMaxBodyBytes, &pool});
  const std::string attachment = patterned_bytes(100000, 5);
  const std::string bytes = encode(response_meta(7), nullptr, attachment);
  std::span<char> space = decoder.prepare(1000);
  std::memcpy(space.data(), bytes.data(), 100);
  decoder.commit(100);
  size_t offset = 100;
  while (offset < bytes.size()) {
    space = decoder.prepare(1000);  // Past the block: a buffer of its own.
    const size_t taken = std::min(space.size(), bytes.size() - offset);
    std::memcpy(space.data(), bytes.data() + offset, taken);
    decoder.commit(taken);
    offset += taken;
  }
  EXPECT_EQ(pool.cached(), 1u);
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.attachment == attachment);
  decoder.release();
  EXPECT_EQ(pool.cached(), 1u);  // The large buffer was freed, not pooled.
}

// Reads that take little at a time (a TLS record, 16 KiB, per read; a slow
// peer) must not make every read move the whole partial frame: the buffer
// grows geometrically, so a large frame moves a bounded number of times.
TEST(FrameDecoderStorageTest, ALargeFrameReadInSmallPiecesMovesOnlyAFewTimes) {
  FrameDecoder decoder(FrameDecoderOptions{64u << 20});
  const std::string attachment = patterned_bytes(16u << 20, 9);
  const std::string bytes = encode(response_meta(7), nullptr, attachment);
  constexpr size_t kPiece = 16 * 1024;
  size_t offset = 0;
  int moves = 0;
  const char* next_write = nullptr;
  while (offset < bytes.size()) {
    const std::span<char> space = decoder.prepare(kPiece);
    if (next_write != nullptr && space.data() != next_write)
      ++moves;  // The partial frame was copied elsewhere.
    const size_t taken = std::min({space.size(), kPiece, bytes.size() - offset});
    std::memcpy(space.data(), bytes.data() + offset, taken);
    decoder.commit(taken);
    offset += taken;
    next_write = space.data() + taken;
  }
  // 16 MiB from 64 KiB growing 4x: about 8 growths (it was one per read,
  // 1024 of them).
  EXPECT_LE(moves, 12);
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.attachment == attachment);
}

TEST_F(FrameStreamTest, DecodesOneByteAtATime) {
  FrameDecoder decoder;
  std::vector<DecodedFrame> frames;
  for (char byte : stream_) {
    decoder.feed(std::string_view(&byte, 1));
    ASSERT_EQ(drain(decoder, frames), DecodeStatus::kNeedMore);
  }
  expect_same_frames(frames, expected_);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

// A frame is returned only once its last byte is in.
TEST_F(FrameStreamTest, FrameAppearsWithItsLastByte) {
  const size_t first_frame_bytes = kFrameHeaderBytes + expected_[0].body_bytes;
  FrameDecoder decoder;
  Frame frame;
  decoder.feed(std::string_view(stream_).substr(0, first_frame_bytes - 1));
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kNeedMore);
  EXPECT_EQ(decoder.buffered_bytes(), first_frame_bytes - 1);
  decoder.feed(std::string_view(stream_).substr(first_frame_bytes - 1, 1));
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kNeedMore);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
}

// --- Rejections ------------------------------------------------------------

TEST(FrameDecoderRejectionTest, BadMagic) {
  example::EchoRequest request;
  request.set_message("hello");
  std::string bytes = encode(request_meta("example.EchoService", "Echo", 1), &request);
  bytes[3] = 'X';
  EXPECT_EQ(decode_all(bytes), DecodeStatus::kBadMagic);
}

TEST(FrameDecoderRejectionTest, BadMagicOnAPartialHeader) {
  // Another protocol (here HTTP) is turned away from its first bytes.
  EXPECT_EQ(decode_all("GET "), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("G"), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("PRX"), DecodeStatus::kBadMagic);
  EXPECT_EQ(decode_all("GET / HTTP/1.1\r\n\r\n"), DecodeStatus::kBadMagic);
  // A correct prefix is not a rejection.
  EXPECT_EQ(decode_all("PR"), DecodeStatus::kNeedMore);
  EXPECT_EQ(decode_all(std::string_view("PRPC\0\0", 6)), DecodeStatus::kNeedMore);
}

TEST(FrameDecoderRejectionTest, BadMagicAfterAGoodFrame) {
  example::EchoRequest request;
  request.set_message("hello");
  FrameDecoder decoder;
  decoder.feed(encode(request_meta("example.EchoService", "Echo", 1), &request) + "HTTP");
  Frame frame;
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kBadMagic);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kBadMagic);
}

TEST(FrameDecoderRejectionTest, BodyTooLargeFromTheHeaderAlone) {
  EXPECT_EQ(decode_all(header(4097, 10), FrameDecoderOptions{.max_body_bytes = 4096}),
            DecodeStatus::kBodyTooLarge);
  EXPECT_EQ(decode_all(header(static_cast<uint32_t>(kDefaultMaxBodyBytes) + 1, 10)),
            DecodeStatus::kBodyTooLarge);
  EXPECT_EQ(decode_all(header(0xffffffffu, 10)), DecodeStatus::kBodyTooLarge);
  // At the default maximum the decoder waits for the body.
  EXPECT_EQ(decode_all(header(static_cast<uint32_t>(kDefaultMaxBodyBytes), 10)),
            DecodeStatus::kNeedMore);
}

TEST(FrameDecoderRejectionTest, MetaSizeExceedsBody) {
  EXPECT_EQ(decode_all(header(10, 11)), DecodeStatus::kMetaSizeExceedsBody);
  EXPECT_EQ(decode_all(header(0, 1)), DecodeStatus::kMetaSizeExceedsBody);
  // Equal sizes are fine (the rest of the meta is simply not here yet).
  EXPECT_EQ(decode_all(header(10, 10)), DecodeStatus::kNeedMore);
}

TEST(FrameDecoderRejectionTest, MetaThatDoesNotParse) {
  const std::string garbage_meta = "garbage";  // 'g' = field 12, wire type 7.
  EXPECT_EQ(decode_all(header(7, 7) + garbage_meta), DecodeStatus::kBadMeta);
  // A length-delimited field that claims more bytes than the meta has.
  const std::string truncated_meta =
      "\x0a\x10"
      "ab";
  EXPECT_EQ(decode_all(header(4, 4) + truncated_meta), DecodeStatus::kBadMeta);
  // Garbage meta followed by a message.
  EXPECT_EQ(decode_all(header(12, 7) + garbage_meta + "hello"), DecodeStatus::kBadMeta);
}

TEST(FrameDecoderRejectionTest, EmptyMetaIsNeitherRequestNorResponse) {
  EXPECT_EQ(decode_all(header(0, 0)), DecodeStatus::kNeitherRequestNorResponse);
  EXPECT_EQ(decode_all(header(5, 0) + "hello"), DecodeStatus::kNeitherRequestNorResponse);
  wire::RpcMeta meta;
  meta.set_correlation_id(1);
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kNeitherRequestNorResponse);
}

TEST(FrameDecoderRejectionTest, MetaThatIsBothRequestAndResponse) {
  wire::RpcMeta meta = request_meta("example.EchoService", "Echo", 1);
  meta.mutable_response();
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kNeitherRequestNorResponse);
}

TEST(FrameDecoderRejectionTest, NegativeAttachmentSize) {
  wire::RpcMeta meta = response_meta(1);
  meta.set_attachment_size(-1);
  EXPECT_EQ(decode_all(hand_built_frame(meta, "hello")), DecodeStatus::kBadAttachmentSize);
}

TEST(FrameDecoderRejectionTest, AttachmentSizeLargerThanPayload) {
  wire::RpcMeta meta = response_meta(1);
  meta.set_attachment_size(6);
  EXPECT_EQ(decode_all(hand_built_frame(meta, "hello")), DecodeStatus::kBadAttachmentSize);
  meta.set_attachment_size(1);
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kBadAttachmentSize);
}

TEST(FrameDecoderRejectionTest, AttachmentTakingTheWholePayloadIsAccepted) {
  wire::RpcMeta meta = response_meta(1);
  meta.set_attachment_size(5);
  FrameDecoder decoder;
  decoder.feed(hand_built_frame(meta, "hello"));
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.message.empty());
  EXPECT_EQ(frame.attachment, "hello");
}

TEST(FrameDecoderRejectionTest, RequestWithoutServiceName) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_method_name("Echo");
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kMissingServiceOrMethod);
  meta.mutable_request()->set_service_name("");
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kMissingServiceOrMethod);
}

TEST(FrameDecoderRejectionTest, RequestWithoutMethodName) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kMissingServiceOrMethod);
  meta.mutable_request()->set_method_name("");
  EXPECT_EQ(decode_all(hand_built_frame(meta, "")), DecodeStatus::kMissingServiceOrMethod);
}

TEST(FrameDecoderRejectionTest, ResponseNeedsNoServiceOrMethod) {
  EXPECT_EQ(decode_all(hand_built_frame(response_meta(1), "")), DecodeStatus::kNeedMore);
}

TEST(FrameDecoderRejectionTest, RejectionStopsTheFramesBehindIt) {
  example::EchoRequest request;
  request.set_message("hello");
  const std::string good = encode(request_meta("example.EchoService", "Echo", 1), &request);
  wire::RpcMeta bad;
  bad.mutable_request()->set_service_name("example.EchoService");
  FrameDecoder decoder;
  decoder.feed(good + hand_built_frame(bad, "") + good);
  Frame frame;
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kMissingServiceOrMethod);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kMissingServiceOrMethod);
}

TEST(FrameDecoderRejectionTest, EveryStatusHasItsOwnText) {
  const DecodeStatus statuses[] = {
      DecodeStatus::kFrame,
      DecodeStatus::kNeedMore,
      DecodeStatus::kBadMagic,
      DecodeStatus::kBodyTooLarge,
      DecodeStatus::kMetaSizeExceedsBody,
      DecodeStatus::kBadMeta,
      DecodeStatus::kNeitherRequestNorResponse,
      DecodeStatus::kBadAttachmentSize,
      DecodeStatus::kMissingServiceOrMethod,
  };
  std::set<std::string_view> texts;
  for (DecodeStatus status : statuses)
    texts.insert(decode_status_text(status));
  EXPECT_EQ(texts.size(), std::size(statuses));
  EXPECT_FALSE(is_rejection(DecodeStatus::kFrame));
  EXPECT_FALSE(is_rejection(DecodeStatus::kNeedMore));
  for (size_t i = 2; i < std::size(statuses); ++i)
    EXPECT_TRUE(is_rejection(statuses[i]));
}

// --- Maximum body size -----------------------------------------------------

constexpr size_t kSmallMax = 4096;

// The attachment length that makes the frame's body exactly `body_bytes`
// (attachment_size itself takes room in the meta, hence the loop).
size_t attachment_bytes_for_body(wire::RpcMeta meta, size_t message_bytes, size_t body_bytes) {
  size_t attachment_bytes = 0;
  for (int i = 0; i < 4; ++i) {
    meta.set_attachment_size(static_cast<int32_t>(attachment_bytes));
    attachment_bytes = body_bytes - message_bytes - meta.ByteSizeLong();
  }
  return attachment_bytes;
}

TEST(FrameMaxSizeTest, EncoderAcceptsExactlyTheMaximum) {
  example::EchoResponse response;
  response.set_message("hello");
  wire::RpcMeta meta = response_meta(1);
  const size_t attachment_bytes =
      attachment_bytes_for_body(meta, response.ByteSizeLong(), kSmallMax);

  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &response, std::string(attachment_bytes, 'a'), kSmallMax, out),
            EncodeStatus::kOk);
  EXPECT_EQ(out.size(), kFrameHeaderBytes + kSmallMax);
  EXPECT_EQ(flatten(out).substr(4, 4), big_endian(kSmallMax));
}

TEST(FrameMaxSizeTest, EncoderRefusesOneByteMoreAndAppendsNothing) {
  example::EchoResponse response;
  response.set_message("hello");
  wire::RpcMeta meta = response_meta(1);
  const size_t attachment_bytes =
      attachment_bytes_for_body(meta, response.ByteSizeLong(), kSmallMax);

  GatherBuffer out;
  out.append_copy("already queued");
  EXPECT_EQ(encode_frame(meta, &response, std::string(attachment_bytes + 1, 'a'), kSmallMax, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(flatten(out), "already queued");

  // Without an attachment, a message alone over the limit.
  example::EchoRequest request;
  request.set_message(std::string(kSmallMax, 'm'));
  wire::RpcMeta request_frame_meta = request_meta("example.EchoService", "Echo", 1);
  EXPECT_EQ(encode_frame(request_frame_meta, &request, std::string(), kSmallMax, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(flatten(out), "already queued");
}

TEST(FrameMaxSizeTest, DecoderAcceptsExactlyTheMaximum) {
  wire::RpcMeta meta = response_meta(1);
  const size_t attachment_bytes = attachment_bytes_for_body(meta, 0, kSmallMax);
  const std::string attachment = patterned_bytes(attachment_bytes);
  const std::string bytes = encode(meta, nullptr, attachment);
  ASSERT_EQ(bytes.size(), kFrameHeaderBytes + kSmallMax);

  FrameDecoder decoder(FrameDecoderOptions{.max_body_bytes = kSmallMax});
  decoder.feed(bytes);
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.body_bytes, kSmallMax);
  EXPECT_EQ(frame.attachment, attachment);
}

TEST(FrameMaxSizeTest, DecoderRejectsOneByteMore) {
  wire::RpcMeta meta = response_meta(1);
  const size_t attachment_bytes = attachment_bytes_for_body(meta, 0, kSmallMax + 1);
  const std::string bytes = encode(meta, nullptr, std::string(attachment_bytes, 'a'));
  ASSERT_EQ(bytes.size(), kFrameHeaderBytes + kSmallMax + 1);

  EXPECT_EQ(decode_all(bytes, FrameDecoderOptions{.max_body_bytes = kSmallMax}),
            DecodeStatus::kBodyTooLarge);
  // Before the body arrives too.
  EXPECT_EQ(decode_all(std::string_view(bytes).substr(0, kFrameHeaderBytes),
                       FrameDecoderOptions{.max_body_bytes = kSmallMax}),
            DecodeStatus::kBodyTooLarge);
}

// --- Large bodies through prepare()/commit() -------------------------------

TEST(FrameCodecTest, LargeAttachmentsFedInOddPieces) {
  const std::string large_attachment = patterned_bytes(1 << 20, 7);
  GatherBuffer out;
  std::vector<DecodedFrame> expected;
  example::EchoRequest request;
  request.set_message("large");
  expected.push_back(
      encode_into(out, request_meta("example.EchoService", "Echo", 1), &request, large_attachment));
  example::EchoResponse response;
  response.set_message("small");
  expected.push_back(encode_into(out, response_meta(1), &response, "tiny"));
  expected.push_back(
      encode_into(out, response_meta(2), &response, patterned_bytes((1 << 20) + 3, 9)));
  const std::string stream = flatten(out);

  // Odd sizes, so that pieces end inside headers, metas and attachments.
  const size_t piece_sizes[] = {1, 7, 13, 4093, 65521, 3, 300007, 11};
  FrameDecoder decoder;
  std::vector<DecodedFrame> frames;
  size_t offset = 0;
  size_t round = 0;
  while (offset < stream.size()) {
    const size_t piece =
        std::min(piece_sizes[round++ % std::size(piece_sizes)], stream.size() - offset);
    std::span<char> space = decoder.prepare(piece);
    ASSERT_GE(space.size(), piece);
    std::memcpy(space.data(), stream.data() + offset, piece);
    decoder.commit(piece);
    offset += piece;

    Frame frame;
    DecodeStatus status;
    while ((status = decoder.next(frame)) == DecodeStatus::kFrame) {
      // The views must be right now, before anything else touches the decoder.
      const size_t index = frames.size();
      ASSERT_LT(index, expected.size());
      EXPECT_EQ(frame.attachment.size(), expected[index].attachment.size());
      EXPECT_TRUE(frame.attachment == expected[index].attachment) << "frame " << index;
      EXPECT_EQ(frame.message, expected[index].message);
      frames.push_back(copy_of(frame));
    }
    ASSERT_EQ(status, DecodeStatus::kNeedMore);
  }
  expect_same_frames(frames, expected);
  example::EchoRequest decoded;
  ASSERT_TRUE(decoded.ParseFromString(frames[0].message));
  EXPECT_EQ(decoded.message(), "large");
}

// Once a large frame's header is in, prepare() offers room for the rest, so
// one read can take the whole body.
// A large frame gets room toward its whole size as it arrives, but a header
// alone reserves little: a peer sending headers that announce 64 MiB bodies
// must not make the server reserve 64 MiB each.
TEST(FrameCodecTest, PrepareGrowsTowardTheFrameButAHeaderAloneReservesLittle) {
  const std::string attachment = patterned_bytes(2000000, 3);
  const std::string bytes = encode(response_meta(1), nullptr, attachment);

  FrameDecoder decoder;
  decoder.feed(std::string_view(bytes).substr(0, kFrameHeaderBytes));
  std::span<char> space = decoder.prepare(1);
  EXPECT_GE(space.size(), 64u * 1024 - kFrameHeaderBytes);
  EXPECT_LT(space.size(), 128u * 1024);
  size_t offset = kFrameHeaderBytes;
  int reads = 0;
  while (offset < bytes.size()) {
    space = decoder.prepare(1);
    // At most three times what has arrived, beyond the first 64 KiB.
    EXPECT_LE(space.size(), std::max<size_t>(3 * decoder.buffered_bytes(), 64 * 1024));
    const size_t taken = std::min(space.size(), bytes.size() - offset);
    std::memcpy(space.data(), bytes.data() + offset, taken);
    decoder.commit(taken);
    offset += taken;
    ++reads;
  }
  EXPECT_LE(reads, 8);  // 4x growth: a few reads for 2 MB.
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.attachment == attachment);

  FrameDecoder header_only;
  header_only.feed(header(64u << 20, 16));
  EXPECT_LE(header_only.prepare(4096).size(), 64u * 1024);
}

// A decoder keeps working after a large frame (its buffer may shrink).
TEST(FrameCodecTest, SmallFramesAfterALargeOne) {
  FrameDecoder decoder;
  Frame frame;
  decoder.feed(encode(response_meta(1), nullptr, patterned_bytes(3 << 20)));
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.attachment.size(), 3u << 20);
  for (int i = 0; i < 3; ++i) {
    example::EchoResponse response;
    response.set_message("after " + std::to_string(i));
    decoder.feed(encode(response_meta(2 + i), &response));
    ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
    EXPECT_EQ(frame.meta.correlation_id(), 2 + i);
    example::EchoResponse decoded;
    ASSERT_TRUE(
        decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
    EXPECT_EQ(decoded.message(), "after " + std::to_string(i));
  }
}


// --- encode_frame_referencing: large fields referenced, not copied ----------

// Whether some chunk of `out` lies inside `bytes` (referenced, not copied).
bool references(const GatherBuffer& out, std::string_view bytes) {
  for (size_t i = 0; i < out.chunk_count(); ++i) {
    const std::string_view chunk = out.chunk(i);
    if (chunk.data() >= bytes.data() && chunk.data() + chunk.size() <= bytes.data() + bytes.size())
      return true;
  }
  return false;
}

TEST(FrameReferencingTest, ALargeMessageIsReferencedAndKeptAliveUntilConsumed) {
  auto response = std::make_shared<example::EchoResponse>();
  response->set_message(patterned_bytes(1 << 20));
  int lent = 0;
  const auto keep_alive = [&]() -> std::shared_ptr<const void> {
    ++lent;
    return response;
  };
  wire::RpcMeta meta = response_meta(7);
  GatherBuffer out;
  out.append_copy("queued before");
  ASSERT_EQ(encode_frame_referencing(meta, *response, keep_alive, "attachment bytes", 1 << 21,
                                     out),
            EncodeStatus::kOk);
  EXPECT_EQ(lent, 1);
  EXPECT_TRUE(references(out, response->message()));
  EXPECT_GT(response.use_count(), 1);

  // The same bytes as the copying encoder's.
  wire::RpcMeta copy_meta = response_meta(7);
  GatherBuffer copied;
  copied.append_copy("queued before");
  ASSERT_EQ(encode_frame(copy_meta, response.get(), "attachment bytes", 1 << 21, copied),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), flatten(copied));

  out.consume(out.size());
  EXPECT_EQ(response.use_count(), 1);  // Written: the reference is dropped.
}

TEST(FrameReferencingTest, NestedAndRepeatedLargeFieldsInterleaveWithCopiedOnes) {
  // RpcMeta as the message: nested messages, small and large strings and
  // bytes, varints, in one message.
  auto message = std::make_shared<wire::RpcMeta>();
  message->set_correlation_id(123456789);
  message->mutable_request()->set_service_name(patterned_bytes(70 * 1024));
  message->mutable_request()->set_method_name("Echo");
  message->mutable_request()->set_log_id(42);
  message->set_authentication_data(patterned_bytes(200 * 1024));
  message->set_attachment_size(5);
  wire::RpcMeta meta = response_meta(9);
  GatherBuffer out;
  ASSERT_EQ(encode_frame_referencing(
                meta, *message, [&]() -> std::shared_ptr<const void> { return message; },
                std::string(), 1 << 21, out),
            EncodeStatus::kOk);
  EXPECT_TRUE(references(out, message->request().service_name()));
  EXPECT_TRUE(references(out, message->authentication_data()));

  FrameDecoderOptions options;
  options.max_body_bytes = 1 << 21;
  FrameDecoder decoder(options);
  decoder.feed(flatten(out));
  std::vector<DecodedFrame> frames;
  drain(decoder, frames);
  ASSERT_EQ(frames.size(), 1u);
  wire::RpcMeta parsed;
  ASSERT_TRUE(parsed.ParseFromString(frames[0].message));
  EXPECT_TRUE(MessageDifferencer::Equals(parsed, *message));
  EXPECT_EQ(frames[0].message, message->SerializeAsString());
}

TEST(FrameReferencingTest, ASmallMessageIsCopiedAndNotLent) {
  example::EchoResponse response;
  response.set_message(std::string(kReferenceMessagesFrom - 100, 'x'));
  int lent = 0;
  wire::RpcMeta meta = response_meta(1);
  GatherBuffer out;
  ASSERT_EQ(encode_frame_referencing(
                meta, response,
                [&]() -> std::shared_ptr<const void> {
                  ++lent;
                  return nullptr;
                },
                std::string(), 1 << 20, out),
            EncodeStatus::kOk);
  EXPECT_EQ(lent, 0);
  EXPECT_FALSE(references(out, response.message()));
}

TEST(FrameReferencingTest, TooLargeAppendsNothingAndLendsNothing) {
  example::EchoResponse response;
  response.set_message(std::string(200 * 1024, 'x'));
  int lent = 0;
  wire::RpcMeta meta = response_meta(1);
  GatherBuffer out;
  out.append_copy("already queued");
  EXPECT_EQ(encode_frame_referencing(
                meta, response,
                [&]() -> std::shared_ptr<const void> {
                  ++lent;
                  return nullptr;
                },
                std::string(), 100 * 1024, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(lent, 0);
  EXPECT_EQ(flatten(out), "already queued");
}

}  // namespace
}  // namespace percore
