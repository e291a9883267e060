#include <percore/proto/detail/stream_frame.h>

#include <percore/proto/detail/big_endian.h>

#include <cstring>
#include <limits>

namespace percore {
namespace {

// Writes the header and the meta of a frame with `data_bytes` of data, or
// appends nothing and says kBodyTooLarge.
EncodeStatus write_stream_head(const wire::StreamFrameMeta& meta, size_t data_bytes,
                               size_t max_body_bytes, GatherBuffer& out) {
  const size_t meta_bytes = meta.ByteSizeLong();
  // data_bytes alone may be near SIZE_MAX: compare without adding.
  if (data_bytes > max_body_bytes || meta_bytes > max_body_bytes - data_bytes ||
      meta_bytes + data_bytes > std::numeric_limits<uint32_t>::max()) {
    return EncodeStatus::kBodyTooLarge;
  }
  char* head = out.append_space(kFrameHeaderBytes + meta_bytes);
  std::memcpy(head, kStreamFrameMagic, sizeof(kStreamFrameMagic));
  put_uint32_big_endian(head + 4, static_cast<uint32_t>(meta_bytes + data_bytes));
  put_uint32_big_endian(head + 8, static_cast<uint32_t>(meta_bytes));
  // ByteSizeLong() above cached the sizes the serializer relies on.
  meta.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(head + kFrameHeaderBytes));
  return EncodeStatus::kOk;
}

}  // namespace

wire::StreamFrameMeta data_frame_meta(int64_t to, int64_t from, bool has_continuation) {
  wire::StreamFrameMeta meta;
  meta.set_stream_id(to);
  meta.set_source_stream_id(from);
  meta.set_frame_type(wire::FRAME_TYPE_DATA);
  meta.set_has_continuation(has_continuation);
  return meta;
}

wire::StreamFrameMeta feedback_frame_meta(int64_t to, int64_t from, int64_t consumed_bytes) {
  wire::StreamFrameMeta meta;
  meta.set_stream_id(to);
  meta.set_source_stream_id(from);
  meta.set_frame_type(wire::FRAME_TYPE_FEEDBACK);
  meta.mutable_feedback()->set_consumed_size(consumed_bytes);
  return meta;
}

wire::StreamFrameMeta close_frame_meta(int64_t to, int64_t from) {
  wire::StreamFrameMeta meta;
  meta.set_stream_id(to);
  meta.set_source_stream_id(from);
  meta.set_frame_type(wire::FRAME_TYPE_CLOSE);
  return meta;
}

wire::StreamFrameMeta rst_frame_meta(int64_t to) {
  wire::StreamFrameMeta meta;
  meta.set_stream_id(to);
  meta.set_frame_type(wire::FRAME_TYPE_RST);
  return meta;
}

EncodeStatus encode_stream_frame(const wire::StreamFrameMeta& meta, std::string&& data,
                                 size_t max_body_bytes, GatherBuffer& out) {
  const EncodeStatus status = write_stream_head(meta, data.size(), max_body_bytes, out);
  if (status == EncodeStatus::kOk && !data.empty())
    out.append_owned(std::move(data));
  return status;
}

}  // namespace percore
