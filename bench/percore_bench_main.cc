// percore-bench: a load generator on the client proxy.
//
//   percore-bench --target URI (--concurrency C | --rate R) [--groups G]
//                 [--payload BYTES] [--duration S] [--warmup S]
//                 [--method echo|is_prime] [--server-pid PID[,PID...]]
//                 [--timeout-ms N] [--spin-us N] [--inline] [--json FILE]
//                 [--send-thread-writes] [--tls-ca FILE]
//   percore-bench --target URI --idle S [--groups G] [--server-pid PID]
//
// --send-thread-writes: every call is written by its group's send thread
// (ClientRuntimeOptions::callers_write = false), to compare with callers
// writing their own calls when the send thread sleeps (the default).
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
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bench/bench_report.h"
#include "bench/cpu_usage.h"
#include "bench/latency_histogram.h"
#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/error_code.h>
#include <percore/proto/detail/error_code_counters.h>
#include <percore/proto/prime.pb.h>
#include <percore/version.h>

namespace {

using Clock = std::chrono::steady_clock;
using percore::bench::LatencyHistogram;

struct Options : percore::bench::CommonOptions {
  int groups = 0;
  std::string method = "echo";
  uint64_t prime_number = 32416190071ull;
  int spin_us = 0;
  bool inline_callbacks = false;
  // --send-thread-writes: ClientRuntimeOptions::callers_write = false.
  bool callers_write = true;
  double idle_s = 0;  // --idle: no calls, just measure the CPU of an idle channel.
  std::string tls_ca;  // --tls-ca: call over TLS, trusting the CAs in this file.
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-bench: %s\n"
               "usage: percore-bench --target URI (--concurrency C | --rate R) [--groups G]\n"
               "       [--payload BYTES] [--duration S] [--warmup S] [--method echo|is_prime]\n"
               "       [--server-pid PID[,PID...]] [--timeout-ms N] [--spin-us N] [--inline]\n"
               "       [--send-thread-writes] [--json FILE] [--tls-ca FILE]\n",
               message.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  percore::bench::FlagSpec spec;
  spec.on_switch = [&options](const std::string& flag) {
    if (flag == "--inline") {
      options.inline_callbacks = true;
    } else if (flag == "--send-thread-writes") {
      options.callers_write = false;
    } else {
      return false;
    }
    return true;
  };
  spec.on_flag = [&options](const std::string& flag, const std::string& value) {
    if (flag == "--method") {
      options.method = value;
    } else if (flag == "--prime") {
      options.prime_number = std::stoull(value);
    } else if (flag == "--idle") {
      options.idle_s = std::stod(value);
    } else if (flag == "--tls-ca") {
      options.tls_ca = value;
    } else {
      return false;
    }
    return true;
  };
  spec.int_flags = {{"--groups", &options.groups}, {"--spin-us", &options.spin_us}};
  percore::bench::parse_flags(argc, argv, options, spec, usage);
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
  percore::ErrorCodeCounters errors;
  LatencyHistogram latency;

  // Records a call that started at `since` and ended at `now`.
  void record(const percore::Controller& controller, Clock::time_point since,
              Clock::time_point now) {
    if (!measuring.load(std::memory_order_relaxed))
      return;
    latency.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(now - since).count()));
    completed.fetch_add(1, std::memory_order_relaxed);
    if (controller.Failed())
      errors.add(controller.ErrorCode());
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
    // One clock read ends this call and starts the next, as the raw echo
    // bench reads the clock once per read for every reply in it.
    const Clock::time_point now = Clock::now();
    results_.record(controller_, intended_, now);
    if (!closed_loop_) {
      delete this;
      return;
    }
    if (results_.stopping.load(std::memory_order_relaxed)) {
      results_.ended_after_stop.fetch_add(1, std::memory_order_release);
      return;
    }
    start(now);
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

}  // namespace

int main(int argc, char** argv) {
  // --version wins wherever it stands, as in GNU programs.
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--version") {
      std::printf("%s %s\n", "percore-bench", PERCORE_VERSION_STRING);
      return 0;
    }
  }
  const Options options = parse(argc, argv);
  percore::ChannelOptions channel_options;
  // The groups measured are the bench's own, as --groups says.
  channel_options.private_groups =
      percore::ClientRuntimeOptions{.groups = options.groups, .max_inflight_per_group = 1 << 16,
                                    .spin_us = options.spin_us,
                                    .callers_write = options.callers_write};
  channel_options.timeout_ms = options.timeout_ms;
  if (!options.tls_ca.empty())
    channel_options.tls = percore::TlsOptions{.ca_file = options.tls_ca};
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

  const percore::bench::Window window = percore::bench::measure_window(
      options.warmup_s, options.duration_s, options.server_pids, results.measuring);

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

  percore::bench::BenchResult result;
  result.system = "percore";
  result.target = options.target;
  result.method = options.method;
  result.payload_bytes = options.payload;
  result.parallelism = groups;
  result.concurrency = options.concurrency;
  result.rate = options.rate;
  result.duration_s = window.elapsed_s;
  result.completed = results.completed.load();
  result.latency = &results.latency;
  result.client_cpu_s = window.client_cpu_s;
  result.server_cpu_s = window.server_cpu_s;
  for (const auto& [code, count] : results.errors.snapshot())
    result.errors[code] = count;
  result.error_name = [](int32_t code) { return std::string(percore::error_code_name(code)); };
  percore::bench::print_table(result);
  const percore::ChannelStats stats = channel.stats();
  std::printf("  retries %llu (refused: %llu by the retry budget, %llu by max_resends/max_retry)\n",
              static_cast<unsigned long long>(stats.total.retries),
              static_cast<unsigned long long>(stats.total.retries_refused_by_budget),
              static_cast<unsigned long long>(stats.total.retries_refused_by_limit));
  if (!options.json_path.empty())
    percore::bench::write_json(result, options.json_path);
  return result.error_total() == 0 ? 0 : 1;
}
