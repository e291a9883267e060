// percore-bench: a load generator on the client proxy.
//
//   percore-bench --target URI (--concurrency C | --rate R) [--groups G]
//                 [--payload BYTES] [--duration S] [--warmup S]
//                 [--method echo|is_prime] [--server-pid PID[,PID...]]
//                 [--timeout-ms N] [--spin-us N] [--inline] [--json FILE]
//   percore-bench --target URI --idle S [--groups G] [--server-pid PID]
//
// Closed loop (--concurrency): C calls in flight in total, spread over the
// groups; each completion makes the next call from its group's own thread.
// Open loop (--rate): R calls per second in total, one pacing thread per
// group; latency counts from each call's intended send time, so a stall is
// not hidden. The headline figure is requests per CPU-second: completed calls
// divided by the user + system CPU seconds of this process and of the
// --server-pid processes over the measured window.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/cpu_usage.h"
#include "bench/latency_histogram.h"
#include "client_proxy/channel.h"
#include "proto/echo.pb.h"
#include "proto/error_code.h"
#include "proto/prime.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using percore::bench::LatencyHistogram;

struct Options {
  std::string target;
  int concurrency = 0;
  double rate = 0;
  int groups = 0;
  size_t payload = 16;
  double duration_s = 5;
  double warmup_s = 1;
  std::string method = "echo";
  uint64_t prime_number = 32416190071ull;
  std::vector<pid_t> server_pids;
  int timeout_ms = 5000;
  int spin_us = 0;
  bool inline_callbacks = false;
  double idle_s = 0;  // --idle: no calls, just measure the CPU of an idle channel.
  std::string json_path;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-bench: %s\n"
               "usage: percore-bench --target URI (--concurrency C | --rate R) [--groups G]\n"
               "       [--payload BYTES] [--duration S] [--warmup S] [--method echo|is_prime]\n"
               "       [--server-pid PID[,PID...]] [--timeout-ms N] [--spin-us N] [--inline]\n"
               "       [--json FILE]\n",
               message.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--inline") {
      options.inline_callbacks = true;
      continue;
    }
    if (i + 1 >= argc)
      usage("missing value for " + flag);
    const std::string value = argv[++i];
    try {
      if (flag == "--target") {
        options.target = value;
      } else if (flag == "--concurrency") {
        options.concurrency = std::stoi(value);
      } else if (flag == "--rate") {
        options.rate = std::stod(value);
      } else if (flag == "--groups") {
        options.groups = std::stoi(value);
      } else if (flag == "--payload") {
        options.payload = std::stoul(value);
      } else if (flag == "--duration") {
        options.duration_s = std::stod(value);
      } else if (flag == "--warmup") {
        options.warmup_s = std::stod(value);
      } else if (flag == "--method") {
        options.method = value;
      } else if (flag == "--prime") {
        options.prime_number = std::stoull(value);
      } else if (flag == "--server-pid") {
        size_t start = 0;
        while (start < value.size()) {
          const size_t comma = value.find(',', start);
          options.server_pids.push_back(std::stoi(value.substr(start, comma - start)));
          start = comma == std::string::npos ? value.size() : comma + 1;
        }
      } else if (flag == "--timeout-ms") {
        options.timeout_ms = std::stoi(value);
      } else if (flag == "--spin-us") {
        options.spin_us = std::stoi(value);
      } else if (flag == "--idle") {
        options.idle_s = std::stod(value);
      } else if (flag == "--json") {
        options.json_path = value;
      } else {
        usage("unknown option " + flag);
      }
    } catch (const std::exception&) {
      usage("bad value for " + flag + ": " + value);
    }
  }
  if (options.target.empty())
    usage("--target is required");
  if (options.idle_s <= 0 && (options.concurrency > 0) == (options.rate > 0)) {
    usage("give one of --concurrency C, --rate R or --idle S");
  }
  if (options.method != "echo" && options.method != "is_prime")
    usage("--method echo|is_prime");
  return options;
}

// What every call reports into.
struct Results {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> ended_after_stop{0};
  std::array<std::atomic<uint64_t>, percore::kErrorCodeCount + 1> errors{};
  LatencyHistogram latency;

  void record(const percore::Controller& controller, Clock::time_point since) {
    if (!measuring.load(std::memory_order_relaxed))
      return;
    latency.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count()));
    completed.fetch_add(1, std::memory_order_relaxed);
    if (controller.Failed()) {
      const int index = percore::error_code_index(controller.ErrorCode());
      errors[index < 0 ? percore::kErrorCodeCount : index].fetch_add(1, std::memory_order_relaxed);
    }
  }
};

