#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/peer_message.h>
#include <percore/proto/detail/request_meta_encoder.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/frame.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/stream_frame.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/proto/streaming_rpc_meta.pb.h>
#include "test/support/bytes.h"

namespace percore {
namespace {

using testing::flatten;

// Reference frames produced by scripts/golden_frames.py (`--cpp`), which
// builds them with protoc's Python classes and struct.pack, independently of
// percore's codec. They also appear, annotated, in docs/PROTOCOL.md.

// example.EchoService.Echo, correlation_id 1, log_id 42, timeout_ms 500,
// EchoRequest{message: "hello"}, attachment "ATTACH".
constexpr unsigned char kGoldenRequest[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0x00, 0x26, 0x0a, 0x20, 0x0a, 0x13,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65, 0x12, 0x04, 0x45, 0x63, 0x68, 0x6f, 0x18, 0x2a, 0x40, 0xf4, 0x03, 0x20, 0x01,
    0x28, 0x06, 0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x41, 0x54, 0x54, 0x41, 0x43, 0x48,
};

// Its response: correlation_id 1, an empty (present) RpcResponseMeta,
// EchoResponse{message: "hello"}, attachment "ATTACH".
constexpr unsigned char kGoldenResponse[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00, 0x06, 0x12, 0x00, 0x20, 0x01,
    0x28, 0x06, 0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x41, 0x54, 0x54, 0x41, 0x43, 0x48,
};

// An error response: correlation_id 2, error_code 1002, error_text
// "no such method: example.EchoService.Nope", no message, no attachment.
constexpr unsigned char kGoldenErrorResponse[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x31, 0x00, 0x00, 0x00, 0x31, 0x12, 0x2d, 0x08, 0xea,
    0x07, 0x12, 0x28, 0x6e, 0x6f, 0x20, 0x73, 0x75, 0x63, 0x68, 0x20, 0x6d, 0x65, 0x74, 0x68, 0x6f,
    0x64, 0x3a, 0x20, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53,
    0x65, 0x72, 0x76, 0x69, 0x63, 0x65, 0x2e, 0x4e, 0x6f, 0x70, 0x65, 0x20, 0x02,
};

// Compressed frames (scripts/golden_frames.py compresses with Python's
// snappy, gzip and zlib modules): example.EchoService.Echo, correlation_id 3,
// compress_type 1 / 2 / 3, EchoRequest{message: "hello " x 8} compressed,
// attachment "ATTACH" (never compressed); then the responses, correlation_id
// 3, EchoResponse{message: "hello " x 8} compressed, no attachment.
constexpr unsigned char kGoldenRequestSnappy[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x36, 0x00, 0x00, 0x00, 0x23, 0x0a, 0x1b, 0x0a, 0x13,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65, 0x12, 0x04, 0x45, 0x63, 0x68, 0x6f, 0x18, 0x01, 0x20, 0x03, 0x28, 0x06, 0x32,
    0x1c, 0x0a, 0x30, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0xa6, 0x06, 0x00, 0x41, 0x54, 0x54, 0x41,
    0x43, 0x48,
};

constexpr unsigned char kGoldenRequestGzip[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x47, 0x00, 0x00, 0x00, 0x23, 0x0a, 0x1b, 0x0a, 0x13,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65, 0x12, 0x04, 0x45, 0x63, 0x68, 0x6f, 0x18, 0x02, 0x20, 0x03, 0x28, 0x06, 0x1f,
    0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe3, 0x32, 0xc8, 0x48, 0xcd, 0xc9, 0xc9,
    0x57, 0x20, 0x9e, 0x04, 0x00, 0x95, 0x29, 0xb1, 0xf2, 0x32, 0x00, 0x00, 0x00, 0x41, 0x54, 0x54,
    0x41, 0x43, 0x48,
};

constexpr unsigned char kGoldenRequestZlib[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x3b, 0x00, 0x00, 0x00, 0x23, 0x0a, 0x1b, 0x0a, 0x13,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65, 0x12, 0x04, 0x45, 0x63, 0x68, 0x6f, 0x18, 0x03, 0x20, 0x03, 0x28, 0x06, 0x78,
    0x9c, 0xe3, 0x32, 0xc8, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x20, 0x9e, 0x04, 0x00, 0xc0, 0x5d, 0x11,
    0xdb, 0x41, 0x54, 0x54, 0x41, 0x43, 0x48,
};

constexpr unsigned char kGoldenResponseSnappy[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00, 0x06, 0x12, 0x00, 0x18, 0x01,
    0x20, 0x03, 0x32, 0x1c, 0x0a, 0x30, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0xa6, 0x06, 0x00,
};

constexpr unsigned char kGoldenResponseGzip[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x24, 0x00, 0x00, 0x00, 0x06, 0x12, 0x00, 0x18, 0x02,
    0x20, 0x03, 0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0xe3, 0x32, 0xc8, 0x48,
    0xcd, 0xc9, 0xc9, 0x57, 0x20, 0x9e, 0x04, 0x00, 0x95, 0x29, 0xb1, 0xf2, 0x32, 0x00, 0x00, 0x00,
};

constexpr unsigned char kGoldenResponseZlib[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x18, 0x00, 0x00, 0x00, 0x06, 0x12, 0x00, 0x18, 0x03,
    0x20, 0x03, 0x78, 0x9c, 0xe3, 0x32, 0xc8, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0x20, 0x9e, 0x04, 0x00,
    0xc0, 0x5d, 0x11, 0xdb,
};

// Streams (docs/PROTOCOL.md, "Streams"). A request opening a stream:
// example.EchoService.Echo, correlation_id 4, EchoRequest{message: "hello"},
// stream_settings {stream_id 1, need_feedback true, writable true}.
constexpr unsigned char kGoldenStreamRequest[] = {
    0x50, 0x52, 0x50, 0x43, 0x00, 0x00, 0x00, 0x2e, 0x00, 0x00, 0x00, 0x27, 0x0a, 0x1b, 0x0a, 0x13,
    0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x45, 0x63, 0x68, 0x6f, 0x53, 0x65, 0x72, 0x76,
    0x69, 0x63, 0x65, 0x12, 0x04, 0x45, 0x63, 0x68, 0x6f, 0x20, 0x04, 0x42, 0x06, 0x08, 0x01, 0x10,
    0x01, 0x18, 0x01, 0x0a, 0x05, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};

// DATA "hello" to stream 2 from stream 1 (has_continuation false, written).
constexpr unsigned char kGoldenStreamData[] = {
    0x53, 0x54, 0x52, 0x4d, 0x00, 0x00, 0x00, 0x0d, 0x00, 0x00, 0x00, 0x08, 0x08, 0x02, 0x10, 0x01,
    0x18, 0x03, 0x20, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
};

// FEEDBACK to stream 1 from stream 2, consumed_size 5.
constexpr unsigned char kGoldenStreamFeedback[] = {
    0x53, 0x54, 0x52, 0x4d, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x0a, 0x08, 0x01, 0x10, 0x02,
    0x18, 0x04, 0x2a, 0x02, 0x08, 0x05,
};

// CLOSE to stream 2 from stream 1.
constexpr unsigned char kGoldenStreamClose[] = {
    0x53, 0x54, 0x52, 0x4d, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x06, 0x08, 0x02, 0x10, 0x01,
    0x18, 0x02,
};

// RST to stream 1 (no source_stream_id).
constexpr unsigned char kGoldenStreamRst[] = {
    0x53, 0x54, 0x52, 0x4d, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x01, 0x18, 0x01,
};

std::string_view as_bytes(const unsigned char* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

wire::RpcMeta golden_request_meta() {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.mutable_request()->set_log_id(42);
  meta.mutable_request()->set_timeout_ms(500);
  meta.set_correlation_id(1);
  return meta;
}

wire::RpcMeta golden_response_meta() {
  wire::RpcMeta meta;
  meta.mutable_response();  // Present but empty: error_code 0, as brpc writes it.
  meta.set_correlation_id(1);
  return meta;
}

wire::RpcMeta golden_error_response_meta() {
  wire::RpcMeta meta;
  meta.mutable_response()->set_error_code(1002);
  meta.mutable_response()->set_error_text("no such method: example.EchoService.Nope");
  meta.set_correlation_id(2);
  return meta;
}

Frame decode_one(std::string_view bytes, FrameDecoder& decoder) {
  decoder.feed(bytes);
  Frame frame;
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(decoder.buffered_bytes(), 0u);
  return frame;
}

TEST(GoldenFramesTest, EncoderProducesTheGoldenRequest) {
  wire::RpcMeta meta = golden_request_meta();
  example::EchoRequest request;
  request.set_message("hello");
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &request, "ATTACH", kDefaultMaxBodyBytes, out), EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenRequest, sizeof(kGoldenRequest)));
}

