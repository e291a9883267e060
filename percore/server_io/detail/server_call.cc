#include <percore/server_io/detail/server_call.h>

#include <exception>
#include <string>
#include <utility>

#include <percore/proto/closure_guard.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/detail/compression.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/service_table.h>

namespace percore::detail {

namespace {
// The call whose handler this thread is running, and whether that call's
// done has run on this thread since: what execute() needs to know when the
// handler throws (after done ran, the call may already be recycled).
thread_local ServerCall* t_handler_call = nullptr;
thread_local bool t_handler_done_ran = false;
}  // namespace

ServerCall::ServerCall(IoThread& io_thread, MethodEntry& method)
    : io_thread_(io_thread),
      method_(method),
      request_(method.request_prototype->New()),
      response_(method.response_prototype->New()) {}

std::shared_ptr<const google::protobuf::Message> ServerCall::lend_response() {
  io_thread_.assert_in_loop_thread();
  large_ = true;
  return std::shared_ptr<const google::protobuf::Message>(std::move(response_));
}

void ServerCall::begin(uint64_t connection_id, int64_t correlation_id,
                       Clock::time_point received_at) {
  connection_id_ = connection_id;
  correlation_id_ = correlation_id;
  received_at_ = received_at;
  abandoned.store(false, std::memory_order_relaxed);
  handler_started.store(false, std::memory_order_relaxed);
  done_ran_.store(false, std::memory_order_relaxed);
  large_ = false;
  previous_in_flight = nullptr;
  next_in_flight = nullptr;
  controller_.Reset();
  deferred_request_type_ = CompressType::kNone;
  deferred_request_.clear();
  compressed_response_.clear();
  response_->Clear();  // The request is overwritten by its parse.
}

void ServerCall::set_request_context(const std::string& remote_side,
                                     std::shared_ptr<const AuthContext> auth_context,
                                     const wire::RpcRequestMeta& meta, std::string_view attachment,
                                     size_t message_bytes) {
  note_answer_bytes(message_bytes + attachment.size());
  controller_.remote_side_.assign(remote_side);
  controller_.auth_context_ = std::move(auth_context);
  controller_.log_id_ = meta.log_id();
  controller_.trace_id_ = meta.trace_id();
  controller_.span_id_ = meta.span_id();
  controller_.parent_span_id_ = meta.parent_span_id();
  if (meta.timeout_ms() > 0)
    controller_.deadline_ = received_at_ + std::chrono::milliseconds(meta.timeout_ms());
  controller_.request_attachment_.assign(attachment.data(), attachment.size());
}

void ServerCall::set_remote_stream(int64_t remote_id, bool remote_needs_feedback,
                                   bool remote_writable, bool supported) {
  controller_.remote_stream_id_ = remote_id;
  controller_.remote_needs_feedback_ = remote_needs_feedback;
  controller_.remote_writable_ = remote_writable;
  controller_.streams_supported_ = supported;
  controller_.max_stream_frame_bytes_ = io_thread_.core().options.max_body_bytes;
}

bool ServerCall::parse_request(std::string_view bytes, CompressType type, std::string* error) {
  controller_.request_compress_type_ = type;
  if (type == CompressType::kNone)
    return method_.request_parser.parse(bytes, *request_, error);
  const bool ok = method_.request_parser.parse(bytes, type, io_thread_.core().options.max_body_bytes,
                                               *request_, error);
  // The inflated message may have grown the request's strings: a large one
  // is not pooled (an estimate, so the cost is paid by compressed calls only).
  note_answer_bytes(ok ? request_->ByteSizeLong() : io_thread_.core().options.max_body_bytes);
  return ok;
}

void ServerCall::defer_request(std::string_view compressed, CompressType type) {
  deferred_request_type_ = type;
  controller_.request_compress_type_ = type;
  deferred_request_.assign(compressed.data(), compressed.size());
  note_answer_bytes(compressed.size());
}

void ServerCall::execute() {
  if (abandoned.load(std::memory_order_acquire)) {
    Run();
    return;
  }
  if (deferred_request_type_ != CompressType::kNone) {
    const CompressType type = std::exchange(deferred_request_type_, CompressType::kNone);
    std::string error;
    const bool parsed = parse_request(deferred_request_, type, &error);
    deferred_request_.clear();
    if (!parsed) {
      ServerCore& core = io_thread_.core();
      core.bad_request_log.log(LogLevel::kWarning, [&] {
        std::string text = "answering 1003 to ";
        text += controller_.remote_side();
        text += ": request to ";
        text += method_.full_name;
        text += " ";
        text += error;
        return text;
      });
      std::string text = "request ";
      text += error;
      controller_.SetFailed(ErrorCode::kBadRequest, std::move(text));
      Run();
      return;
    }
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
  // An exception escaping a handler must not end the process (it would
  // leave the I/O or worker thread): it is caught, logged, counted, and the
  // call answered 2001 unless its done already ran on this thread (a
  // ClosureGuard during the unwinding, which Run() turns into 2001 too).
  // After CallMethod `this` may be recycled: only locals from here on.
  ServerCore& core = io_thread_.core();
  const std::string& method_name = method_.full_name;
  handler_started.store(true, std::memory_order_relaxed);
  ServerCall* const outer_call = std::exchange(t_handler_call, this);
  const bool outer_done_ran = std::exchange(t_handler_done_ran, false);
  const char* what = nullptr;
  std::string what_text;
  try {
    method_.service->CallMethod(method_.method, &controller_, request_.get(), response_.get(),
                                this);
  } catch (const std::exception& error) {
    what_text = error.what();
    what = what_text.c_str();
  } catch (...) {
    what = "an exception not derived from std::exception";
  }
  const bool done_ran = std::exchange(t_handler_done_ran, outer_done_ran);
  t_handler_call = outer_call;
  if (what == nullptr)
    return;
  core.handler_exceptions.fetch_add(1, std::memory_order_relaxed);
  core.handler_exception_log.log(LogLevel::kError, [&] {
    std::string text = "handler of ";
    text += method_name;
    text += " threw: ";
    text += what;
    text += done_ran ? " (its done had run)" : " (answered 2001)";
    return text;
  });
  if (done_ran)
    return;
  std::string text = "the handler threw: ";
  text += what;
  controller_.SetFailed(ErrorCode::kInternal, std::move(text));
  Run();
}

void ServerCall::Run() {
  // Catches a second Run while the call waits in the pool (not once reused).
  // Plain load and store: a handler running done twice at once is a bug this
  // need not catch, and an atomic exchange would cost every call.
  PERCORE_ASSERT(!done_ran_.load(std::memory_order_relaxed) &&
                 "a handler ran its done twice (done must run exactly once)");
  done_ran_.store(true, std::memory_order_relaxed);
  if (t_handler_call == this)
    t_handler_done_ran = true;
  // Run by a ClosureGuard while an exception unwinds the handler: the
  // response is half made, so the answer is 2001, never a success. (The
  // guard asks std::uncaught_exceptions(), which costs a call into the C++
  // runtime, so that this path, run by every call, does not.)
  if (closure_guard_detail::running_while_unwinding && !controller_.Failed())
    controller_.SetFailed(ErrorCode::kInternal, "the handler threw an exception");
  // The handler has let go of the response: compress it here, on its thread.
  if (controller_.response_compress_type_ != CompressType::kNone && !controller_.Failed() &&
      !abandoned.load(std::memory_order_acquire) && response_->IsInitialized()) {
    compressed_response_.clear();
    if (!serialize_compressed(*response_, controller_.response_compress_type_,
                              compressed_response_)) {
      // As brpc answers a response it cannot compress (baidu_rpc_protocol.cpp).
      compressed_response_.clear();
      std::string text = "failed to compress the response as ";
      text += compress_type_name(static_cast<int32_t>(controller_.response_compress_type_));
      controller_.SetFailed(ErrorCode::kBadResponse, std::move(text));
    }
  }
  io_thread_.finish_call(this);
}

google::protobuf::Closure* ServerCall::take_end_callback() {
  return std::exchange(controller_.on_end_, nullptr);
}

}  // namespace percore::detail
