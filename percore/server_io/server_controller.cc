#include <percore/server_io/server_controller.h>

#include <percore/proto/detail/stream_core.h>

#include <cstdarg>
#include <cstdio>

namespace percore {

const std::string& ServerController::peer_certificate_subject() const {
  static const std::string kNone;
  return peer_certificate_subject_ != nullptr ? *peer_certificate_subject_ : kNone;
}

void ServerController::Reset() {
  error_code_ = percore::ErrorCode::kOk;
  error_text_.clear();
  request_attachment_.clear();
  response_attachment_.clear();
  remote_side_.clear();
  auth_context_.reset();
  peer_certificate_subject_.reset();
  log_id_ = 0;
  trace_id_ = 0;
  span_id_ = 0;
  parent_span_id_ = 0;
  request_compress_type_ = CompressType::kNone;
  response_compress_type_ = CompressType::kNone;
  deadline_ = Clock::time_point::max();
  on_end_ = nullptr;
  remote_stream_id_ = kInvalidStreamId;
  remote_needs_feedback_ = false;
  remote_writable_ = true;
  streams_supported_ = false;
  max_stream_frame_bytes_ = 0;
  offered_stream_id_ = kInvalidStreamId;
  accepted_stream_.reset();
}

bool ServerController::AcceptStream(const StreamOptions& options, std::shared_ptr<Stream>* stream) {
  if (!has_remote_stream() || !streams_supported_ || accepted_stream_ != nullptr ||
      stream == nullptr) {
    return false;
  }
  const StreamId id =
      offered_stream_id_ != kInvalidStreamId ? offered_stream_id_ : detail::next_stream_id();
  accepted_stream_ = std::make_shared<detail::StreamCore>(id, options, max_stream_frame_bytes_);
  *stream = accepted_stream_;
  return true;
}

CallContext ServerController::downstream_context() const {
  CallContext context;
  context.deadline = deadline_;
  context.log_id = log_id_;
  context.trace_id = trace_id_;
  context.span_id = span_id_;
  context.parent_span_id = parent_span_id_;
  return context;
}

void ServerController::NotifyOnCancel(google::protobuf::Closure* callback) {
  on_end_ = callback;
}

void ServerController::SetFailed(const std::string& reason) {
  SetFailed(percore::ErrorCode::kInternal, reason);
}

void ServerController::SetFailed(percore::ErrorCode code, std::string text) {
  // A handler that "fails" with OK still failed: report it as internal.
  error_code_ = code == percore::ErrorCode::kOk ? percore::ErrorCode::kInternal : code;
  error_text_ = std::move(text);
}

void ServerController::SetFailed(int code, const char* format, ...) {
  std::string text;
  if (format != nullptr) {
    va_list arguments;
    va_start(arguments, format);
    va_list measure;
    va_copy(measure, arguments);
    const int length = std::vsnprintf(nullptr, 0, format, measure);
    va_end(measure);
    if (length > 0) {
      text.resize(static_cast<size_t>(length));
      // vsnprintf writes the terminating NUL into size()+1: std::string
      // keeps room for it.
      std::vsnprintf(text.data(), text.size() + 1, format, arguments);
    }
    va_end(arguments);
  }
  SetFailed(static_cast<percore::ErrorCode>(code), std::move(text));
}

}  // namespace percore
