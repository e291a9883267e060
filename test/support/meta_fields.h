#pragma once

#include <cstdint>

#include <percore/proto/rpc_meta.pb.h>

namespace percore::testing {

// The RpcMeta fields a request and a response carry alike, set as percore's
// meta encoders write them (each optional one present only when non-zero):
// the reference the hand-written encoders' tests compare against.
inline void set_shared_meta_fields(wire::RpcMeta& meta, int64_t correlation_id,
                                   int32_t attachment_size, int64_t stream_id,
                                   bool stream_need_feedback) {
  meta.set_correlation_id(correlation_id);
  if (attachment_size != 0)
    meta.set_attachment_size(attachment_size);
  if (stream_id != 0) {
    meta.mutable_stream_settings()->set_stream_id(stream_id);
    meta.mutable_stream_settings()->set_need_feedback(stream_need_feedback);
    meta.mutable_stream_settings()->set_writable(true);
  }
}

}  // namespace percore::testing
