#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/frame.h>
#include <percore/proto/streaming_rpc_meta.pb.h>

// brpc's stream frames (src/brpc/policy/streaming_rpc_protocol.cpp): the
// 12-byte header "STRM" + body_size (uint32 BE) + meta_size (uint32 BE), then
// a serialized StreamFrameMeta, then the data (DATA frames only; RST, CLOSE
// and FEEDBACK carry none). They share the connection with PRPC frames.
namespace percore {

// One decoded stream frame (FrameDecoder::next with stream frames accepted).
// `data` points into the decoder's buffer and is valid until the decoder's
// next prepare(), feed() or next() call.
struct StreamFrame {
  wire::StreamFrameMeta meta;
  std::string_view data;
  uint32_t body_bytes = 0;

  int64_t stream_id() const { return meta.stream_id(); }
  wire::FrameType type() const { return meta.frame_type(); }
};

// Metas of the four frames as brpc writes them (streaming_rpc_protocol.cpp,
// stream.cpp); `to` is the receiver's stream id, `from` the sender's.
// DATA sets has_continuation even when false (brpc's SendStreamData and
// Stream::WritePacked do), so the bytes match brpc's.
wire::StreamFrameMeta data_frame_meta(int64_t to, int64_t from, bool has_continuation = false);
// FEEDBACK: `consumed_bytes` is the cumulative count of message bytes consumed.
wire::StreamFrameMeta feedback_frame_meta(int64_t to, int64_t from, int64_t consumed_bytes);
wire::StreamFrameMeta close_frame_meta(int64_t to, int64_t from);
// RST carries no source_stream_id (brpc's SendStreamRst), so that an RST is
// never answered with another.
wire::StreamFrameMeta rst_frame_meta(int64_t to);

// Appends one stream frame to `out`: header, meta, data. The meta is
// serialized straight into the buffer; `data` is moved in (large data is
// referenced, not copied). body_size (meta + data) above `max_body_bytes`:
// kBodyTooLarge and nothing appended. Any thread; touches only its arguments.
EncodeStatus encode_stream_frame(const wire::StreamFrameMeta& meta, std::string&& data,
                                 size_t max_body_bytes, GatherBuffer& out);

}  // namespace percore