TEST(GoldenFramesTest, EncoderProducesTheGoldenResponse) {
  wire::RpcMeta meta = golden_response_meta();
  example::EchoResponse response;
  response.set_message("hello");
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &response, "ATTACH", kDefaultMaxBodyBytes, out), EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenResponse, sizeof(kGoldenResponse)));
}

TEST(GoldenFramesTest, EncoderProducesTheGoldenErrorResponse) {
  wire::RpcMeta meta = golden_error_response_meta();
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, nullptr, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenErrorResponse, sizeof(kGoldenErrorResponse)));
}

// The server writes its answers' metas without an RpcMeta: the same bytes.
TEST(GoldenFramesTest, ResponseMetaEncoderProducesTheGoldenResponses) {
  example::EchoResponse response;
  response.set_message("hello");
  ResponseMetaEncoder::Fields meta;
  meta.correlation_id = 1;
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &response, "ATTACH", kDefaultMaxBodyBytes, out), EncodeStatus::kOk);
  EXPECT_EQ(meta.attachment_size, 6);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenResponse, sizeof(kGoldenResponse)));

  ResponseMetaEncoder::Fields error;
  error.correlation_id = 2;
  error.error_code = 1002;
  error.error_text = "no such method: example.EchoService.Nope";
  GatherBuffer error_out;
  ASSERT_EQ(encode_frame(error, nullptr, std::string(), kDefaultMaxBodyBytes, error_out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(error_out), as_bytes(kGoldenErrorResponse, sizeof(kGoldenErrorResponse)));
}

