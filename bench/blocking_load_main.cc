// percore-blocking-load: a closed-loop echo load over the blocking test
// client, for the demo until the client proxy's percore-bench exists.
// Each connection keeps --in-flight requests pipelined; the figure printed is
// requests per CPU-second of client and server together.

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "proto/echo.pb.h"
#include "test/support/blocking_client.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string host = "127.0.0.1";
  int port = 8000;
  int connections = 1;
  int in_flight = 1;  // Per connection.
  double duration_s = 3;
  double warmup_s = 1;
  size_t payload = 16;
  int server_pid = 0;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-blocking-load: %s\n"
               "usage: percore-blocking-load --port N [--host IP] [--connections N]\n"
               "       [--in-flight N] [--duration S] [--warmup S] [--payload BYTES]\n"
               "       [--server-pid PID]\n",
               message.c_str());
  std::exit(2);
}

// user + system CPU seconds of a process, from /proc/PID/stat.
double process_cpu_seconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  // Fields after the command name, which is in parentheses and may hold spaces.
  const size_t close = text.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long user_ticks = 0;
  unsigned long long system_ticks = 0;
  for (int index = 3; fields >> field; ++index) {
    if (index == 14)
      user_ticks = std::stoull(field);
    if (index == 15) {
      system_ticks = std::stoull(field);
      break;
    }
  }
  return static_cast<double>(user_ticks + system_ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double self_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& value) { return value.tv_sec + value.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc)
      usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--host") {
      options.host = value;
    } else if (flag == "--port") {
      options.port = std::stoi(value);
    } else if (flag == "--connections") {
      options.connections = std::max(1, std::stoi(value));
    } else if (flag == "--in-flight") {
      options.in_flight = std::max(1, std::stoi(value));
    } else if (flag == "--duration") {
      options.duration_s = std::stod(value);
    } else if (flag == "--warmup") {
      options.warmup_s = std::stod(value);
    } else if (flag == "--payload") {
      options.payload = std::stoul(value);
    } else if (flag == "--server-pid") {
      options.server_pid = std::stoi(value);
    } else {
      usage("unknown option " + flag);
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> failed{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < options.connections; ++c) {
    threads.emplace_back([&, c] {
      percore::testing::BlockingClient client;
      std::string error;
      if (!client.connect(options.host, options.port, &error)) {
        std::fprintf(stderr, "percore-blocking-load: %s\n", error.c_str());
        failed.fetch_add(1);
        return;
      }
      example::EchoRequest request;
      request.set_message(std::string(options.payload, 'x'));
      percore::testing::RequestParts parts;
      parts.service = "example.EchoService";
      parts.method = "Echo";
      parts.message = &request;
      int64_t next_id = static_cast<int64_t>(c) << 40;
      auto send_one = [&] {
        parts.correlation_id = next_id++;
        return client.send_request(parts);
      };
      for (int i = 0; i < options.in_flight; ++i)
        send_one();
      percore::testing::ReceivedFrame frame;
      while (!stop.load(std::memory_order_relaxed)) {
        if (client.receive(frame, std::chrono::seconds(5)) !=
                percore::testing::ReceiveStatus::kFrame ||
            frame.error_code() != 0) {
          failed.fetch_add(1);
          return;
        }
        if (measuring.load(std::memory_order_relaxed))
          completed.fetch_add(1, std::memory_order_relaxed);
        if (!send_one()) {
          failed.fetch_add(1);
          return;
        }
      }
    });
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_s));
  const double client_cpu_start = self_cpu_seconds();
  const double server_cpu_start = options.server_pid ? process_cpu_seconds(options.server_pid) : 0;
  const auto start = Clock::now();
  measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(options.duration_s));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double client_cpu = self_cpu_seconds() - client_cpu_start;
  const double server_cpu =
      options.server_pid ? process_cpu_seconds(options.server_pid) - server_cpu_start : 0;
  stop = true;
  for (std::thread& thread : threads)
    thread.join();

  const double calls = static_cast<double>(completed.load());
  const double cpu = client_cpu + server_cpu;
  std::printf("%9d %12.0f %12.2f %12.2f %16.0f\n", options.connections * options.in_flight,
              calls / elapsed, client_cpu, server_cpu, cpu > 0 ? calls / cpu : 0.0);
  if (failed.load() > 0) {
    std::fprintf(stderr, "percore-blocking-load: %llu connections failed\n",
                 static_cast<unsigned long long>(failed.load()));
    return 1;
  }
  return 0;
}
