// One file built with nothing but `pkg-config --cflags --libs percore`:
// calls example.EchoService of percore-server with the installed echo.pb.h.
//   pkg_config_client list://127.0.0.1:PORT TEXT
#include <cstdio>
#include <string>

#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/controller.h>
#include <percore/proto/echo.pb.h>

int main(int argc, char** argv) {
  if (argc != 3)
    return 2;
  percore::Channel channel;
  std::string error;
  if (!channel.Init(argv[1], {}, &error)) {
    std::fprintf(stderr, "pkg_config_client: %s\n", error.c_str());
    return 1;
  }
  example::EchoService_Stub stub(&channel);
  percore::Controller controller;
  example::EchoRequest request;
  request.set_message(argv[2]);
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  if (controller.Failed()) {
    std::fprintf(stderr, "pkg_config_client: %d %s\n", controller.ErrorCode(),
                 controller.ErrorText().c_str());
    return 1;
  }
  std::printf("%s\n", response.message().c_str());
  return response.message() == argv[2] ? 0 : 1;
}
