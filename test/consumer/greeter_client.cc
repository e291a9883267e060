// The consumer's client: calls greeter.Greeter through percore, synchronously
// and asynchronously, and checks every answer.
//   greeter_client list://127.0.0.1:PORT CALLS
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/controller.h>
#include <percore/proto/new_callback.h>
#include <percore/version.h>

#include "greeter.pb.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: greeter_client TARGET CALLS\n");
    return 2;
  }
  const int calls = std::atoi(argv[2]);
  percore::Channel channel;
  std::string error;
  if (!channel.Init(argv[1], {}, &error)) {
    std::fprintf(stderr, "greeter_client: %s\n", error.c_str());
    return 1;
  }
  greeter::Greeter_Stub stub(&channel);

  int failed = 0;
  for (int i = 0; i < calls; ++i) {
    percore::Controller controller;
    greeter::HelloRequest request;
    request.mutable_person()->set_name("sync " + std::to_string(i));
    greeter::HelloReply reply;
    stub.SayHello(&controller, &request, &reply, nullptr);
    if (controller.Failed() || reply.greeting() != "hello, " + request.person().name()) {
      std::fprintf(stderr, "call %d: %d %s\n", i, controller.ErrorCode(),
                   controller.ErrorText().c_str());
      ++failed;
    }
  }

  // Asynchronous calls: each done closure fulfils its call's promise.
  struct AsyncCall {
    percore::Controller controller;
    greeter::HelloRequest request;
    greeter::HelloReply reply;
    std::promise<void> finished;
  };
  std::vector<std::unique_ptr<AsyncCall>> pending;
  for (int i = 0; i < calls; ++i) {
    auto call = std::make_unique<AsyncCall>();
    call->request.mutable_person()->set_name("async " + std::to_string(i));
    AsyncCall* raw = call.get();
    stub.SayHello(&raw->controller, &raw->request, &raw->reply,
                  percore::NewCallback([raw] { raw->finished.set_value(); }));
    pending.push_back(std::move(call));
  }
  for (auto& call : pending) {
    call->finished.get_future().wait();
    if (call->controller.Failed() ||
        call->reply.greeting() != "hello, " + call->request.person().name()) {
      std::fprintf(stderr, "%s: %d %s\n", call->request.person().name().c_str(),
                   call->controller.ErrorCode(), call->controller.ErrorText().c_str());
      ++failed;
    }
  }
  // A method whose messages come from percore's installed echo.proto.
  percore::Controller controller;
  example::EchoRequest echo_request;
  echo_request.set_message("echo through an imported proto");
  example::EchoResponse echo_response;
  stub.Echo(&controller, &echo_request, &echo_response, nullptr);
  if (controller.Failed() || echo_response.message() != echo_request.message()) {
    std::fprintf(stderr, "Echo: %d %s\n", controller.ErrorCode(), controller.ErrorText().c_str());
    ++failed;
  }
  std::printf("percore %s: %d calls, %d failed\n", PERCORE_VERSION_STRING, 2 * calls + 1, failed);
  return failed == 0 ? 0 : 1;
}
