#include "examples/forwarding_service.h"

#include <utility>

#include <percore/client_proxy/controller.h>
#include <percore/proto/error_code.h>
#include <percore/server_io/server_controller.h>

namespace percore::examples {
namespace {

// One forward in flight: the client side's controller, and what to answer
// when it ends.
class Forward final : public google::protobuf::Closure {
 public:
  Forward(ServerController* incoming, google::protobuf::Closure* done, const std::string& target)
      : incoming_(incoming), done_(done), target_(target) {}

  Controller controller;

  void Run() override {
    if (controller.Failed()) {
      incoming_->SetFailed(static_cast<ErrorCode>(code_for_caller(controller.ErrorCode())),
                           "forwarding to " + target_ + " (" + controller.remote_side() +
                               "): " + controller.ErrorText());
    } else {
      incoming_->response_attachment() = std::move(controller.response_attachment());
    }
    google::protobuf::Closure* done = done_;
    delete this;
    done->Run();
  }

 private:
  ServerController* incoming_;
  google::protobuf::Closure* done_;
  const std::string& target_;
};

}  // namespace

ForwardingService::ForwardingService(const google::protobuf::ServiceDescriptor* service,
                                     google::protobuf::MessageFactory* factory, Channel& channel,
                                     std::string target, int default_timeout_ms)
    : service_(service),
      factory_(factory),
      channel_(channel),
      target_(std::move(target)),
      default_timeout_ms_(default_timeout_ms) {}

void ForwardingService::CallMethod(const google::protobuf::MethodDescriptor* method,
                                   google::protobuf::RpcController* controller,
                                   const google::protobuf::Message* request,
                                   google::protobuf::Message* response,
                                   google::protobuf::Closure* done) {
  auto* incoming = static_cast<ServerController*>(controller);
  auto* forward = new Forward(incoming, done, target_);
  const CallContext context = incoming->downstream_context();
  forward->controller.inherit(context);
  // The attachment goes on as it is (moved: the incoming call is done with it).
  forward->controller.request_attachment() = std::move(incoming->request_attachment());
  if (!context.has_deadline())
    forward->controller.set_timeout_ms(default_timeout_ms_);
  // The response is filled in place: the server's, which lives until done.
  channel_.CallMethod(method, &forward->controller, request, response, forward);
}

const google::protobuf::Message& ForwardingService::GetRequestPrototype(
    const google::protobuf::MethodDescriptor* method) const {
  return *factory_->GetPrototype(method->input_type());
}

const google::protobuf::Message& ForwardingService::GetResponsePrototype(
    const google::protobuf::MethodDescriptor* method) const {
  return *factory_->GetPrototype(method->output_type());
}

}  // namespace percore::examples