TEST(GoldenFramesTest, DecoderReadsTheGoldenRequest) {
  FrameDecoder decoder;
  const Frame frame = decode_one(as_bytes(kGoldenRequest, sizeof(kGoldenRequest)), decoder);
  ASSERT_TRUE(frame.is_request());
  EXPECT_EQ(frame.body_bytes, 51u);
  EXPECT_EQ(frame.meta.request().service_name(), "example.EchoService");
  EXPECT_EQ(frame.meta.request().method_name(), "Echo");
  EXPECT_EQ(frame.meta.request().log_id(), 42);
  EXPECT_EQ(frame.meta.request().timeout_ms(), 500);
  EXPECT_EQ(frame.meta.correlation_id(), 1);
  EXPECT_EQ(frame.meta.attachment_size(), 6);
  EXPECT_FALSE(frame.meta.has_compress_type());
  EXPECT_EQ(frame.attachment, "ATTACH");
  example::EchoRequest request;
  ASSERT_TRUE(request.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(request.message(), "hello");
  // Decoding and re-encoding gives the same bytes.
  wire::RpcMeta meta = frame.meta;
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &request, std::string(frame.attachment), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenRequest, sizeof(kGoldenRequest)));
}

TEST(GoldenFramesTest, DecoderReadsTheGoldenResponse) {
  FrameDecoder decoder;
  const Frame frame = decode_one(as_bytes(kGoldenResponse, sizeof(kGoldenResponse)), decoder);
  ASSERT_FALSE(frame.is_request());
  ASSERT_TRUE(frame.meta.has_response());
  EXPECT_FALSE(frame.meta.response().has_error_code());
  EXPECT_EQ(frame.meta.response().error_code(), 0);
  EXPECT_EQ(frame.meta.correlation_id(), 1);
  EXPECT_EQ(frame.meta.attachment_size(), 6);
  EXPECT_EQ(frame.attachment, "ATTACH");
  example::EchoResponse response;
  ASSERT_TRUE(
      response.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(response.message(), "hello");
}

TEST(GoldenFramesTest, DecoderReadsTheGoldenErrorResponse) {
  FrameDecoder decoder;
  const Frame frame =
      decode_one(as_bytes(kGoldenErrorResponse, sizeof(kGoldenErrorResponse)), decoder);
  ASSERT_FALSE(frame.is_request());
  EXPECT_EQ(frame.meta.response().error_code(), 1002);
  EXPECT_EQ(frame.meta.response().error_text(), "no such method: example.EchoService.Nope");
  EXPECT_EQ(frame.meta.correlation_id(), 2);
  EXPECT_FALSE(frame.meta.has_attachment_size());
  EXPECT_TRUE(frame.message.empty());
  EXPECT_TRUE(frame.attachment.empty());
}

// The three frames back to back, as they could arrive on one connection.
TEST(GoldenFramesTest, DecoderReadsTheGoldenFramesBackToBack) {
  std::string stream(as_bytes(kGoldenResponse, sizeof(kGoldenResponse)));
  stream += as_bytes(kGoldenErrorResponse, sizeof(kGoldenErrorResponse));
  stream += as_bytes(kGoldenResponse, sizeof(kGoldenResponse));
  FrameDecoder decoder;
  decoder.feed(stream);
  Frame frame;
  for (int64_t correlation_id : {1, 2, 1}) {
    ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
    EXPECT_EQ(frame.meta.correlation_id(), correlation_id);
  }
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kNeedMore);
}

