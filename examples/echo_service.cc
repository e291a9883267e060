#include "examples/echo_service.h"

#include <percore/server_io/server_controller.h>

namespace percore::examples {

void EchoServiceImpl::Echo(google::protobuf::RpcController* controller,
                           const example::EchoRequest* request, example::EchoResponse* response,
                           google::protobuf::Closure* done) {
  auto* server_controller = static_cast<ServerController*>(controller);
  response->set_message(request->message());
  // A move, not a copy: the request attachment is not needed any more.
  server_controller->response_attachment() = std::move(server_controller->request_attachment());
  done->Run();
}

}  // namespace percore::examples
