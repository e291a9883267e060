// percore-server: hosts example.EchoService (inline) and prime.PrimeService
// (worker pool) on one port. Prints one line when ready; SIGTERM or SIGINT
// stop it gracefully.

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "examples/echo_service.h"
#include "examples/prime_service.h"
#include "server_io/server.h"

namespace {

constexpr std::string_view kUsage =
    "usage: percore-server [--listen HOST:PORT] [--io-threads N] [--workers N]\n"
    "                      [--max-body-bytes N] [--worker-queue N] [--grace-ms N]\n"
    "  --listen          address to serve on (default 127.0.0.1:8000; port 0 picks one)\n"
    "  --io-threads      I/O threads (default: one per core)\n"
    "  --workers         worker threads for IsPrime (default: one per core)\n"
    "  --max-body-bytes  largest request/reply body (default 67108864)\n"
    "  --worker-queue    requests waiting for a worker before 2004 (default 1024)\n"
    "  --grace-ms        how long a stop waits for calls in flight (default 5000)\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "percore-server: %s\n%.*s", message.c_str(), static_cast<int>(kUsage.size()),
               kUsage.data());
  std::exit(2);
}

long long parse_number(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 0)
    usage_error(flag + " needs a non-negative number");
  return value;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8000";
  percore::ServerOptions options;
  long long grace_ms = 5000;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
      return 0;
    }
    if (i + 1 >= argc)
      usage_error("missing value for " + flag);
    const char* value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--io-threads") {
      options.io_threads = static_cast<int>(parse_number(flag, value));
    } else if (flag == "--workers") {
      options.workers = static_cast<int>(parse_number(flag, value));
    } else if (flag == "--max-body-bytes") {
      options.max_body_bytes = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--worker-queue") {
      options.worker_queue_capacity = static_cast<size_t>(parse_number(flag, value));
    } else if (flag == "--grace-ms") {
      grace_ms = parse_number(flag, value);
    } else {
      usage_error("unknown option " + flag);
    }
  }

  // Block the stop signals before any thread starts, so that every thread
  // inherits the mask and only sigwait() below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  percore::Server server(options);
  server.AddService(std::make_unique<percore::examples::EchoServiceImpl>());
  percore::ServiceOptions prime_options;
  prime_options.default_mode = percore::ExecutionMode::kWorkerPool;
  server.AddService(std::make_unique<percore::examples::PrimeServiceImpl>(), prime_options);

  std::string error;
  if (!server.Start(listen, &error)) {
    std::fprintf(stderr, "percore-server: %s\n", error.c_str());
    return 1;
  }
  const std::string host = listen.substr(0, listen.rfind(':'));
  std::printf("percore-server ready on %s:%d pid %d\n", host.c_str(), server.port(),
              static_cast<int>(getpid()));
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "percore-server: signal %d, stopping\n", signal_number);
  server.Stop(std::chrono::milliseconds(grace_ms));

  const percore::ServerStats stats = server.stats();
  uint64_t answered = 0;
  for (const auto& [code, count] : stats.answers_by_code)
    answered += count;
  std::fprintf(stderr,
               "percore-server: stopped; %llu answers, %llu connections, %llu rejected frames\n",
               static_cast<unsigned long long>(answered),
               static_cast<unsigned long long>(stats.connections_accepted),
               static_cast<unsigned long long>(stats.rejected_frames_total()));
  return 0;
}