// The smallest useful request, built by hand in docs/PROTOCOL.md ("Building a
// request by hand"), and the reply it gets; the doc's bytes must stay right.
constexpr char kDocMinimalRequest[] =
    "PRPC\x00\x00\x00\x26\x00\x00\x00\x1f"
    "\x0a\x1b\x0a\x13"
    "example.EchoService"
    "\x12\x04"
    "Echo"
    "\x20\x01"
    "\x0a\x05"
    "hello";
constexpr char kDocMinimalReply[] =
    "PRPC\x00\x00\x00\x0b\x00\x00\x00\x04"
    "\x12\x00\x20\x01"
    "\x0a\x05"
    "hello";

TEST(GoldenFramesTest, MinimalRequestOfTheProtocolDoc) {
  const std::string_view bytes(kDocMinimalRequest, sizeof(kDocMinimalRequest) - 1);
  ASSERT_EQ(bytes.size(), 50u);
  FrameDecoder decoder;
  const Frame frame = decode_one(bytes, decoder);
  ASSERT_TRUE(frame.is_request());
  EXPECT_EQ(frame.meta.request().service_name(), "example.EchoService");
  EXPECT_EQ(frame.meta.request().method_name(), "Echo");
  EXPECT_EQ(frame.meta.correlation_id(), 1);
  example::EchoRequest request;
  ASSERT_TRUE(request.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(request.message(), "hello");

  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.set_correlation_id(1);
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &request, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), bytes);
}

TEST(GoldenFramesTest, MinimalReplyOfTheProtocolDoc) {
  wire::RpcMeta meta;
  meta.mutable_response();
  meta.set_correlation_id(1);
  example::EchoResponse response;
  response.set_message("hello");
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &response, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), std::string_view(kDocMinimalReply, sizeof(kDocMinimalReply) - 1));
}

struct CompressedGolden {
  CompressType type;
  std::string_view request;
  std::string_view response;
};

std::vector<CompressedGolden> compressed_goldens() {
  return {
      {CompressType::kSnappy, as_bytes(kGoldenRequestSnappy, sizeof(kGoldenRequestSnappy)),
       as_bytes(kGoldenResponseSnappy, sizeof(kGoldenResponseSnappy))},
      {CompressType::kGzip, as_bytes(kGoldenRequestGzip, sizeof(kGoldenRequestGzip)),
       as_bytes(kGoldenResponseGzip, sizeof(kGoldenResponseGzip))},
      {CompressType::kZlib, as_bytes(kGoldenRequestZlib, sizeof(kGoldenRequestZlib)),
       as_bytes(kGoldenResponseZlib, sizeof(kGoldenResponseZlib))},
  };
}

std::string eight_hellos() {
  std::string text;
  for (int i = 0; i < 8; ++i)
    text += "hello ";
  return text;
}

// The client's path: RequestMetaEncoder with compress_type, the message
// serialized and compressed, the attachment raw.
TEST(GoldenFramesTest, EncoderProducesTheCompressedGoldenRequests) {
  const RequestMetaEncoder meta("example.EchoService", "Echo");
  example::EchoRequest request;
  request.set_message(eight_hellos());
  for (const CompressedGolden& golden : compressed_goldens()) {
    SCOPED_TRACE(compress_type_name(static_cast<int32_t>(golden.type)));
    std::string compressed;
    ASSERT_TRUE(serialize_compressed(request, golden.type, compressed));
    RequestMetaEncoder::CallFields fields;
    fields.correlation_id = 3;
    fields.attachment_size = 6;
    fields.compress_type = static_cast<int32_t>(golden.type);
    std::string head;
    ASSERT_EQ(encode_request_head(meta, fields, std::string_view(compressed),
                                  kDefaultMaxBodyBytes, head),
              EncodeStatus::kOk);
    EXPECT_EQ(head + "ATTACH", golden.request);
  }
}

