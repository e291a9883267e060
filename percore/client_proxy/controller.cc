#include <percore/client_proxy/controller.h>

#include <percore/proto/detail/stream_core.h>

namespace percore {

void Controller::Reset() {
  timeout_ms_ = kChannelTimeout;
  max_retry_ = -1;
  log_id_ = 0;
  trace_id_ = 0;
  span_id_ = 0;
  parent_span_id_ = 0;
  request_compress_type_ = CompressType::kNone;
  request_attachment_.clear();
  response_compress_type_ = CompressType::kNone;
  error_code_ = percore::ErrorCode::kOk;
  error_text_.clear();
  response_attachment_.clear();
  latency_us_ = 0;
  remote_side_.clear();
  retried_count_ = 0;
  abandon_stream();
}

Controller::~Controller() {
  abandon_stream();
}

void Controller::abandon_stream() {
  // Still here: no call took it (a call's end moves it out).
  if (std::shared_ptr<detail::StreamCore> stream = std::move(stream_))
    stream->end(StreamEndReason::kNotAccepted);
}

std::shared_ptr<Stream> Controller::open_stream(const StreamOptions& options) {
  abandon_stream();
  stream_ = std::make_shared<detail::StreamCore>(detail::next_stream_id(), options,
                                                 kDefaultMaxBodyBytes);
  return stream_;
}

void Controller::inherit(const CallContext& context) {
  // Rounded down, and 0 under 1 ms: the downstream deadline never falls
  // after the incoming one, and an expired call costs no send. Without a
  // deadline the call keeps its own (the Channel's): every call ends.
  if (context.has_deadline())
    set_timeout_ms(context.remaining_timeout_ms());
  log_id_ = context.log_id;
  trace_id_ = context.trace_id;
  if (context.trace_id != 0) {
    parent_span_id_ = context.span_id;
    span_id_ = new_span_id();
  } else {
    parent_span_id_ = 0;
    span_id_ = 0;
  }
}

void Controller::SetFailed(const std::string& reason) {
  error_code_ = ErrorCode::kInternal;
  error_text_ = reason;
}

void Controller::NotifyOnCancel(google::protobuf::Closure* callback) {
  // Never cancelled: as with other RPC systems that cannot cancel, the
  // callback runs at once rather than never.
  if (callback != nullptr)
    callback->Run();
}

}  // namespace percore
