#include <percore/server_io/detail/server_call.h>

#include <string>

#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/service_table.h>

namespace percore::detail {

ServerCall::ServerCall(IoThread& io_thread, MethodEntry& method)
    : io_thread_(io_thread),
      method_(method),
      request_(method.request_prototype->New()),
      response_(method.response_prototype->New()) {}

void ServerCall::begin(uint64_t connection_id, int64_t correlation_id,
                       Clock::time_point received_at) {
  connection_id_ = connection_id;
  correlation_id_ = correlation_id;
  received_at_ = received_at;
  abandoned.store(false, std::memory_order_relaxed);
  large_ = false;
  previous_in_flight = nullptr;
  next_in_flight = nullptr;
  controller_.Reset();
  response_->Clear();  // The request is overwritten by its parse.
}

void ServerCall::set_request_context(const std::string& remote_side, int64_t log_id,
                                     int32_t timeout_ms, std::string_view attachment,
                                     size_t message_bytes) {
  large_ = message_bytes + attachment.size() > kMaxPooledBytes;
  controller_.remote_side_.assign(remote_side);
  controller_.log_id_ = log_id;
  if (timeout_ms > 0)
    controller_.deadline_ = received_at_ + std::chrono::milliseconds(timeout_ms);
  controller_.request_attachment_.assign(attachment.data(), attachment.size());
}

void ServerCall::execute() {
  if (abandoned.load(std::memory_order_acquire)) {
    Run();
    return;
  }
  if (Clock::now() > controller_.deadline_) {
    const auto waited =
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - received_at_);
    controller_.SetFailed(ErrorCode::kTimedOut, "deadline passed while the request waited (" +
                                                    std::to_string(waited.count()) +
                                                    " ms); the handler did not run");
    Run();
    return;
  }
  method_.service->CallMethod(method_.method, &controller_, request_.get(), response_.get(), this);
}

void ServerCall::Run() {
  io_thread_.finish_call(this);
}

google::protobuf::Closure* ServerCall::take_end_callback() {
  return std::exchange(controller_.on_end_, nullptr);
}

}  // namespace percore::detail
