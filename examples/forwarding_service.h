#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/service.h>

#include <string>

#include <percore/client_proxy/channel.h>

namespace percore::examples {

// Hosts one protobuf service by forwarding every call, as it is, through a
// Channel to the servers of a target (any URI a Channel takes: zk://...
// follows backends added and removed while it runs): percore-gateway's
// building block. Hosted in a percore Server, it answers HTTP/JSON and
// baidu_std alike.
//
// The request's attachment is forwarded and the backend's answer attachment
// comes back with the response.
// Each call inherits the incoming call's deadline, log id and trace
// (ServerController::downstream_context()); a call that came without a
// deadline (an HTTP request without X-Timeout-Ms) gets `default_timeout_ms`.
// A failed forward answers with the Channel's code (112: no backend, 1008:
// the deadline passed, 1009: the connection broke...; a 2003 becomes 112,
// code_for_caller()) and a text naming the target.
//
// Owns: nothing; `channel` and the prototypes' factory must outlive it.
// Threads: CallMethod from the server's I/O threads (it only starts the
// forward; the answer comes on the Channel's callback thread).
class ForwardingService : public google::protobuf::Service {
 public:
  ForwardingService(const google::protobuf::ServiceDescriptor* service,
                    google::protobuf::MessageFactory* factory, Channel& channel,
                    std::string target, int default_timeout_ms);

  const google::protobuf::ServiceDescriptor* GetDescriptor() override { return service_; }
  void CallMethod(const google::protobuf::MethodDescriptor* method,
                  google::protobuf::RpcController* controller,
                  const google::protobuf::Message* request, google::protobuf::Message* response,
                  google::protobuf::Closure* done) override;
  const google::protobuf::Message& GetRequestPrototype(
      const google::protobuf::MethodDescriptor* method) const override;
  const google::protobuf::Message& GetResponsePrototype(
      const google::protobuf::MethodDescriptor* method) const override;

 private:
  const google::protobuf::ServiceDescriptor* service_;
  google::protobuf::MessageFactory* factory_;
  Channel& channel_;
  const std::string target_;
  const int default_timeout_ms_;
};

}  // namespace percore::examples
