// percore-client: one call through the client proxy.
//   percore-client --target URI [--timeout-ms N] [--groups G] echo TEXT
//   percore-client --target URI [--timeout-ms N] [--groups G] is_prime N [FAULT]
//   percore-client --target URI [--timeout-ms N] [--groups G] stream-echo TEXT...
//   percore-client --target URI [--timeout-ms N] [--groups G] find-primes FROM TO [CHUNK]
// Prints the echoed text, or true/false, or each message echoed on the
// stream attached to example.EchoService.Echo (as brpc's streaming echo
// client does), one per line. A failed call prints its error code
// and text on stderr and exits 1; bad usage exits 2.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/version.h>

namespace {

constexpr const char* kUsage =
    "usage: percore-client --target URI [--timeout-ms N] [--groups G] echo TEXT\n"
    "       percore-client --target URI [--timeout-ms N] [--groups G] is_prime N [FAULT]\n"
    "       percore-client --target URI [--timeout-ms N] [--groups G] stream-echo TEXT...\n"
    "       percore-client --target URI [--timeout-ms N] [--groups G] find-primes FROM TO [CHUNK]\n"
    "  find-primes: streams the numbers FROM..TO in chunks of CHUNK (default 1000)\n"
    "         to prime.PrimeService.FindPrimes; prints the primes as they come\n"
    "  FAULT: crash, loop, exhaust-memory or abort, carried out by a server\n"
    "         started with --prime-allow-faults (to show process isolation)\n"
    "  URI: list://host:port[,host:port...], zk://HOSTS/BASE/SERVICE, file://PATH\n"
    "  --timeout-ms N  deadline of the call (default 1000)\n"
    "  --groups G      client thread groups (default 1)\n"
    "  --auth-token-file FILE  send the token in FILE (mode 600) to authenticate\n"
    "  --auth-token-env NAME   send the token in environment variable NAME\n"
    "  --credential-on-every-call  send it with every call, not only once per\n"
    "         connection (for servers that verify every call)\n"
    "  --tls-ca FILE   call over TLS, trusting the CAs in FILE (PEM)\n"
    "  --tls           call over TLS, trusting the system's CAs\n"
    "  --tls-server-name NAME  the name the server's certificate must carry\n"
    "         (default: the host called)\n"
    "  --tls-cert FILE --tls-key FILE  a client certificate (mutual TLS)\n";

// With a message: to stderr, exit 2; without (--help): to stdout, exit 0.
[[noreturn]] void usage(const std::string& message) {
  if (message.empty()) {
    std::fputs(kUsage, stdout);
    std::exit(0);
  }
  std::fprintf(stderr, "percore-client: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

int report(const percore::Controller& controller) {
  std::fprintf(stderr, "percore-client: call failed: %d %s: %s\n", controller.ErrorCode(),
               std::string(percore::error_code_name(controller.ErrorCode())).c_str(),
               controller.ErrorText().c_str());
  return 1;
}

// Collects what comes back on the stream, for stream-echo.
class CollectingHandler final : public percore::StreamHandler {
 public:
  void on_received_messages(percore::Stream&, std::span<std::string> messages) override {
    std::lock_guard lock(mutex_);
    for (std::string& message : messages)
      received_.push_back(std::move(message));
    changed_.notify_all();
  }
  void on_closed(percore::Stream&, percore::StreamEndReason reason) override {
    std::lock_guard lock(mutex_);
    end_ = reason;
    changed_.notify_all();
  }
  // Waits until `count` messages came back or the stream ended, at most
  // `timeout`; returns what came.
  std::vector<std::string> wait_for(size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return received_.size() >= count || end_; });
    return received_;
  }
  std::optional<percore::StreamEndReason> wait_end(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return end_.has_value(); });
    return end_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> received_;
  std::optional<percore::StreamEndReason> end_;
};

