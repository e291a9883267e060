// The consumer's server: serves greeter.Greeter on 127.0.0.1 (a free port,
// printed as "listening on PORT") until SIGTERM or SIGINT.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <string>

#include <percore/proto/closure_guard.h>
#include <percore/server_io/server.h>
#include <percore/server_io/server_controller.h>

#include "greeter.pb.h"

namespace {

class GreeterImpl : public greeter::Greeter {
 public:
  void SayHello(google::protobuf::RpcController*, const greeter::HelloRequest* request,
                greeter::HelloReply* reply, google::protobuf::Closure* done) override {
    percore::ClosureGuard done_guard(done);  // answers on every path
    reply->set_greeting("hello, " + request->person().name());
    reply->set_calls_so_far(++calls_);
  }
  void Echo(google::protobuf::RpcController*, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    percore::ClosureGuard done_guard(done);
    response->set_message(request->message());
  }

 private:
  std::atomic<uint32_t> calls_{0};
};

}  // namespace

int main() {
  // Blocked before the server's threads exist: RunUntilAskedToQuit takes
  // them even if they come while the server starts.
  sigset_t quit;
  sigemptyset(&quit);
  sigaddset(&quit, SIGTERM);
  sigaddset(&quit, SIGINT);
  pthread_sigmask(SIG_BLOCK, &quit, nullptr);

  GreeterImpl greeter;
  percore::Server server;
  std::string error;
  if (!server.AddService(&greeter, {}, &error) || !server.Start("127.0.0.1:0", &error)) {
    std::fprintf(stderr, "greeter_server: %s\n", error.c_str());
    return 1;
  }
  std::printf("listening on %d\n", server.port());
  std::fflush(stdout);
  server.RunUntilAskedToQuit();
  server.Stop();
  return 0;
}
