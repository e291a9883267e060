// grpc-echo-server: the gRPC C++ peer of percore-server for percore-bench.
// It serves grpcpeer.EchoService (the same messages as example.EchoService)
// the way a gRPC user writes a fast server: the asynchronous API, one
// ServerCompletionQueue and one thread polling it per core, and the usual
// CallData state machine (request -> finish -> request again), with the
// CallData objects reused rather than allocated per call.
//
//   grpc-echo-server [--listen HOST:PORT] [--threads N]
//
// gRPC runs with its own defaults: no channel or server argument is set, no
// resource quota, no custom allocator or poller. Prints one line when ready;
// SIGTERM or SIGINT stop it: Shutdown (calls in flight may finish), then the
// completion queues are shut down and drained.

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/peers/grpc/grpc_echo.grpc.pb.h"

namespace {

constexpr std::string_view kUsage =
    "usage: grpc-echo-server [--listen HOST:PORT] [--threads N] [--grace-ms N]\n"
    "  --listen    address to serve on (default 127.0.0.1:8000; port 0 picks one)\n"
    "  --threads   completion queues, one polling thread each (default: one per core)\n"
    "  --grace-ms  how long a stop waits for calls in flight (default 5000)\n"
    "  --tls-cert, --tls-key  serve TLS with this PEM certificate chain and key\n";

// Requests kept posted on each completion queue, so that a burst of arriving
// calls does not wait in gRPC's list of unmatched calls; every arrival posts
// a replacement, so the number posted never drops below this.
constexpr int kPostedRequestsPerQueue = 16;

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "grpc-echo-server: %s\n%.*s", message.c_str(),
               static_cast<int>(kUsage.size()), kUsage.data());
  std::exit(2);
}

long long parse_number(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long value = std::strtoll(text, &end, 10);
  if (end == text || *end != '\0' || value < 0)
    usage_error(flag + " needs a non-negative number");
  return value;
}

class CallData;

// One completion queue and the thread that polls it. The CallData objects
// belong to the worker and are only touched from its thread.
struct Worker {
  grpcpeer::EchoService::AsyncService* service = nullptr;
  std::unique_ptr<grpc::ServerCompletionQueue> queue;
  // Held while a tag is handled; the stop takes it to set `stopped`, after
  // which nothing is posted to the queue any more (posting to a queue that is
  // shut down is a fatal error in gRPC).
  std::mutex mutex;
  bool stopped = false;
  std::vector<std::unique_ptr<CallData>> all_calls;
  std::vector<CallData*> idle_calls;
  unsigned long long answered = 0;
  std::thread thread;

  void post_request();
  void run();
};

// The state machine of one Echo call: kWaiting (a request is posted, the tag
// comes back when a call arrives) -> kFinishing (the reply is sent, the tag
// comes back when it is done) -> back to the worker's idle list.
class CallData {
 public:
  explicit CallData(Worker& worker) : worker_(worker) {}

  void request() {
    // A ServerContext serves one call only; a fresh one is built in place.
    writer_.reset();
    context_.emplace();
    writer_.emplace(&*context_);
    request_.Clear();
    response_.Clear();
    state_ = State::kWaiting;
    worker_.service->RequestEcho(&*context_, &request_, &*writer_, worker_.queue.get(),
                                 worker_.queue.get(), this);
  }

  void proceed(bool ok) {
    if (state_ == State::kWaiting) {
      if (!ok) {
        // The server is shutting down: this request will never be matched.
        worker_.idle_calls.push_back(this);
        return;
      }
      worker_.post_request();
      response_.set_message(request_.message());
      state_ = State::kFinishing;
      writer_->Finish(response_, grpc::Status::OK, this);
      return;
    }
    // kFinishing: the reply went out (ok) or the call was cancelled (!ok).
    if (ok)
      ++worker_.answered;
    worker_.idle_calls.push_back(this);
  }

 private:
  enum class State { kWaiting, kFinishing };

  Worker& worker_;
  State state_ = State::kWaiting;
  std::optional<grpc::ServerContext> context_;
  std::optional<grpc::ServerAsyncResponseWriter<grpcpeer::EchoResponse>> writer_;
  grpcpeer::EchoRequest request_;
  grpcpeer::EchoResponse response_;
};

void Worker::post_request() {
  CallData* call = nullptr;
  if (idle_calls.empty()) {
    all_calls.push_back(std::make_unique<CallData>(*this));
    call = all_calls.back().get();
  } else {
    call = idle_calls.back();
    idle_calls.pop_back();
  }
  call->request();
}

void Worker::run() {
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (int i = 0; i < kPostedRequestsPerQueue; ++i)
      post_request();
  }
  void* tag = nullptr;
  bool ok = false;
  // Next() returns false once the queue is shut down and drained.
  while (queue->Next(&tag, &ok)) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!stopped)
      static_cast<CallData*>(tag)->proceed(ok);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen = "127.0.0.1:8000";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  long long grace_ms = 5000;
  std::string tls_cert;
  std::string tls_key;
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
    } else if (flag == "--threads") {
      threads = static_cast<int>(parse_number(flag, value));
      if (threads < 1)
        usage_error("--threads needs at least 1");
    } else if (flag == "--grace-ms") {
      grace_ms = parse_number(flag, value);
    } else if (flag == "--tls-cert") {
      tls_cert = value;
    } else if (flag == "--tls-key") {
      tls_key = value;
    } else {
      usage_error("unknown option " + flag);
    }
  }
  const std::string host = listen.substr(0, listen.rfind(':'));

  // Block the stop signals before any thread starts (gRPC's own threads
  // included), so that every thread inherits the mask and only sigwait()
  // below sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  grpcpeer::EchoService::AsyncService service;
  grpc::ServerBuilder builder;
  int port = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!tls_cert.empty() || !tls_key.empty()) {
    auto read = [](const std::string& path) {
      std::ifstream in(path, std::ios::binary);
      return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    };
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({read(tls_key), read(tls_cert)});
    credentials = grpc::SslServerCredentials(ssl);
  }
  builder.AddListeningPort(listen, credentials, &port);
  builder.RegisterService(&service);
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i) {
    workers.push_back(std::make_unique<Worker>());
    workers.back()->service = &service;
    workers.back()->queue = builder.AddCompletionQueue();
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "grpc-echo-server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  for (auto& worker : workers)
    worker->thread = std::thread([&worker] { worker->run(); });

  std::printf("grpc-echo-server ready on %s:%d pid %d\n", host.c_str(), port,
              static_cast<int>(getpid()));
  std::fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  std::fprintf(stderr, "grpc-echo-server: signal %d, stopping\n", signal_number);
  // New calls are refused from here; calls in flight get grace_ms to finish
  // (the workers still answer them), then gRPC cancels what is left. Posted
  // requests come back with ok == false.
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms));
  for (auto& worker : workers) {
    std::lock_guard<std::mutex> lock(worker->mutex);
    worker->stopped = true;
  }
  for (auto& worker : workers)
    worker->queue->Shutdown();
  unsigned long long answered = 0;
  for (auto& worker : workers) {
    worker->thread.join();
    answered += worker->answered;
  }
  // Everything is drained: the calls, then the server, then the queues.
  for (auto& worker : workers) {
    worker->idle_calls.clear();
    worker->all_calls.clear();
  }
  server.reset();
  workers.clear();
  std::fprintf(stderr, "grpc-echo-server: stopped; %llu answers\n", answered);
  return 0;
}