// The server's path: an RpcMeta with compress_type and the compressed bytes.
TEST(GoldenFramesTest, EncoderProducesTheCompressedGoldenResponses) {
  example::EchoResponse response;
  response.set_message(eight_hellos());
  for (const CompressedGolden& golden : compressed_goldens()) {
    SCOPED_TRACE(compress_type_name(static_cast<int32_t>(golden.type)));
    std::string compressed;
    ASSERT_TRUE(serialize_compressed(response, golden.type, compressed));
    wire::RpcMeta meta;
    meta.mutable_response();
    meta.set_compress_type(static_cast<int32_t>(golden.type));
    meta.set_correlation_id(3);
    GatherBuffer out;
    ASSERT_EQ(encode_frame(meta, std::string_view(compressed), std::string(),
                           kDefaultMaxBodyBytes, out),
              EncodeStatus::kOk);
    EXPECT_EQ(flatten(out), golden.response);
  }
}

TEST(GoldenFramesTest, DecoderAndParserReadTheCompressedGoldenFrames) {
  for (const CompressedGolden& golden : compressed_goldens()) {
    SCOPED_TRACE(compress_type_name(static_cast<int32_t>(golden.type)));
    PeerMessageParser parser;
    std::string error;
    FrameDecoder request_decoder;
    const Frame request_frame = decode_one(golden.request, request_decoder);
    ASSERT_TRUE(request_frame.is_request());
    EXPECT_EQ(request_frame.meta.compress_type(), static_cast<int32_t>(golden.type));
    EXPECT_EQ(request_frame.attachment, "ATTACH");
    example::EchoRequest request;
    ASSERT_TRUE(parser.parse(request_frame.message, golden.type, kDefaultMaxBodyBytes, request,
                             &error))
        << error;
    EXPECT_EQ(request.message(), eight_hellos());

    FrameDecoder response_decoder;
    const Frame response_frame = decode_one(golden.response, response_decoder);
    ASSERT_FALSE(response_frame.is_request());
    EXPECT_EQ(response_frame.meta.compress_type(), static_cast<int32_t>(golden.type));
    example::EchoResponse response;
    ASSERT_TRUE(parser.parse(response_frame.message, golden.type, kDefaultMaxBodyBytes, response,
                             &error))
        << error;
    EXPECT_EQ(response.message(), eight_hellos());
  }
}

wire::RpcMeta golden_stream_request_meta() {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.set_correlation_id(4);
  wire::StreamSettings* settings = meta.mutable_stream_settings();
  settings->set_stream_id(1);
  settings->set_need_feedback(true);
  settings->set_writable(true);
  return meta;
}

