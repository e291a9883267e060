#include <percore/server_io/server_controller.h>

namespace percore {

void ServerController::Reset() {
  error_code_ = ErrorCode::kOk;
  error_text_.clear();
  request_attachment_.clear();
  response_attachment_.clear();
  remote_side_.clear();
  log_id_ = 0;
  request_compress_type_ = CompressType::kNone;
  response_compress_type_ = CompressType::kNone;
  deadline_ = Clock::time_point::max();
  on_end_ = nullptr;
}

void ServerController::NotifyOnCancel(google::protobuf::Closure* callback) {
  on_end_ = callback;
}

void ServerController::SetFailed(const std::string& reason) {
  SetFailed(ErrorCode::kInternal, reason);
}

void ServerController::SetFailed(ErrorCode code, std::string text) {
  // A handler that "fails" with OK still failed: report it as internal.
  error_code_ = code == ErrorCode::kOk ? ErrorCode::kInternal : code;
  error_text_ = std::move(text);
}

}  // namespace percore
