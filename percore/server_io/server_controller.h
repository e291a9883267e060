#pragma once

#include <google/protobuf/service.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <percore/base/authenticator.h>
#include <percore/base/call_context.h>
#include <percore/proto/error_code.h>
#include <percore/proto/frame.h>
#include <percore/proto/stream.h>

namespace percore {

namespace detail {
class ServerCall;
class StreamCore;
struct WorkerCall;
}

// The RpcController a server passes to its handlers (cast the handler's
// `controller` argument to it). It carries the call's attachments, its peer,
// log id and deadline, and the handler's verdict: SetFailed(text) answers
// 2001 (internal error) with that text; SetFailed(code, format, ...) answers
// `code`, percore's or the application's own.
//
// A handler that calls other services on the call's behalf (a pipeline
// stage) passes the call on with downstream_context(): the client
// Controller's inherit() makes the next call end by this call's deadline
// and carry its log id and trace (the same trace_id, this span as parent):
//
//   auto* next = new NextCall(done);  // owns a percore::Controller, ...
//   next->controller.inherit(server_controller->downstream_context());
//   stub.Method(&next->controller, &next->request, &next->response, next);
//   // next->Run() fills the response, then runs `done`.
//
// Owns: the attachments and the error. Threads: the handler's; one thread at
// a time, up to done->Run(). done->Run() gives the controller, the request
// and the response back to the server: none may be touched afterwards (a
// large response is written from where its fields lie, not copied).
class ServerController : public google::protobuf::RpcController {
 public:
  using Clock = std::chrono::steady_clock;

  ServerController() = default;

  // --- google::protobuf::RpcController ---
  void Reset() override;
  bool Failed() const override { return error_code_ != percore::ErrorCode::kOk; }
  std::string ErrorText() const override { return error_text_; }
  // Client-side operations: a server call is never cancelled by its client.
  void StartCancel() override {}
  bool IsCanceled() const override { return false; }
  // Runs `callback` when the call ends (percore never cancels a server call).
  void NotifyOnCancel(google::protobuf::Closure* callback) override;
  // Fails the call with 2001 (internal error) and `reason`.
  void SetFailed(const std::string& reason) override;

  // Fails the call with a specific code.
  void SetFailed(percore::ErrorCode code, std::string text);
  // Fails the call with `code` and a printf-style text, as brpc's
  // Controller::SetFailed(int, const char*, ...). `code` is any int32: one of
  // percore::ErrorCode, or an application's own (pick numbers outside brpc's
  // 1000-2999, e.g. 5000 and up; 2003 would make clients send the call to
  // another server, and 35, 112 and 125 read as the client's own failures).
  // 0 is answered 2001: a failure is never OK. Texts longer than 1024 bytes
  // are cut on the wire (with a note of the full length).
  void SetFailed(int code, const char* format, ...) __attribute__((format(printf, 3, 4)));
  // The code the call will be answered with; 0 unless it failed.
  int32_t ErrorCode() const { return static_cast<int32_t>(error_code_); }

  // Raw bytes that came after the request message; the handler may move them.
  std::string& request_attachment() { return request_attachment_; }
  // Raw bytes to send after the response message.
  std::string& response_attachment() { return response_attachment_; }

  // How the client compressed the request message (RpcMeta.compress_type);
  // percore has already decompressed it.
  CompressType request_compress_type() const { return request_compress_type_; }
  // Compresses the response message (never the attachment) as `type`, as
  // brpc's Controller::set_response_compress_type does; kNone (the default)
  // sends it as it is. Written in the response's RpcMeta.compress_type. A
  // handler typically answers as it was asked:
  // set_response_compress_type(request_compress_type()). The client must
  // support the type (brpc and percore support all four); the response must
  // still fit the client's max_body_bytes once decompressed.
  void set_response_compress_type(CompressType type) { response_compress_type_ = type; }
  CompressType response_compress_type() const { return response_compress_type_; }

  // "ip:port" of the client.
  const std::string& remote_side() const { return remote_side_; }
  // Who the client proved to be (ServerOptions::authenticator); null when
  // the server has no authenticator. brpc's Controller::auth_context().
  const AuthContext* auth_context() const { return auth_context_.get(); }
  // The subject of the client's certificate, one line as OpenSSL prints it
  // ("/O=example/CN=client-a"), when the call came over TLS with a verified
  // client certificate (ServerOptions::tls verify_client); empty otherwise.
  const std::string& peer_certificate_subject() const;
  int64_t log_id() const { return log_id_; }
  // The request's trace (RpcRequestMeta trace_id, span_id, parent_span_id);
  // 0 when the client sent none.
  int64_t trace_id() const { return trace_id_; }
  int64_t span_id() const { return span_id_; }
  int64_t parent_span_id() const { return parent_span_id_; }
  // When the client stops waiting; Clock::time_point::max() if it sent no
  // timeout.
  Clock::time_point deadline() const { return deadline_; }
  // Whether the client attached a stream to this call (brpc's
  // Controller::has_remote_stream): its request carried StreamSettings.
  bool has_remote_stream() const { return remote_stream_id_ != kInvalidStreamId; }
  // Accepts the client's stream (brpc's StreamAccept): *stream is this
  // side's end, writable at once (messages wait until the response is sent;
  // the stream connects when it is). The response then carries this side's
  // StreamSettings. If the call fails (SetFailed), the stream ends
  // kNotAccepted instead. Returns false, and leaves *stream alone, when the
  // client attached no stream, it was already accepted, or the
  // connection has max_streams_per_connection streams. Works the same in a
  // worker process (kProcessPool): the stream's end is there, the server
  // relays its frames, and the worker serves no other call until the
  // stream ends. The handler's thread, before done->Run().
  bool AcceptStream(const StreamOptions& options, std::shared_ptr<Stream>* stream);

  // What a call made on this call's behalf inherits (its deadline, log id
  // and trace), for percore::Controller::inherit(). A copy: it stays valid
  // after done->Run().
  CallContext downstream_context() const;

 private:
  friend class detail::ServerCall;
  friend struct detail::WorkerCall;  // Fills these in a worker process.

  percore::ErrorCode error_code_ = percore::ErrorCode::kOk;
  std::string error_text_;
  std::string request_attachment_;
  std::string response_attachment_;
  std::string remote_side_;
  std::shared_ptr<const AuthContext> auth_context_;  // The connection's.
  std::shared_ptr<const std::string> peer_certificate_subject_;  // The connection's.
  int64_t log_id_ = 0;
  int64_t trace_id_ = 0;
  int64_t span_id_ = 0;
  int64_t parent_span_id_ = 0;
  CompressType request_compress_type_ = CompressType::kNone;
  CompressType response_compress_type_ = CompressType::kNone;
  Clock::time_point deadline_ = Clock::time_point::max();
  google::protobuf::Closure* on_end_ = nullptr;
  // The client's stream (StreamSettings of the request), and ours once
  // accepted.
  int64_t remote_stream_id_ = kInvalidStreamId;
  bool remote_needs_feedback_ = false;
  bool remote_writable_ = true;
  bool streams_supported_ = false;
  size_t max_stream_frame_bytes_ = 0;
  // In a worker process: the id the server chose for this side's end (the
  // server relays the stream under it); otherwise a new one.
  int64_t offered_stream_id_ = kInvalidStreamId;
  std::shared_ptr<detail::StreamCore> accepted_stream_;
};

}  // namespace percore