TEST(GoldenFramesTest, EncoderProducesTheGoldenStreamRequest) {
  wire::RpcMeta meta = golden_stream_request_meta();
  example::EchoRequest request;
  request.set_message("hello");
  GatherBuffer out;
  ASSERT_EQ(encode_frame(meta, &request, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(flatten(out), as_bytes(kGoldenStreamRequest, sizeof(kGoldenStreamRequest)));
}

TEST(GoldenFramesTest, TheClientsMetaEncoderProducesTheGoldenStreamRequest) {
  // What percore's client writes for a call with Controller::open_stream.
  RequestMetaEncoder encoder("example.EchoService", "Echo");
  RequestMetaEncoder::CallFields fields;
  fields.correlation_id = 4;
  fields.stream_id = 1;
  fields.stream_need_feedback = true;
  example::EchoRequest request;
  request.set_message("hello");
  std::string head;
  ASSERT_EQ(encode_request_head(encoder, fields, request, kDefaultMaxBodyBytes, head),
            EncodeStatus::kOk);
  EXPECT_EQ(head, as_bytes(kGoldenStreamRequest, sizeof(kGoldenStreamRequest)));
}

TEST(GoldenFramesTest, DecoderReadsTheGoldenStreamRequest) {
  FrameDecoder decoder;
  const Frame frame =
      decode_one(as_bytes(kGoldenStreamRequest, sizeof(kGoldenStreamRequest)), decoder);
  ASSERT_TRUE(frame.is_request());
  EXPECT_EQ(frame.meta.correlation_id(), 4);
  ASSERT_TRUE(frame.meta.has_stream_settings());
  const wire::StreamSettings& settings = frame.meta.stream_settings();
  EXPECT_EQ(settings.stream_id(), 1);
  EXPECT_TRUE(settings.need_feedback());
  EXPECT_TRUE(settings.writable());
  EXPECT_EQ(settings.extra_stream_ids_size(), 0);
  example::EchoRequest request;
  ASSERT_TRUE(request.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(request.message(), "hello");
}

struct StreamGolden {
  const char* name;
  wire::StreamFrameMeta meta;
  std::string data;
  std::string_view bytes;
};

std::vector<StreamGolden> stream_goldens() {
  return {
      {"data", data_frame_meta(2, 1), "hello",
       as_bytes(kGoldenStreamData, sizeof(kGoldenStreamData))},
      {"feedback", feedback_frame_meta(1, 2, 5), "",
       as_bytes(kGoldenStreamFeedback, sizeof(kGoldenStreamFeedback))},
      {"close", close_frame_meta(2, 1), "",
       as_bytes(kGoldenStreamClose, sizeof(kGoldenStreamClose))},
      {"rst", rst_frame_meta(1), "", as_bytes(kGoldenStreamRst, sizeof(kGoldenStreamRst))},
  };
}

TEST(GoldenFramesTest, EncoderProducesTheGoldenStreamFrames) {
  for (StreamGolden& golden : stream_goldens()) {
    SCOPED_TRACE(golden.name);
    GatherBuffer out;
    ASSERT_EQ(encode_stream_frame(golden.meta, std::move(golden.data), kDefaultMaxBodyBytes, out),
              EncodeStatus::kOk);
    EXPECT_EQ(flatten(out), golden.bytes);
  }
}

TEST(GoldenFramesTest, DecoderReadsTheGoldenStreamFrames) {
  FrameDecoderOptions options;
  options.accept_stream_frames = true;
  for (const StreamGolden& golden : stream_goldens()) {
    SCOPED_TRACE(golden.name);
    FrameDecoder decoder(options);
    decoder.feed(golden.bytes);
    Frame frame;
    StreamFrame stream_frame;
    ASSERT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kStreamFrame);
    EXPECT_EQ(decoder.buffered_bytes(), 0u);
    EXPECT_EQ(stream_frame.meta.stream_id(), golden.meta.stream_id());
    EXPECT_EQ(stream_frame.meta.has_source_stream_id(), golden.meta.has_source_stream_id());
    EXPECT_EQ(stream_frame.meta.source_stream_id(), golden.meta.source_stream_id());
    EXPECT_EQ(stream_frame.meta.frame_type(), golden.meta.frame_type());
    EXPECT_EQ(stream_frame.meta.has_has_continuation(), golden.meta.has_has_continuation());
    EXPECT_EQ(stream_frame.meta.feedback().consumed_size(),
              golden.meta.feedback().consumed_size());
    EXPECT_EQ(stream_frame.data, golden.data);
  }
}

// The request, its stream's frames and a reply, on one connection.
TEST(GoldenFramesTest, DecoderReadsGoldenRpcAndStreamFramesBackToBack) {
  std::string bytes(as_bytes(kGoldenStreamRequest, sizeof(kGoldenStreamRequest)));
  for (const StreamGolden& golden : stream_goldens())
    bytes += golden.bytes;
  bytes += as_bytes(kGoldenResponse, sizeof(kGoldenResponse));
  FrameDecoderOptions options;
  options.accept_stream_frames = true;
  FrameDecoder decoder(options);
  decoder.feed(bytes);
  Frame frame;
  StreamFrame stream_frame;
  ASSERT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kFrame);
  EXPECT_TRUE(frame.meta.has_stream_settings());
  for (wire::FrameType type : {wire::FRAME_TYPE_DATA, wire::FRAME_TYPE_FEEDBACK,
                               wire::FRAME_TYPE_CLOSE, wire::FRAME_TYPE_RST}) {
    ASSERT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kStreamFrame);
    EXPECT_EQ(stream_frame.type(), type);
  }
  ASSERT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.meta.correlation_id(), 1);
  EXPECT_EQ(decoder.next(frame, stream_frame), DecodeStatus::kNeedMore);
}

}  // namespace
}  // namespace percore
