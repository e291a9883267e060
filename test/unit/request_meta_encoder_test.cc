// The hand-written request meta encoder must produce exactly protobuf's bytes
// for every combination of fields, including the 10-byte varints of
// negative numbers and correlation ids with the top bit set.

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include <percore/proto/echo.pb.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/request_meta_encoder.h>

#include "test/support/meta_fields.h"

namespace percore {
namespace {

std::string protobuf_meta(const std::string& service, const std::string& method,
                          const RequestMetaEncoder::CallFields& fields) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name(service);
  meta.mutable_request()->set_method_name(method);
  if (fields.log_id != 0)
    meta.mutable_request()->set_log_id(fields.log_id);
  if (fields.trace_id != 0)
    meta.mutable_request()->set_trace_id(fields.trace_id);
  if (fields.span_id != 0)
    meta.mutable_request()->set_span_id(fields.span_id);
  if (fields.parent_span_id != 0)
    meta.mutable_request()->set_parent_span_id(fields.parent_span_id);
  if (fields.timeout_ms != 0)
    meta.mutable_request()->set_timeout_ms(fields.timeout_ms);
  testing::set_shared_meta_fields(meta, fields.correlation_id, fields.attachment_size,
                                  fields.stream_id, fields.stream_need_feedback);
  return meta.SerializeAsString();
}

TEST(RequestMetaEncoderTest, MatchesProtobufForEveryCombination) {
  const std::vector<int64_t> correlation_ids = {
      0, 1, 127, 128, 1ll << 32, static_cast<int64_t>(0xFFFFFFFFull << 32 | 7)};
  const std::vector<int64_t> log_ids = {0, 42, 1ll << 40, -1};
  const std::vector<int32_t> timeouts = {0, 1, 500, 100000, -1};
  const std::vector<int32_t> attachments = {0, 6, 300, 1 << 24};
  const std::vector<std::pair<std::string, std::string>> names = {
      {"example.EchoService", "Echo"}, {std::string(200, 's'), std::string(130, 'm')}};
  int checked = 0;
  for (const auto& [service, method] : names) {
    RequestMetaEncoder encoder(service, method);
    for (int64_t correlation_id : correlation_ids) {
      for (int64_t log_id : log_ids) {
        for (int32_t timeout : timeouts) {
          for (int32_t attachment : attachments) {
            const RequestMetaEncoder::CallFields fields{correlation_id, log_id, timeout,
                                                        attachment};
            std::string bytes(encoder.size(fields), '\0');
            char* end = encoder.write(fields, bytes.data());
            ASSERT_EQ(end, bytes.data() + bytes.size());
            ASSERT_EQ(bytes, protobuf_meta(service, method, fields))
                << correlation_id << " " << log_id << " " << timeout << " " << attachment;
            ++checked;
          }
        }
      }
    }
  }
  EXPECT_EQ(checked, 2 * 6 * 4 * 5 * 4);
}

TEST(RequestMetaEncoderTest, StreamSettingsMatchProtobuf) {
  RequestMetaEncoder encoder("example.EchoService", "Echo");
  int checked = 0;
  for (int64_t stream_id : {int64_t{1}, int64_t{127}, int64_t{128}, int64_t{1} << 40}) {
    for (bool need_feedback : {false, true}) {
      for (int32_t attachment : {0, 300}) {
        RequestMetaEncoder::CallFields fields{(5ll << 32) | 3, 7, 250, attachment};
        fields.stream_id = stream_id;
        fields.stream_need_feedback = need_feedback;
        std::string bytes(encoder.size(fields), '\0');
        char* end = encoder.write(fields, bytes.data());
        ASSERT_EQ(end, bytes.data() + bytes.size());
        ASSERT_EQ(bytes, protobuf_meta("example.EchoService", "Echo", fields)) << stream_id;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 16);
}

TEST(RequestMetaEncoderTest, TraceFieldsMatchProtobufAndAreAbsentWhenZero) {
  const std::vector<int64_t> ids = {0, 1, 300, 1ll << 62, -1};
  RequestMetaEncoder encoder("pipeline.StageB", "Transform");
  int checked = 0;
  for (int64_t trace_id : ids) {
    for (int64_t span_id : ids) {
      for (int64_t parent_span_id : ids) {
        for (int32_t timeout : {0, 250}) {
          RequestMetaEncoder::CallFields fields{(3ll << 32) | 1, 42, timeout, 0};
          fields.trace_id = trace_id;
          fields.span_id = span_id;
          fields.parent_span_id = parent_span_id;
          std::string bytes(encoder.size(fields), '\0');
          ASSERT_EQ(encoder.write(fields, bytes.data()), bytes.data() + bytes.size());
          ASSERT_EQ(bytes, protobuf_meta("pipeline.StageB", "Transform", fields))
              << trace_id << " " << span_id << " " << parent_span_id << " " << timeout;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 5 * 5 * 5 * 2);
  // No trace: not a byte more than before trace fields existed.
  const RequestMetaEncoder::CallFields untraced{1, 0, 0, 0};
  EXPECT_EQ(encoder.size(untraced), protobuf_meta("pipeline.StageB", "Transform", untraced).size());
}

TEST(RequestMetaEncoderTest, RequestHeadEqualsTheGenericEncoderAndDecodes) {
  example::EchoRequest request;
  request.set_message("hello");
  RequestMetaEncoder encoder("example.EchoService", "Echo");
  const RequestMetaEncoder::CallFields fields{(5ll << 32) | 9, 42, 500, 6};
  std::string fast;
  ASSERT_EQ(encode_request_head(encoder, fields, request, kDefaultMaxBodyBytes, fast),
            EncodeStatus::kOk);

  wire::RpcMeta meta;
  meta.set_correlation_id(fields.correlation_id);
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.mutable_request()->set_log_id(42);
  meta.mutable_request()->set_timeout_ms(500);
  std::string generic;
  ASSERT_EQ(encode_frame_head(meta, &request, 6, kDefaultMaxBodyBytes, generic), EncodeStatus::kOk);
  EXPECT_EQ(fast, generic);

  FrameDecoder decoder;
  decoder.feed(fast + "ATTACH");
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.meta.correlation_id(), fields.correlation_id);
  EXPECT_EQ(frame.meta.request().method_name(), "Echo");
  EXPECT_EQ(frame.attachment, "ATTACH");
}

TEST(RequestMetaEncoderTest, TooLargeLeavesTheOutputUnchanged) {
  example::EchoRequest request;
  request.set_message(std::string(5000, 'x'));
  RequestMetaEncoder encoder("example.EchoService", "Echo");
  std::string out = "kept";
  EXPECT_EQ(encode_request_head(encoder, {1, 0, 0, 0}, request, 4096, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(out, "kept");
  // The attachment counts toward the limit too.
  request.set_message("small");
  EXPECT_EQ(encode_request_head(encoder, {1, 0, 0, 5000}, request, 4096, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(out, "kept");
}

}  // namespace
}  // namespace percore
