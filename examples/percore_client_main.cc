// percore-client: one call through the client proxy.
//   percore-client --target URI [--timeout-ms N] [--groups G] echo TEXT
//   percore-client --target URI [--timeout-ms N] [--groups G] is_prime N [FAULT]
// Prints the echoed text, or true/false. A failed call prints its error code
// and text on stderr and exits 1; bad usage exits 2.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/version.h>

namespace {

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-client: %s\n"
               "usage: percore-client --target URI [--timeout-ms N] [--groups G] echo TEXT\n"
               "       percore-client --target URI [--timeout-ms N] [--groups G] is_prime N [FAULT]\n"
               "  FAULT: crash, loop, exhaust-memory or abort, carried out by a server\n"
               "         started with --prime-allow-faults (to show process isolation)\n"
               "  URI: list://host:port[,host:port...]\n",
               message.c_str());
  std::exit(2);
}

int report(const percore::Controller& controller) {
  std::fprintf(stderr, "percore-client: call failed: %d %s: %s\n", controller.ErrorCode(),
               std::string(percore::error_code_name(controller.ErrorCode())).c_str(),
               controller.ErrorText().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // --version wins wherever it stands, as in GNU programs.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::printf("%s %s\n", "percore-client", PERCORE_VERSION_STRING);
      return 0;
    }
  }
  std::string target;
  percore::ChannelOptions options;
  // One call: one group of its own rather than one per core.
  percore::ClientRuntimeOptions groups{.groups = 1};
  std::vector<std::string> command;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--target" || argument == "--timeout-ms" || argument == "--groups") {
      if (i + 1 >= argc)
        usage("missing value for " + argument);
      const std::string value = argv[++i];
      if (argument == "--target") {
        target = value;
      } else if (argument == "--timeout-ms") {
        options.timeout_ms = std::atoi(value.c_str());
      } else {
        groups.groups = std::atoi(value.c_str());
      }
    } else if (argument.rfind("--", 0) == 0) {
      usage("unknown option " + argument);
    } else {
      command.push_back(argument);
    }
  }
  if (target.empty())
    usage("--target is required");
  if (command.size() != 2 && !(command.size() == 3 && command[0] == "is_prime"))
    usage("expected: echo TEXT or is_prime N [FAULT]");

  percore::Channel channel;
  std::string error;
  options.private_groups = groups;
  if (!channel.Init(target, options, &error)) {
    std::fprintf(stderr, "percore-client: %s\n", error.c_str());
    return 1;
  }
  percore::Controller controller;
  if (command[0] == "echo") {
    example::EchoService_Stub stub(&channel);
    example::EchoRequest request;
    request.set_message(command[1]);
    example::EchoResponse response;
    stub.Echo(&controller, &request, &response, nullptr);
    if (controller.Failed())
      return report(controller);
    std::printf("%s\n", response.message().c_str());
    return 0;
  }
  if (command[0] == "is_prime") {
    char* end = nullptr;
    const unsigned long long number = std::strtoull(command[1].c_str(), &end, 10);
    if (end == command[1].c_str() || *end != '\0')
      usage("is_prime needs a number");
    prime::PrimeService_Stub stub(&channel);
    prime::IsPrimeRequest request;
    request.set_number(number);
    if (command.size() == 3) {
      prime::Fault fault = prime::FAULT_NONE;
      if (command[2] == "crash") {
        fault = prime::FAULT_CRASH;
      } else if (command[2] == "loop") {
        fault = prime::FAULT_LOOP;
      } else if (command[2] == "exhaust-memory") {
        fault = prime::FAULT_EXHAUST_MEMORY;
      } else if (command[2] == "abort") {
        fault = prime::FAULT_ABORT;
      } else {
        usage("unknown fault " + command[2] + " (crash, loop, exhaust-memory, abort)");
      }
      request.set_fault(fault);
    }
    prime::IsPrimeResponse response;
    stub.IsPrime(&controller, &request, &response, nullptr);
    if (controller.Failed())
      return report(controller);
    std::printf("%s\n", response.is_prime() ? "true" : "false");
    return 0;
  }
  usage("unknown command " + command[0]);
}
