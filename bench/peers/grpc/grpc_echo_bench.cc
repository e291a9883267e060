// grpc-echo-bench: percore-bench's load generator for the gRPC C++ peer
// (grpc-echo-server). Same flags, same table, same JSON keys, so the two can
// be run side by side:
//
//   grpc-echo-bench --target HOST:PORT (--concurrency C | --rate R) [--threads T]
//                   [--payload BYTES] [--duration S] [--warmup S]
//                   [--server-pid PID[,PID...]] [--timeout-ms N] [--json FILE]
//
// T client threads (default 2) play the part of percore-bench's groups: each
// has its own grpc::Channel (its own TCP connection) and its own
// CompletionQueue, polled by that thread; calls are asynchronous
// (PrepareAsyncEcho + StartCall + Finish with the call as the tag).
// Closed loop (--concurrency): C calls in flight in total, spread over the
// threads; each completion makes the next call from the thread that polled it.
// Open loop (--rate): R calls per second in total, one pacing thread per client
// thread; latency counts from each call's intended send time, so a stall is
// not hidden. The headline figure is requests per CPU-second: completed calls
// divided by the user + system CPU seconds of this process and of the
// --server-pid processes over the measured window. Errors are counted by gRPC
// status code.

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/bench_report.h"
#include "bench/latency_histogram.h"
#include "bench/peers/grpc/grpc_echo.grpc.pb.h"

namespace {

using Clock = std::chrono::steady_clock;
using percore::bench::LatencyHistogram;

// grpc::StatusCode values run from 0 (OK) to 16 (UNAUTHENTICATED).
constexpr int kStatusCodeCount = 17;

const char* status_code_name(int code) {
  static constexpr std::array<const char*, kStatusCodeCount> kNames = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  return code >= 0 && code < kStatusCodeCount ? kNames[code] : "unknown status code";
}

struct Options : percore::bench::CommonOptions {
  int threads = 2;
  // --tls-ca: TLS, trusting the CAs in this file; --tls-server-name: the
  // name the server's certificate must carry (gRPC's target name override).
  std::string tls_ca;
  std::string tls_server_name;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "grpc-echo-bench: %s\n"
               "usage: grpc-echo-bench --target HOST:PORT (--concurrency C | --rate R)\n"
               "       [--threads T] [--payload BYTES] [--duration S] [--warmup S]\n"
               "       [--server-pid PID[,PID...]] [--timeout-ms N] [--json FILE]\n"
               "       [--tls-ca FILE [--tls-server-name NAME]]\n",
               message.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  percore::bench::FlagSpec spec;
  spec.int_flags = {{"--threads", &options.threads}};
  spec.on_flag = [&options](const std::string& flag, const std::string& value) {
    if (flag == "--tls-ca") {
      options.tls_ca = value;
    } else if (flag == "--tls-server-name") {
      options.tls_server_name = value;
    } else {
      return false;
    }
    return true;
  };
  percore::bench::parse_flags(argc, argv, options, spec, usage);
  if ((options.concurrency > 0) == (options.rate > 0)) {
    usage("give one of --concurrency C or --rate R");
  }
  if (options.threads < 1)
    usage("--threads needs at least 1");
  return options;
}

// What every call reports into.
struct Results {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> ended_after_stop{0};
  // Open loop: calls started and not yet completed.
  std::atomic<int64_t> open_in_flight{0};
  // By status code; the last entry counts codes outside 0..16.
  std::array<std::atomic<uint64_t>, kStatusCodeCount + 1> errors{};
  LatencyHistogram latency;

  void record(const grpc::Status& status, Clock::time_point since) {
    if (!measuring.load(std::memory_order_relaxed))
      return;
    latency.record(static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - since).count()));
    completed.fetch_add(1, std::memory_order_relaxed);
    if (!status.ok()) {
      const int code = static_cast<int>(status.error_code());
      errors[code >= 0 && code < kStatusCodeCount ? code : kStatusCodeCount].fetch_add(
          1, std::memory_order_relaxed);
    }
  }
};

// One client thread's channel and completion queue.
struct ClientThread {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpcpeer::EchoService::Stub> stub;
  grpc::CompletionQueue queue;
  std::thread poller;
  std::thread pacer;
};

// One call slot of the load; reused for the next call in the closed loop. It
// is its own completion-queue tag.
class BenchCall {
 public:
  BenchCall(ClientThread& client, const Options& options, Results& results, bool closed_loop)
      : client_(client), options_(options), results_(results), closed_loop_(closed_loop) {
    request_.set_message(std::string(options.payload, 'x'));
  }

  // Starts a call whose latency counts from `intended`.
  void start(Clock::time_point intended) {
    intended_ = intended;
    // A ClientContext serves one call only; a fresh one is built in place.
    context_.emplace();
    if (options_.timeout_ms > 0) {
      context_->set_deadline(std::chrono::system_clock::now() +
                             std::chrono::milliseconds(options_.timeout_ms));
    }
    reader_ = client_.stub->PrepareAsyncEcho(&*context_, request_, &client_.queue);
    reader_->StartCall();
    reader_->Finish(&response_, &status_, this);
  }