int stream_echo(percore::Channel& channel, const std::vector<std::string>& texts,
                int timeout_ms) {
  auto handler = std::make_shared<CollectingHandler>();
  percore::Controller controller;
  percore::StreamOptions stream_options;
  stream_options.handler = handler;
  std::shared_ptr<percore::Stream> stream = controller.open_stream(stream_options);
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message("percore-client stream-echo");
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  if (controller.Failed())
    return report(controller);
  if (stream->end_reason()) {
    std::fprintf(stderr, "percore-client: the server did not accept the stream (%s)\n",
                 std::string(percore::stream_end_reason_name(*stream->end_reason())).c_str());
    return 1;
  }
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  for (const std::string& text : texts) {
    std::string message = text;
    percore::StreamWriteStatus status;
    while ((status = stream->Write(std::move(message))) == percore::StreamWriteStatus::kFull) {
      if (!stream->WaitWritable(timeout))
        break;
    }
    if (status != percore::StreamWriteStatus::kOk) {
      std::fprintf(stderr, "percore-client: stream write failed (%s)\n",
                   status == percore::StreamWriteStatus::kEnded      ? "the stream ended"
                   : status == percore::StreamWriteStatus::kTooLarge ? "message too large"
                                                                     : "the peer takes no messages");
      return 1;
    }
  }
  const std::vector<std::string> echoed = handler->wait_for(texts.size(), timeout);
  for (const std::string& message : echoed)
    std::printf("%s\n", message.c_str());
  // Why it came short, before our own close ends the stream.
  const std::optional<percore::StreamEndReason> end = stream->end_reason();
  stream->Close();
  handler->wait_end(timeout);
  if (echoed.size() < texts.size()) {
    std::fprintf(stderr, "percore-client: %zu of %zu messages came back (%s)\n", echoed.size(),
                 texts.size(),
                 end ? ("the stream ended: " + std::string(percore::stream_end_reason_name(*end)))
                           .c_str()
                     : ("none for " + std::to_string(timeout.count()) + " ms").c_str());
    return 1;
  }
  return 0;
}

// Prints what FindPrimes streams back; remembers the summary.
class PrimePrinter final : public percore::StreamHandler {
 public:
  void on_received_messages(percore::Stream&, std::span<std::string> messages) override {
    std::lock_guard lock(mutex_);
    for (const std::string& message : messages) {
      prime::PrimeStreamReply reply;
      if (!reply.ParseFromString(message)) {
        std::fprintf(stderr, "percore-client: a reply that is not a PrimeStreamReply\n");
        continue;
      }
      if (reply.has_found()) {
        std::printf("chunk %llu:", static_cast<unsigned long long>(reply.found().chunk()));
        for (const uint64_t prime : reply.found().primes())
          std::printf(" %llu", static_cast<unsigned long long>(prime));
        std::printf("\n");
        std::fflush(stdout);
      } else if (reply.has_summary()) {
        summary_ = reply.summary();
      }
    }
  }
  void on_closed(percore::Stream&, percore::StreamEndReason reason) override {
    std::lock_guard lock(mutex_);
    end_ = reason;
    changed_.notify_all();
  }
  std::optional<percore::StreamEndReason> wait_end(std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return end_.has_value(); });
    return end_;
  }
  std::optional<prime::PrimeSummary> summary() {
    std::lock_guard lock(mutex_);
    return summary_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::optional<prime::PrimeSummary> summary_;
  std::optional<percore::StreamEndReason> end_;
};

uint64_t parse_count(const std::string& text, const char* what) {
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0')
    usage(std::string(what) + " must be a number");
  return value;
}

