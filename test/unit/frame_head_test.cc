#include <gtest/gtest.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include <percore/proto/echo.pb.h>
#include <percore/proto/frame.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/rpc_meta.pb.h>
#include "test/support/bytes.h"

namespace percore {
namespace {

using testing::flatten;
using testing::patterned_bytes;

wire::RpcMeta request_meta(int64_t correlation_id) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.mutable_request()->set_timeout_ms(250);
  meta.set_correlation_id(correlation_id);
  return meta;
}

// The whole frame as encode_frame writes it.
std::string whole_frame(wire::RpcMeta meta, const google::protobuf::MessageLite* message,
                        const std::string& attachment) {
  GatherBuffer out;
  EXPECT_EQ(encode_frame(meta, message, std::string(attachment), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  return flatten(out);
}

// --- encode_frame_head -------------------------------------------------------

TEST(FrameHeadTest, HeadPlusAttachmentEqualsWholeFrame) {
  example::EchoRequest request;
  request.set_message("hello, head");
  // Empty, small (copied by a GatherBuffer) and large (referenced).
  for (size_t attachment_bytes :
       {size_t{0}, size_t{1}, size_t{5}, GatherBuffer::kCopyThreshold, size_t{100000}}) {
    SCOPED_TRACE(::testing::Message() << "attachment of " << attachment_bytes);
    const std::string attachment = patterned_bytes(attachment_bytes, 7);
    // A meta that says "attachment" even though there is none must be cleaned
    // up the same way by both.
    wire::RpcMeta meta = request_meta(-42);
    meta.set_attachment_size(99);

    std::string head;
    wire::RpcMeta head_meta = meta;
    ASSERT_EQ(encode_frame_head(head_meta, &request, attachment.size(), kDefaultMaxBodyBytes, head),
              EncodeStatus::kOk);
    EXPECT_EQ(head + attachment, whole_frame(meta, &request, attachment));
    if (attachment_bytes == 0) {
      EXPECT_FALSE(head_meta.has_attachment_size());
    } else {
      EXPECT_EQ(head_meta.attachment_size(), static_cast<int32_t>(attachment_bytes));
    }
  }
}

TEST(FrameHeadTest, HeadWithoutMessageEqualsWholeFrame) {
  wire::RpcMeta meta;
  meta.set_correlation_id(3);
  meta.mutable_response()->set_error_code(1008);
  meta.mutable_response()->set_error_text("timed out");
  const std::string attachment = patterned_bytes(700);
  std::string head;
  wire::RpcMeta head_meta = meta;
  ASSERT_EQ(encode_frame_head(head_meta, nullptr, attachment.size(), kDefaultMaxBodyBytes, head),
            EncodeStatus::kOk);
  EXPECT_EQ(head + attachment, whole_frame(meta, nullptr, attachment));
}

// Sent through a GatherBuffer the way the client proxy does: the head copied,
// the attachment shared.
TEST(FrameHeadTest, HeadAndSharedAttachmentInAGatherBufferDecode) {
  example::EchoRequest request;
  request.set_message("shared");
  auto attachment = std::make_shared<const std::string>(patterned_bytes(4096, 3));
  wire::RpcMeta meta = request_meta(77);
  std::string head;
  ASSERT_EQ(encode_frame_head(meta, &request, attachment->size(), kDefaultMaxBodyBytes, head),
            EncodeStatus::kOk);

  GatherBuffer out;
  out.append_copy(head);
  out.append_shared(attachment);
  const std::string bytes = flatten(out);
  EXPECT_EQ(bytes, whole_frame(request_meta(77), &request, *attachment));

  FrameDecoder decoder;
  decoder.feed(bytes);
  Frame frame;
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.meta.correlation_id(), 77);
  EXPECT_EQ(frame.attachment, *attachment);
  example::EchoRequest decoded;
  ASSERT_TRUE(decoded.ParseFromArray(frame.message.data(), static_cast<int>(frame.message.size())));
  EXPECT_EQ(decoded.message(), "shared");
}

TEST(FrameHeadTest, HeadIsAppendedAfterWhatOutHolds) {
  example::EchoRequest request;
  request.set_message("x");
  std::string out = "already here";
  wire::RpcMeta meta = request_meta(1);
  ASSERT_EQ(encode_frame_head(meta, &request, 10, kDefaultMaxBodyBytes, out), EncodeStatus::kOk);
  const std::string attachment(10, 'a');
  const std::string frame = whole_frame(request_meta(1), &request, attachment);
  EXPECT_EQ(out + attachment, "already here" + frame);
}

TEST(FrameHeadTest, BodyOverTheLimitIsRefusedAndOutIsUnchanged) {
  example::EchoRequest request;
  request.set_message(patterned_bytes(100));
  constexpr size_t kAttachmentBytes = 1000;

  // The exact body size of this frame.
  std::string head;
  wire::RpcMeta probe = request_meta(5);
  ASSERT_EQ(encode_frame_head(probe, &request, kAttachmentBytes, kDefaultMaxBodyBytes, head),
            EncodeStatus::kOk);
  const size_t body_bytes = head.size() - kFrameHeaderBytes + kAttachmentBytes;

  // One byte over: refused, nothing written.
  std::string out = "keep me";
  wire::RpcMeta meta = request_meta(5);
  EXPECT_EQ(encode_frame_head(meta, &request, kAttachmentBytes, body_bytes - 1, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(out, "keep me");

  // Exactly at the limit: accepted.
  out = "keep me";
  meta = request_meta(5);
  EXPECT_EQ(encode_frame_head(meta, &request, kAttachmentBytes, body_bytes, out),
            EncodeStatus::kOk);
  EXPECT_EQ(out, "keep me" + head);

  // encode_frame draws the line in the same place.
  GatherBuffer buffer;
  meta = request_meta(5);
  EXPECT_EQ(
      encode_frame(meta, &request, std::string(kAttachmentBytes, 'z'), body_bytes - 1, buffer),
      EncodeStatus::kBodyTooLarge);
  EXPECT_TRUE(buffer.empty());
}

TEST(FrameHeadTest, AttachmentAloneOverTheLimitIsRefused) {
  std::string out = "keep me";
  wire::RpcMeta meta = request_meta(6);
  // The attachment is never touched, so a size no string could have is fine.
  EXPECT_EQ(encode_frame_head(meta, nullptr, kDefaultMaxBodyBytes + 1, kDefaultMaxBodyBytes, out),
            EncodeStatus::kBodyTooLarge);
  EXPECT_EQ(out, "keep me");
  // Beyond what attachment_size (int32) and body_size (uint32) can say, even
  // with no limit of our own.
  const size_t no_limit = std::numeric_limits<size_t>::max();
  for (size_t attachment_bytes : {size_t{std::numeric_limits<int32_t>::max()} + 1,
                                  size_t{std::numeric_limits<uint32_t>::max()}, size_t{1} << 40}) {
    meta = request_meta(6);
    EXPECT_EQ(encode_frame_head(meta, nullptr, attachment_bytes, no_limit, out),
              EncodeStatus::kBodyTooLarge)
        << attachment_bytes;
    EXPECT_EQ(out, "keep me");
  }
}

// --- GatherBuffer::append_shared ---------------------------------------------

TEST(GatherBufferSharedTest, SmallSharedStringIsCopied) {
  GatherBuffer buffer;
  auto shared =
      std::make_shared<const std::string>(patterned_bytes(GatherBuffer::kCopyThreshold - 1));
  buffer.append_copy("head");
  buffer.append_shared(shared);
  // Copied into the arena beside "head": one chunk, and no reference kept.
  ASSERT_EQ(buffer.chunk_count(), 1u);
  EXPECT_EQ(buffer.chunk(0), "head" + *shared);
  EXPECT_EQ(shared.use_count(), 1);
  const char* begin = shared->data();
  const char* end = begin + shared->size();
  EXPECT_FALSE(buffer.chunk(0).data() >= begin && buffer.chunk(0).data() < end);
}

TEST(GatherBufferSharedTest, LargeSharedStringIsReferencedWhileHeld) {
  GatherBuffer buffer;
  auto shared = std::make_shared<const std::string>(patterned_bytes(GatherBuffer::kCopyThreshold));
  buffer.append_copy("head");
  buffer.append_shared(shared);
  buffer.append_copy("tail");

  ASSERT_EQ(buffer.chunk_count(), 3u);
  EXPECT_EQ(buffer.chunk(0), "head");
  EXPECT_EQ(buffer.chunk(1).data(), shared->data());  // The very same bytes.
  EXPECT_EQ(buffer.chunk(1).size(), shared->size());
  EXPECT_EQ(buffer.chunk(2), "tail");
  EXPECT_EQ(buffer.size(), 8 + shared->size());
  EXPECT_EQ(shared.use_count(), 2);

  iovec vecs[4];
  ASSERT_EQ(buffer.fill_iovecs(vecs, 4), 3);
  EXPECT_EQ(vecs[1].iov_base, static_cast<const void*>(shared->data()));
  EXPECT_EQ(vecs[1].iov_len, shared->size());

  // Partly written: still held, the chunk now starts further in.
  buffer.consume(4 + 100);
  EXPECT_EQ(shared.use_count(), 2);
  EXPECT_EQ(buffer.chunk(0).data(), shared->data() + 100);

  // Everything written: let go.
  buffer.consume(buffer.size());
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(shared.use_count(), 1);
}

TEST(GatherBufferSharedTest, ClearLetsGoOfSharedStrings) {
  GatherBuffer buffer;
  auto shared = std::make_shared<const std::string>(patterned_bytes(5000));
  buffer.append_shared(shared);
  buffer.append_shared(shared);  // The same bytes twice (a call sent again).
  EXPECT_EQ(shared.use_count(), 3);
  ASSERT_EQ(buffer.chunk_count(), 2u);
  EXPECT_EQ(buffer.chunk(0).data(), shared->data());
  EXPECT_EQ(buffer.chunk(1).data(), shared->data());
  EXPECT_EQ(flatten(buffer), *shared + *shared);
  buffer.clear();
  EXPECT_EQ(shared.use_count(), 1);
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.chunk_count(), 0u);
}

TEST(GatherBufferSharedTest, SharedStringOutlivesTheCallersReference) {
  GatherBuffer buffer;
  auto shared = std::make_shared<const std::string>(patterned_bytes(2000, 9));
  const std::string expected = *shared;
  std::weak_ptr<const std::string> watch = shared;
  buffer.append_shared(std::move(shared));
  EXPECT_FALSE(watch.expired());  // The buffer keeps the bytes alive.
  EXPECT_EQ(flatten(buffer), expected);
  buffer.consume(buffer.size());
  EXPECT_TRUE(watch.expired());
}

TEST(GatherBufferSharedTest, NullOrEmptySharedStringAddsNothing) {
  GatherBuffer buffer;
  buffer.append_shared(nullptr);
  buffer.append_shared(std::make_shared<const std::string>());
  EXPECT_TRUE(buffer.empty());
  EXPECT_EQ(buffer.chunk_count(), 0u);
}

TEST(GatherBufferSharedTest, MixedSourcesKeepTheirOrder) {
  GatherBuffer buffer;
  auto shared = std::make_shared<const std::string>(patterned_bytes(800, 5));
  const std::string owned = patterned_bytes(900, 6);
  buffer.append_copy("a");
  buffer.append_owned(std::string(owned));
  buffer.append_copy("b");
  buffer.append_shared(shared);
  buffer.append_copy("c");
  EXPECT_EQ(flatten(buffer), "a" + owned + "b" + *shared + "c");
  EXPECT_EQ(buffer.chunk_count(), 5u);
}

}  // namespace
}  // namespace percore

namespace percore {
namespace {

TEST(GatherBufferSwapTest, ExchangesEveryKindOfChunk) {
  GatherBuffer first;
  first.append_copy("head-1;");
  first.append_owned(std::string(GatherBuffer::kCopyThreshold, 'o'));
  first.append_shared(std::make_shared<const std::string>(GatherBuffer::kCopyThreshold, 's'));
  first.consume(2);  // A partly written buffer swaps too.
  GatherBuffer second;
  second.append_copy("head-2");
  const std::string first_bytes = flatten(first);
  const size_t first_size = first.size();

  first.swap(second);
  EXPECT_EQ(flatten(first), "head-2");
  EXPECT_EQ(first.size(), 6u);
  EXPECT_EQ(flatten(second), first_bytes);
  EXPECT_EQ(second.size(), first_size);
  using std::swap;
  swap(first, second);  // The non-member swap picks the member one.
  EXPECT_EQ(flatten(first), first_bytes);
  EXPECT_EQ(flatten(second), "head-2");
}

}  // namespace
}  // namespace percore