  // The Finish tag came back (its `ok` is always true; the status says how the
  // call ended).
  void done() {
    results_.record(status_, intended_);
    // The reader lives in the call's arena, which the context releases: the
    // reader goes first.
    reader_.reset();
    context_.reset();
    if (!closed_loop_) {
      results_.open_in_flight.fetch_sub(1, std::memory_order_release);
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
  ClientThread& client_;
  const Options& options_;
  Results& results_;
  const bool closed_loop_;
  std::optional<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<grpcpeer::EchoResponse>> reader_;
  grpcpeer::EchoRequest request_;
  grpcpeer::EchoResponse response_;
  grpc::Status status_;
  Clock::time_point intended_;
};

void poll(ClientThread& client) {
  void* tag = nullptr;
  bool ok = false;
  // Next() returns false once the queue is shut down and drained.
  while (client.queue.Next(&tag, &ok))
    static_cast<BenchCall*>(tag)->done();
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  const int threads = options.threads;
  std::vector<std::unique_ptr<ClientThread>> clients;
  for (int t = 0; t < threads; ++t) {
    auto client = std::make_unique<ClientThread>();
    // Channels to the same target with the same arguments share their
    // subchannels, and so one TCP connection, through gRPC's global subchannel
    // pool. A local pool per channel gives each client thread a connection of
    // its own, as each percore-bench group has; otherwise all the threads'
    // calls would be multiplexed onto one HTTP/2 connection and one server
    // completion queue. This is the only non-default argument set.
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (!options.tls_ca.empty()) {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = read_file(options.tls_ca);
      credentials = grpc::SslCredentials(ssl);
      if (!options.tls_server_name.empty())
        arguments.SetSslTargetNameOverride(options.tls_server_name);
    }
    client->channel = grpc::CreateCustomChannel(options.target, credentials, arguments);
    const auto connect_deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(options.timeout_ms);
    if (!client->channel->WaitForConnected(connect_deadline)) {
      std::fprintf(stderr, "grpc-echo-bench: cannot connect to %s\n", options.target.c_str());
      return 1;
    }
    client->stub = grpcpeer::EchoService::NewStub(client->channel);
    clients.push_back(std::move(client));
  }
  Results results;
  const bool closed_loop = options.concurrency > 0;

  std::vector<std::unique_ptr<BenchCall>> closed_calls;
  if (closed_loop) {
    for (int i = 0; i < options.concurrency; ++i) {
      closed_calls.push_back(
          std::make_unique<BenchCall>(*clients[i % threads], options, results, true));
    }
    // Each client thread starts its share, then polls its queue; completions
    // keep the calls going from there.
    for (int t = 0; t < threads; ++t) {
      clients[t]->poller = std::thread([&, t] {
        for (int i = t; i < options.concurrency; i += threads)
          closed_calls[i]->start(Clock::now());
        poll(*clients[t]);
      });
    }
  } else {
    const double per_thread_rate = options.rate / threads;
    for (int t = 0; t < threads; ++t) {
      ClientThread& client = *clients[t];
      client.poller = std::thread([&client] { poll(client); });
      client.pacer = std::thread([&, per_thread_rate] {
        const auto interval = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(1.0 / per_thread_rate));
        Clock::time_point next = Clock::now();
        while (!results.stopping.load(std::memory_order_relaxed)) {
          std::this_thread::sleep_until(next);
          results.open_in_flight.fetch_add(1, std::memory_order_relaxed);
          (new BenchCall(client, options, results, false))->start(next);
          next += interval;
        }
      });
    }
  }

  const percore::bench::Window window = percore::bench::measure_window(
      options.warmup_s, options.duration_s, options.server_pids, results.measuring);

  // Wind down: no new calls, wait for those in flight (each has a deadline),
  // then shut the queues down; the pollers drain them and return.
  results.stopping = true;
  for (auto& client : clients) {
    if (client->pacer.joinable())
      client->pacer.join();
  }
  const Clock::time_point give_up =
      Clock::now() + std::chrono::milliseconds(options.timeout_ms + 2000);
  auto all_ended = [&] {
    return closed_loop ? results.ended_after_stop.load(std::memory_order_acquire) >=
                             static_cast<uint64_t>(options.concurrency)
                       : results.open_in_flight.load(std::memory_order_acquire) <= 0;
  };
  while (!all_ended() && Clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (auto& client : clients)
    client->queue.Shutdown();
  for (auto& client : clients)
    client->poller.join();
  closed_calls.clear();

  percore::bench::BenchResult result;
  result.system = "grpc";
  result.target = options.target;
  result.payload_bytes = options.payload;
  result.parallelism_column = "groups";
  result.parallelism_key = "threads";
  result.parallelism = threads;
  result.concurrency = options.concurrency;
  result.rate = options.rate;
  result.duration_s = window.elapsed_s;
  result.completed = results.completed.load();
  result.latency = &results.latency;
  result.client_cpu_s = window.client_cpu_s;
  result.server_cpu_s = window.server_cpu_s;
  for (int i = 0; i <= kStatusCodeCount; ++i) {
    const uint64_t count = results.errors[i].load();
    if (count != 0)
      result.errors[i < kStatusCodeCount ? i : -1] = count;
  }
  result.error_name = [](int32_t code) { return std::string(status_code_name(code)); };
  // The table is percore-bench's, column for column; "groups" holds the
  // number of client threads (one channel and one completion queue each).
  percore::bench::print_table(result);
  if (!options.json_path.empty())
    percore::bench::write_json(result, options.json_path);
  return result.error_total() == 0 ? 0 : 1;
}
