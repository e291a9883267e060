#pragma once

#include <google/protobuf/service.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include <percore/base/call_context.h>
#include <percore/proto/error_code.h>
#include <percore/proto/frame.h>
#include <percore/proto/stream.h>

namespace percore {

namespace detail {
class ThreadGroup;
class SendThread;
class ReceiveThread;
struct CallCompleter;
class StreamCore;
}  // namespace detail

// The client side's RpcController: per-call settings in, outcome out.
// Set the settings before the call; read the outcome after it ends (after a
// synchronous CallMethod returns, or in/after `done`). Reset() before reuse.
//
// A call made on behalf of another (a server handler calling the next
// stage) takes that call's deadline, log id and trace with
// inherit(server_controller.downstream_context()): see inherit().
//
// Owns: its attachments and outcome. Threads: the caller's before the call;
// percore's while it runs; the caller's again once it has ended.
class Controller : public google::protobuf::RpcController {
 public:
  Controller() = default;
  // A stream opened here whose call was never made ends kNotAccepted.
  ~Controller() override;

  // --- settings ---
  // timeout_ms() when none was set: the call takes the Channel's timeout_ms.
  static constexpr int kChannelTimeout = std::numeric_limits<int>::min();
  // Deadline of this call in milliseconds, with ChannelOptions::timeout_ms's
  // meaning (brpc's): >= 0 is a deadline (0: the call fails at once with
  // 1008), -1 (or any negative value) means no deadline. Unset (the default,
  // and after Reset()): the Channel's.
  void set_timeout_ms(int timeout_ms) { timeout_ms_ = timeout_ms < 0 ? -1 : timeout_ms; }
  int timeout_ms() const { return timeout_ms_; }
  // Retries after the connection broke under a written call; -1 (default)
  // takes the Channel's max_retry.
  void set_max_retry(int max_retry) { max_retry_ = max_retry; }
  int max_retry() const { return max_retry_; }
  void set_log_id(int64_t log_id) { log_id_ = log_id; }
  int64_t log_id() const { return log_id_; }
  // The call's trace (brpc's RpcRequestMeta trace_id, span_id,
  // parent_span_id), sent only when set (non-zero); the server reads them in
  // ServerController. percore does not start traces: with none set, none is
  // sent.
  void set_trace_id(int64_t trace_id) { trace_id_ = trace_id; }
  int64_t trace_id() const { return trace_id_; }
  void set_span_id(int64_t span_id) { span_id_ = span_id; }
  int64_t span_id() const { return span_id_; }
  void set_parent_span_id(int64_t parent_span_id) { parent_span_id_ = parent_span_id; }
  int64_t parent_span_id() const { return parent_span_id_; }
  // Makes this call a step of `context`'s call (gRPC's context
  // propagation): timeout_ms = the time left before its deadline, in whole
  // milliseconds rounded down (under 1 ms left: 0, so the call fails at once
  // with 1008 and is never sent; no deadline: timeout_ms is left as it is,
  // the Channel's unless set, so that the call still ends); its log_id; and,
  // when it is traced, the same trace_id, parent_span_id = its span_id and a
  // fresh span_id (new_span_id()). An untraced context clears the trace.
  // It reads the clock: call it just before CallMethod. A later
  // set_timeout_ms() overrides it.
  void inherit(const CallContext& context);
  // Compresses the request message (never the attachment) as `type` (brpc's
  // Controller::set_request_compress_type): kNone (default), kSnappy, kGzip
  // or kZlib, written in RpcMeta.compress_type. Compression runs on the
  // calling thread. max_body_bytes applies to the compressed body sent; the
  // server refuses (1003) a message that inflates past its own
  // max_body_bytes.
  void set_request_compress_type(CompressType type) { request_compress_type_ = type; }
  CompressType request_compress_type() const { return request_compress_type_; }
  // Raw bytes sent after the request message. The call takes them over
  // (moved into the frame, never copied): the string is empty once the call
  // has started.
  std::string& request_attachment() { return request_attachment_; }

  // Attaches a stream to the next call made with this controller (brpc's
  // StreamCreate): the request carries this side's StreamSettings; the
  // stream connects when the response arrives, if the server's handler
  // accepted it (ServerController::AcceptStream), and ends kNotAccepted
  // otherwise, or when the call fails. Messages written before that wait;
  // the handler (options.handler) is told of messages and of the end on the
  // group's receive or send thread. A call with a stream is not retried nor
  // sent again to another server (max_retry and max_resends count as 0): the
  // stream belongs to one connection. Returns the stream; one per call (a
  // second open_stream replaces the first, which ends kNotAccepted at once,
  // as does one whose call is never made, when the controller is Reset or
  // destroyed).
  std::shared_ptr<Stream> open_stream(const StreamOptions& options);

  // --- outcome ---
  bool Failed() const override { return error_code_ != ErrorCode::kOk; }
  std::string ErrorText() const override { return error_text_; }
  // How the call ended, as brpc's Controller::ErrorCode(): 0 when it
  // succeeded, else one of percore::ErrorCode (compare with to_int()) or a
  // number a server's application chose (error_code_name() names it).
  int32_t ErrorCode() const { return static_cast<int32_t>(error_code_); }
  // How the server compressed the response message (its RpcMeta
  // .compress_type); percore has already decompressed it. kNone when the
  // call failed.
  CompressType response_compress_type() const { return response_compress_type_; }
  // Raw bytes the server sent after the response message.
  std::string& response_attachment() { return response_attachment_; }
  // From the start of CallMethod to the end of the call, in microseconds.
  int64_t latency_us() const { return latency_us_; }
  // "ip:port" of the server that answered (or last tried); empty if none.
  const std::string& remote_side() const { return remote_side_; }
  // How many times the call was sent again on another connection.
  int retried_count() const { return retried_count_; }

  // --- google::protobuf::RpcController ---
  void Reset() override;
  // Client-side cancellation is not supported; the deadline bounds a call.
  void StartCancel() override {}
  // Marks the controller failed with 2001 and `reason` (for use by code that
  // shares controllers between layers; percore itself sets the outcome).
  void SetFailed(const std::string& reason) override;
  bool IsCanceled() const override { return false; }
  void NotifyOnCancel(google::protobuf::Closure* callback) override;

 private:
  friend struct detail::CallCompleter;
  friend class detail::ThreadGroup;
  friend class detail::ReceiveThread;

  int timeout_ms_ = kChannelTimeout;
  int max_retry_ = -1;
  int64_t log_id_ = 0;
  int64_t trace_id_ = 0;
  int64_t span_id_ = 0;
  int64_t parent_span_id_ = 0;
  CompressType request_compress_type_ = CompressType::kNone;
  std::string request_attachment_;
  std::shared_ptr<detail::StreamCore> stream_;  // open_stream(); taken by the call.
  void abandon_stream();
  CompressType response_compress_type_ = CompressType::kNone;

  percore::ErrorCode error_code_ = ErrorCode::kOk;
  std::string error_text_;
  std::string response_attachment_;
  int64_t latency_us_ = 0;
  std::string remote_side_;
  int retried_count_ = 0;
};

}  // namespace percore
