#include "examples/pipeline_service.h"

#include <cctype>
#include <chrono>
#include <string>
#include <thread>
#include <utility>

#include <percore/base/call_context.h>
#include <percore/proto/closure_guard.h>
#include <percore/server_io/server_controller.h>

namespace percore::examples {
namespace {

void describe(const CallContext& context, pipeline::SeenContext* seen) {
  seen->set_remaining_ms(context.remaining_timeout_ms());
  seen->set_log_id(context.log_id);
  seen->set_trace_id(context.trace_id);
  seen->set_span_id(context.span_id);
  seen->set_parent_span_id(context.parent_span_id);
}

// One StageA.Process call waiting for stage B: the `done` of the call to B.
// Owns itself and the call to B; Run() answers the incoming call, then
// deletes it. Threads: the Channel's callback thread (or the calling
// thread, for a call that fails before it is sent).
class StageBCall : public google::protobuf::Closure {
 public:
  StageBCall(ServerController* incoming, pipeline::ProcessResponse* response,
             google::protobuf::Closure* done)
      : incoming_(incoming), response_(response), done_(done) {}

  void Run() override {
    if (controller.Failed()) {
      incoming_->SetFailed(code_for_caller(controller.ErrorCode()),
                           "pipeline.StageA/Process: its call to pipeline.StageB/Transform%s%s "
                           "failed: %s",
                           controller.remote_side().empty() ? "" : " at ",
                           controller.remote_side().c_str(), controller.ErrorText().c_str());
    } else {
      response_->set_text("A(" + response.text() + ")");
      response_->mutable_stage_b()->Swap(&response);
    }
    google::protobuf::Closure* done = done_;
    delete this;
    done->Run();
  }

  Controller controller;
  pipeline::TransformRequest request;
  pipeline::TransformResponse response;

 private:
  ServerController* incoming_;
  pipeline::ProcessResponse* response_;
  google::protobuf::Closure* done_;
};

}  // namespace

ServiceOptions StageBServiceImpl::service_options() {
  ServiceOptions options;
  options.method_modes["Transform"] = ExecutionMode::kWorkerPool;
  return options;
}

void StageBServiceImpl::Transform(google::protobuf::RpcController* controller,
                                  const pipeline::TransformRequest* request,
                                  pipeline::TransformResponse* response,
                                  google::protobuf::Closure* done) {
  ClosureGuard done_guard(done);
  auto* server_controller = static_cast<ServerController*>(controller);
  describe(server_controller->downstream_context(), response->mutable_seen());
  {
    std::lock_guard lock(mutex_);
    ++transform_calls_;
    last_seen_ = response->seen();
  }
  if (request->delay_ms() > kMaxDelayMs) {
    server_controller->SetFailed(ErrorCode::kBadRequest,
                                 "delay_ms is at most " + std::to_string(kMaxDelayMs));
    return;
  }
  // Slow on purpose, and on a worker: the I/O threads go on serving.
  std::this_thread::sleep_for(std::chrono::milliseconds(request->delay_ms()));
  std::string text = request->text();
  for (char& c : text)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  response->set_text(std::move(text));
}

void StageBServiceImpl::Inspect(google::protobuf::RpcController*, const pipeline::InspectRequest*,
                                pipeline::InspectResponse* response,
                                google::protobuf::Closure* done) {
  ClosureGuard done_guard(done);
  std::lock_guard lock(mutex_);
  response->set_transform_calls(transform_calls_);
  *response->mutable_last_seen() = last_seen_;
}

ServiceOptions StageAServiceImpl::service_options() {
  ServiceOptions options;
  options.default_mode = ExecutionMode::kWorkerPool;
  return options;
}

bool StageAServiceImpl::Init(const std::string& next, std::string* error) {
  if (!channel_.Init(next, ChannelOptions(), error))
    return false;
  stub_ = std::make_unique<pipeline::StageB_Stub>(&channel_);
  return true;
}

void StageAServiceImpl::Process(google::protobuf::RpcController* controller,
                                const pipeline::ProcessRequest* request,
                                pipeline::ProcessResponse* response,
                                google::protobuf::Closure* done) {
  auto* incoming = static_cast<ServerController*>(controller);
  if (stub_ == nullptr) {
    incoming->SetFailed(ErrorCode::kInternal, "pipeline.StageA has no stage B (Init)");
    done->Run();
    return;
  }
  const CallContext context = incoming->downstream_context();
  describe(context, response->mutable_seen());
  // Asynchronous: the worker is free again once the call is started, and
  // StageBCall::Run answers this call when B's answer (or failure) comes.
  auto* call = new StageBCall(incoming, response, done);
  call->request.set_text(request->text());
  call->request.set_delay_ms(request->stage_b_delay_ms());
  call->controller.inherit(context);
  stub_->Transform(&call->controller, &call->request, &call->response, call);
}

}  // namespace percore::examples
