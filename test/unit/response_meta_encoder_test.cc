// The hand-written response meta encoder must produce exactly protobuf's
// bytes for every combination of fields the server writes, including the
// 10-byte varints of negative numbers; and a frame encoded with it must be
// the frame encoded with the equivalent RpcMeta.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <percore/proto/echo.pb.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/response_meta_encoder.h>
#include "test/support/bytes.h"
#include "test/support/meta_fields.h"

namespace percore {
namespace {

wire::RpcMeta protobuf_meta(const ResponseMetaEncoder::Fields& fields) {
  wire::RpcMeta meta;
  wire::RpcResponseMeta* response = meta.mutable_response();
  if (fields.error_code != 0) {
    response->set_error_code(fields.error_code);
    response->set_error_text(std::string(fields.error_text));
  }
  if (fields.compress_type != 0)
    meta.set_compress_type(fields.compress_type);
  testing::set_shared_meta_fields(meta, fields.correlation_id, fields.attachment_size,
                                  fields.stream_id, fields.stream_need_feedback);
  return meta;
}

std::vector<ResponseMetaEncoder::Fields> every_combination() {
  static const std::string kLongText(300, 't');  // A length that takes two varint bytes.
  std::vector<ResponseMetaEncoder::Fields> all;
  for (int64_t correlation_id :
       {int64_t{0}, int64_t{1}, int64_t{128}, int64_t{1} << 40, int64_t{-5}}) {
    for (int32_t error_code : {0, 1003, 2001, 70000, -1}) {
      for (std::string_view text : {std::string_view(), std::string_view("no such method"),
                                    std::string_view(kLongText)}) {
        if (error_code == 0 && !text.empty())
          continue;  // A successful answer has no text.
        for (int32_t compress_type : {0, 1, 2}) {
          for (int32_t attachment : {0, 6, 300, 1 << 24}) {
            for (int64_t stream_id : {int64_t{0}, int64_t{1}, int64_t{1} << 40}) {
              for (bool feedback : {false, true}) {
                if (stream_id == 0 && feedback)
                  continue;
                ResponseMetaEncoder::Fields fields;
                fields.correlation_id = correlation_id;
                fields.error_code = error_code;
                fields.error_text = text;
                fields.compress_type = compress_type;
                fields.attachment_size = attachment;
                fields.stream_id = stream_id;
                fields.stream_need_feedback = feedback;
                all.push_back(fields);
              }
            }
          }
        }
      }
    }
  }
  return all;
}

TEST(ResponseMetaEncoderTest, MatchesProtobufForEveryCombination) {
  const std::vector<ResponseMetaEncoder::Fields> all = every_combination();
  for (const ResponseMetaEncoder::Fields& fields : all) {
    std::string bytes(ResponseMetaEncoder::size(fields), '\0');
    char* end = ResponseMetaEncoder::write(fields, bytes.data());
    ASSERT_EQ(end, bytes.data() + bytes.size());
    ASSERT_EQ(bytes, protobuf_meta(fields).SerializeAsString())
        << fields.correlation_id << " " << fields.error_code << " " << fields.error_text.size()
        << " " << fields.compress_type << " " << fields.attachment_size << " "
        << fields.stream_id << " " << fields.stream_need_feedback;
  }
  // 5 ids x (1 + 4 codes x 3 texts) x 3 compressions x 4 attachments x 5 stream settings.
  EXPECT_EQ(all.size(), 5u * 13 * 3 * 4 * 5);
}

// Through encode_frame's three forms: the frame is the same bytes, and the
// attachment's size is set in the fields as it is in an RpcMeta.
TEST(ResponseMetaEncoderTest, FramesMatchTheFramesOfTheEquivalentRpcMeta) {
  example::EchoResponse small;
  small.set_message("hello");
  example::EchoResponse large;
  large.set_message(std::string(kReferenceMessagesFrom + 10, 'L'));
  int checked = 0;
  for (ResponseMetaEncoder::Fields fields : every_combination()) {
    if (fields.attachment_size > 300 || fields.correlation_id == 128)
      continue;  // Enough of them; keeps the test quick.
    const std::string attachment(static_cast<size_t>(fields.attachment_size), 'a');
    fields.attachment_size = 12345;  // Overwritten from the attachment.
    wire::RpcMeta meta = protobuf_meta(fields);
    for (int form = 0; form < 4; ++form) {
      ResponseMetaEncoder::Fields written = fields;
      GatherBuffer ours;
      GatherBuffer theirs;
      EncodeStatus ours_status;
      EncodeStatus theirs_status;
      if (form == 0) {
        ours_status = encode_frame(written, &small, std::string(attachment), 1 << 20, ours);
        theirs_status = encode_frame(meta, &small, std::string(attachment), 1 << 20, theirs);
      } else if (form == 1) {
        ours_status = encode_frame(written, nullptr, std::string(attachment), 1 << 20, ours);
        theirs_status = encode_frame(meta, nullptr, std::string(attachment), 1 << 20, theirs);
      } else if (form == 2) {
        ours_status = encode_frame(written, "compressed", std::string(attachment), 1 << 20, ours);
        theirs_status = encode_frame(meta, "compressed", std::string(attachment), 1 << 20, theirs);
      } else {
        auto owner = std::make_shared<int>(0);
        const auto keep_alive = [owner] { return std::shared_ptr<const void>(owner); };
        ours_status = encode_frame_referencing(written, large, keep_alive,
                                               std::string(attachment), 1 << 20, ours);
        theirs_status = encode_frame_referencing(meta, large, keep_alive,
                                                 std::string(attachment), 1 << 20, theirs);
      }
      ASSERT_EQ(ours_status, EncodeStatus::kOk);
      ASSERT_EQ(theirs_status, EncodeStatus::kOk);
      EXPECT_EQ(written.attachment_size, static_cast<int32_t>(attachment.size()));
      ASSERT_EQ(testing::flatten(ours), testing::flatten(theirs)) << form;
      ++checked;
    }
  }
  EXPECT_GT(checked, 1000);
}

TEST(ResponseMetaEncoderTest, ATooLargeAnswerAppendsNothing) {
  example::EchoResponse response;
  response.set_message(std::string(5000, 'x'));
  ResponseMetaEncoder::Fields fields;
  fields.correlation_id = 9;
  GatherBuffer out;
  EXPECT_EQ(encode_frame(fields, &response, std::string(), 4096, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(out.size(), 0u);
}

}  // namespace
}  // namespace percore