int find_primes(percore::Channel& channel, const std::vector<std::string>& arguments,
                int timeout_ms) {
  const uint64_t from = parse_count(arguments[0], "FROM");
  const uint64_t to = parse_count(arguments[1], "TO");
  const uint64_t chunk_size = arguments.size() > 2 ? parse_count(arguments[2], "CHUNK") : 1000;
  // 100,000 numbers make a chunk of about 1 MB, well under the server's
  // 8 MiB of chunks waiting.
  if (from > to || chunk_size == 0 || chunk_size > 100000)
    usage("find-primes needs FROM <= TO and 0 < CHUNK <= 100000");
  auto printer = std::make_shared<PrimePrinter>();
  percore::Controller controller;
  percore::StreamOptions stream_options;
  stream_options.handler = printer;
  std::shared_ptr<percore::Stream> stream = controller.open_stream(stream_options);
  prime::PrimeService_Stub stub(&channel);
  prime::FindPrimesRequest request;
  prime::FindPrimesResponse response;
  stub.FindPrimes(&controller, &request, &response, nullptr);
  if (controller.Failed())
    return report(controller);
  const auto timeout = std::chrono::milliseconds(timeout_ms);
  uint64_t next = from;
  for (;;) {
    prime::PrimeChunk chunk;
    while (next <= to && static_cast<uint64_t>(chunk.numbers_size()) < chunk_size) {
      chunk.add_numbers(next);
      if (next == to) {
        ++next;
        break;
      }
      ++next;
    }
    chunk.set_last(next > to);
    std::string bytes = chunk.SerializeAsString();
    percore::StreamWriteStatus status;
    while ((status = stream->Write(std::move(bytes))) == percore::StreamWriteStatus::kFull) {
      if (!stream->WaitWritable(timeout))
        break;
    }
    if (status != percore::StreamWriteStatus::kOk) {
      std::fprintf(stderr, "percore-client: stream write failed\n");
      return 1;
    }
    if (chunk.last())
      break;
  }
  const std::optional<percore::StreamEndReason> end = printer->wait_end(timeout);
  const std::optional<prime::PrimeSummary> summary = printer->summary();
  if (!summary) {
    std::fprintf(stderr, "percore-client: no summary (%s)\n",
                 end ? std::string(percore::stream_end_reason_name(*end)).c_str()
                     : "timed out");
    stream->Close();
    return 1;
  }
  if (!summary->error().empty()) {
    std::fprintf(stderr, "percore-client: the server gave up: %s\n", summary->error().c_str());
    return 1;
  }
  std::printf("%llu primes among %llu numbers, in %llu chunks\n",
              static_cast<unsigned long long>(summary->primes_found()),
              static_cast<unsigned long long>(summary->numbers_checked()),
              static_cast<unsigned long long>(summary->chunks()));
  return 0;
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
  // How long stream commands wait for what comes back on the stream: the
  // --timeout-ms given, else long enough for a computation.
  int stream_wait_ms = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string argument = argv[i];
    if (argument == "--help" || argument == "-h") {
      usage(std::string());
    } else if (argument == "--credential-on-every-call") {
      options.credential_on_every_call = true;
    } else if (argument == "--tls") {
      if (!options.tls)
        options.tls = percore::TlsOptions{};
    } else if (argument == "--tls-ca" || argument == "--tls-server-name" ||
               argument == "--tls-cert" || argument == "--tls-key") {
      if (i + 1 >= argc)
        usage("missing value for " + argument);
      const std::string value = argv[++i];
      if (!options.tls)
        options.tls = percore::TlsOptions{};
      if (argument == "--tls-ca")
        options.tls->ca_file = value;
      else if (argument == "--tls-server-name")
        options.tls->server_name = value;
      else if (argument == "--tls-cert")
        options.tls->certificate_file = value;
      else
        options.tls->private_key_file = value;
    } else if (argument == "--auth-token-file" || argument == "--auth-token-env") {
      if (i + 1 >= argc)
        usage("missing value for " + argument);
      const std::string value = argv[++i];
      if (options.authenticator != nullptr)
        usage("give one of --auth-token-file and --auth-token-env, once");
      std::string error;
      options.authenticator = argument == "--auth-token-file"
                                  ? percore::TokenAuthenticator::FromFile(value, &error)
                                  : percore::TokenAuthenticator::FromEnvironment(value, &error);
      if (options.authenticator == nullptr) {
        std::fprintf(stderr, "percore-client: %s\n", error.c_str());
        return 2;
      }
    } else if (argument == "--target" || argument == "--timeout-ms" || argument == "--groups") {
      if (i + 1 >= argc)
        usage("missing value for " + argument);
      const std::string value = argv[++i];
      if (argument == "--target") {
        target = value;
      } else if (argument == "--timeout-ms") {
        options.timeout_ms = std::atoi(value.c_str());
        stream_wait_ms = options.timeout_ms;
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
  if (options.credential_on_every_call && options.authenticator == nullptr)
    usage("--credential-on-every-call needs --auth-token-file or --auth-token-env");
  const bool stream_command = !command.empty() && command[0] == "stream-echo";
  const bool primes_command = !command.empty() && command[0] == "find-primes";
  if (stream_command ? command.size() < 2
      : primes_command
          ? command.size() < 3 || command.size() > 4
          : command.size() != 2 && !(command.size() == 3 && command[0] == "is_prime"))
    usage("expected: echo TEXT, is_prime N [FAULT], stream-echo TEXT... or "
          "find-primes FROM TO [CHUNK]");

  percore::Channel channel;
  std::string error;
  options.private_groups = groups;
  if (!channel.Init(target, options, &error)) {
    std::fprintf(stderr, "percore-client: %s\n", error.c_str());
    return 1;
  }
  if (stream_command) {
    return stream_echo(channel, std::vector<std::string>(command.begin() + 1, command.end()),
                       stream_wait_ms > 0 ? stream_wait_ms : 5000);
  }
  if (primes_command) {
    return find_primes(channel, std::vector<std::string>(command.begin() + 1, command.end()),
                       stream_wait_ms > 0 ? stream_wait_ms : 600000);
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
