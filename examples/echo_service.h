#pragma once

#include <percore/proto/echo.pb.h>

namespace percore::examples {

// example.EchoService, as in brpc's echo example: answers the request's
// message and sends the request attachment back as the response attachment.
// Cheap: register it inline. Threads: any; stateless.
class EchoServiceImpl : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override;
};

}  // namespace percore::examples
