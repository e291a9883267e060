#include <percore/client_proxy/controller.h>

namespace percore {

void Controller::Reset() {
  timeout_ms_ = kChannelTimeout;
  max_retry_ = -1;
  log_id_ = 0;
  request_compress_type_ = CompressType::kNone;
  request_attachment_.clear();
  response_compress_type_ = CompressType::kNone;
  error_code_ = percore::ErrorCode::kOk;
  error_text_.clear();
  response_attachment_.clear();
  latency_us_ = 0;
  remote_side_.clear();
  retried_count_ = 0;
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