// One call slot of the load; reused for the next call in the closed loop.
class BenchCall : public google::protobuf::Closure {
 public:
  BenchCall(percore::Channel& channel, const Options& options, Results& results, bool closed_loop)
      : echo_(&channel),
        prime_(&channel),
        options_(options),
        results_(results),
        closed_loop_(closed_loop) {
    echo_request_.set_message(std::string(options.payload, 'x'));
    prime_request_.set_number(options.prime_number);
  }

  // Starts a call whose latency counts from `intended`.
  void start(Clock::time_point intended) {
    intended_ = intended;
    controller_.Reset();
    controller_.set_timeout_ms(options_.timeout_ms);
    if (options_.method == "echo") {
      echo_.Echo(&controller_, &echo_request_, &echo_response_, this);
    } else {
      prime_.IsPrime(&controller_, &prime_request_, &prime_response_, this);
    }
  }

  void Run() override {
    results_.record(controller_, intended_);
    if (!closed_loop_) {
      delete this;
      return;
    }
    if (results_.stopping.load(std::memory_order_relaxed)) {
      results_.ended_after_stop.fetch_add(1, std::memory_order_release);
      return;
    }
    start(Clock::now());
  }

 private:
  example::EchoService_Stub echo_;
  prime::PrimeService_Stub prime_;
  const Options& options_;
  Results& results_;
  const bool closed_loop_;
  percore::Controller controller_;
  example::EchoRequest echo_request_;
  example::EchoResponse echo_response_;
  prime::IsPrimeRequest prime_request_;
  prime::IsPrimeResponse prime_response_;
  Clock::time_point intended_;
};

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  percore::ChannelOptions channel_options;
  channel_options.groups = options.groups;
  channel_options.timeout_ms = options.timeout_ms;
  channel_options.spin_us = options.spin_us;
  channel_options.max_inflight_per_group = 1 << 16;
  if (options.inline_callbacks)
    channel_options.completion = percore::CompletionMode::kInlineCallback;
  percore::Channel channel;
  std::string error;
  if (!channel.Init(options.target, channel_options, &error)) {
    std::fprintf(stderr, "percore-bench: %s\n", error.c_str());
    return 1;
  }
  const int groups = channel.group_count();
  if (options.idle_s > 0) {
    // The idle target: an initialized channel (threads, connections) and a
    // server with nothing to do must not spin.
    const double client_start = percore::bench::self_cpu_seconds();
    const double server_start = percore::bench::processes_cpu_seconds(options.server_pids);
    std::this_thread::sleep_for(std::chrono::duration<double>(options.idle_s));
    const double client_cpu = percore::bench::self_cpu_seconds() - client_start;
    const double server_cpu =
        percore::bench::processes_cpu_seconds(options.server_pids) - server_start;
    std::printf(
        "idle %.1f s with %d groups: client %.3f CPU s (%.2f%%), server %.3f CPU s (%.2f%%)\n",
        options.idle_s, groups, client_cpu, 100 * client_cpu / options.idle_s, server_cpu,
        100 * server_cpu / options.idle_s);
    if (!options.json_path.empty()) {
      std::ofstream(options.json_path)
          << "{\"system\":\"percore\",\"idle_s\":" << options.idle_s << ",\"groups\":" << groups
          << ",\"client_cpu_s\":" << client_cpu << ",\"server_cpu_s\":" << server_cpu << "}\n";
    }
    return 0;
  }
  Results results;
  const bool closed_loop = options.concurrency > 0;

  std::vector<std::unique_ptr<BenchCall>> closed_calls;
  std::vector<std::thread> load_threads;
  if (closed_loop) {
    for (int i = 0; i < options.concurrency; ++i) {
      closed_calls.push_back(std::make_unique<BenchCall>(channel, options, results, true));
    }
    // One load thread per group starts its share; completions keep it going
    // from the group's own threads.
    for (int g = 0; g < groups; ++g) {
      load_threads.emplace_back([&, g] {
        for (int i = g; i < options.concurrency; i += groups)
          closed_calls[i]->start(Clock::now());
      });
    }
    for (std::thread& thread : load_threads)
      thread.join();
    load_threads.clear();
  } else {
    const double per_thread_rate = options.rate / groups;
    for (int g = 0; g < groups; ++g) {
      load_threads.emplace_back([&, per_thread_rate] {
        const auto interval = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / per_thread_rate));
        Clock::time_point next = Clock::now();
        while (!results.stopping.load(std::memory_order_relaxed)) {
          std::this_thread::sleep_until(next);
          (new BenchCall(channel, options, results, false))->start(next);
          next += interval;
        }
      });
    }
  }

  std::this_thread::sleep_for(std::chrono::duration<double>(options.warmup_s));
  const double client_cpu_start = percore::bench::self_cpu_seconds();
  const double server_cpu_start = percore::bench::processes_cpu_seconds(options.server_pids);
  const Clock::time_point window_start = Clock::now();
  results.measuring = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(options.duration_s));
  results.measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - window_start).count();
  const double client_cpu = percore::bench::self_cpu_seconds() - client_cpu_start;
  const double server_cpu =
      percore::bench::processes_cpu_seconds(options.server_pids) - server_cpu_start;

  results.stopping = true;
  for (std::thread& thread : load_threads)
    thread.join();
  if (closed_loop) {
    const Clock::time_point give_up =
        Clock::now() + std::chrono::milliseconds(options.timeout_ms + 2000);
    while (results.ended_after_stop.load(std::memory_order_acquire) <
               static_cast<uint64_t>(options.concurrency) &&
           Clock::now() < give_up) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

  const double completed = static_cast<double>(results.completed.load());
  const double cpu = client_cpu + server_cpu;
  std::map<int32_t, uint64_t> errors;
  uint64_t error_total = 0;
  for (int i = 0; i <= percore::kErrorCodeCount; ++i) {
    const uint64_t count = results.errors[i].load();
    if (count == 0)
      continue;
    errors[i < percore::kErrorCodeCount ? percore::to_int(percore::kAllErrorCodes[i]) : -1] = count;
    error_total += count;
  }
  auto us = [&](double quantile) { return results.latency.percentile(quantile) / 1000.0; };
  const std::string load = closed_loop ? "concurrency " + std::to_string(options.concurrency)
                                       : "rate " + std::to_string(static_cast<long>(options.rate));
  std::printf("%-16s %6s %11s %8s %8s %8s %9s %9s %9s %9s %12s %7s\n", "load", "groups", "calls/s",
              "p50_us", "p90_us", "p99_us", "p99.9_us", "max_us", "client_s", "server_s",
              "req/cpu_s", "errors");
  std::printf("%-16s %6d %11.0f %8.1f %8.1f %8.1f %9.1f %9.1f %9.2f %9.2f %12.0f %7llu\n",
              load.c_str(), groups, completed / elapsed, us(0.5), us(0.9), us(0.99), us(0.999),
              results.latency.max() / 1000.0, client_cpu, server_cpu,
              cpu > 0 ? completed / cpu : 0.0, static_cast<unsigned long long>(error_total));
  for (const auto& [code, count] : errors) {
    std::printf("  errors %d %s: %llu\n", code, std::string(percore::error_code_name(code)).c_str(),
                static_cast<unsigned long long>(count));
  }

  if (!options.json_path.empty()) {
    std::ofstream json(options.json_path);
    json << "{\"system\":\"percore\",\"target\":\"" << json_escape(options.target)
         << "\",\"method\":\"" << options.method << "\",\"payload_bytes\":" << options.payload
         << ",\"groups\":" << groups << ",\"concurrency\":" << options.concurrency
         << ",\"rate\":" << options.rate << ",\"duration_s\":" << elapsed
         << ",\"completed\":" << static_cast<uint64_t>(completed)
         << ",\"calls_per_s\":" << completed / elapsed << ",\"latency_us\":{\"p50\":" << us(0.5)
         << ",\"p90\":" << us(0.9) << ",\"p99\":" << us(0.99) << ",\"p999\":" << us(0.999)
         << ",\"max\":" << results.latency.max() / 1000.0 << "},\"client_cpu_s\":" << client_cpu
         << ",\"server_cpu_s\":" << server_cpu
         << ",\"requests_per_cpu_s\":" << (cpu > 0 ? completed / cpu : 0.0) << ",\"errors\":{";
    bool first = true;
    for (const auto& [code, count] : errors) {
      json << (first ? "" : ",") << "\"" << code << "\":" << count;
      first = false;
    }
    json << "}}\n";
  }
  return error_total == 0 ? 0 : 1;
}
