// percore-stream-bench: stream throughput. Opens one stream attached to
// example.EchoService.Echo (percore-server echoes every message back on it),
// writes --total-mb of --message-bytes messages as fast as the window
// allows, and waits until every byte has come back.
//
//   percore-stream-bench --target URI --message-bytes N [--total-mb M]
//                        [--window-bytes W] [--server-pid PID[,PID...]] [--json FILE]
//
// Prints MB/s (one way; the same bytes also come back) and the CPU each
// side spent per MB (user + system; the server's from /proc, over the same
// window). Exits 1 if the stream ends early or a byte is missing.

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bench/cpu_usage.h"
#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>

namespace {

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "percore-stream-bench: %s\n"
               "usage: percore-stream-bench --target URI --message-bytes N [--total-mb M]\n"
               "                            [--window-bytes W] [--server-pid PID[,PID...]]\n"
               "                            [--json FILE]\n",
               message.c_str());
  std::exit(2);
}

// Counts the echoed bytes.
class Counter final : public percore::StreamHandler {
 public:
  void on_received_messages(percore::Stream&, std::span<std::string> messages) override {
    uint64_t bytes = 0;
    for (const std::string& message : messages)
      bytes += message.size();
    std::lock_guard lock(mutex_);
    bytes_ += bytes;
    changed_.notify_all();
  }
  void on_closed(percore::Stream&, percore::StreamEndReason reason) override {
    std::lock_guard lock(mutex_);
    end_ = reason;
    changed_.notify_all();
  }
  // Waits for `total` bytes or the end; returns the bytes received.
  uint64_t wait_for(uint64_t total, std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return bytes_ >= total || end_.has_value(); });
    return bytes_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  uint64_t bytes_ = 0;
  std::optional<percore::StreamEndReason> end_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string target;
  size_t message_bytes = 0;
  uint64_t total_mb = 256;
  uint64_t window_bytes = 2u << 20;
  std::vector<pid_t> server_pids;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc)
      usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--target") {
      target = value;
    } else if (flag == "--message-bytes") {
      message_bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--total-mb") {
      total_mb = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--window-bytes") {
      window_bytes = std::strtoull(value.c_str(), nullptr, 10);
    } else if (flag == "--server-pid") {
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = value.find(',', start);
        server_pids.push_back(static_cast<pid_t>(
            std::atoi(value.substr(start, comma == std::string::npos ? comma : comma - start)
                          .c_str())));
        if (comma == std::string::npos)
          break;
        start = comma + 1;
      }
    } else if (flag == "--json") {
      json_path = value;
    } else {
      usage("unknown option " + flag);
    }
  }
  if (target.empty() || message_bytes == 0 || total_mb == 0)
    usage("--target, --message-bytes and --total-mb (> 0) are required");

  percore::Channel channel;
  percore::ChannelOptions options;
  options.timeout_ms = 10000;
  options.private_groups = percore::ClientRuntimeOptions{.groups = 1};
  std::string error;
  if (!channel.Init(target, options, &error)) {
    std::fprintf(stderr, "percore-stream-bench: %s\n", error.c_str());
    return 1;
  }
  auto counter = std::make_shared<Counter>();
  percore::Controller controller;
  percore::StreamOptions stream_options;
  stream_options.handler = counter;
  stream_options.max_buf_size = window_bytes;
  std::shared_ptr<percore::Stream> stream = controller.open_stream(stream_options);
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message("percore-stream-bench");
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  if (controller.Failed() || stream->end_reason()) {
    std::fprintf(stderr, "percore-stream-bench: opening the stream failed: %d %s\n",
                 controller.ErrorCode(), controller.ErrorText().c_str());
    return 1;
  }

  const uint64_t total = total_mb << 20;
  const std::string payload(message_bytes, 'p');
  const double client_cpu_before = percore::bench::self_cpu_seconds();
  const double server_cpu_before = percore::bench::processes_cpu_seconds(server_pids);
  const auto start = std::chrono::steady_clock::now();
  uint64_t written = 0;
  while (written < total) {
    std::string message = payload;
    percore::StreamWriteStatus status;
    while ((status = stream->Write(std::move(message))) == percore::StreamWriteStatus::kFull) {
      if (!stream->WaitWritable(std::chrono::seconds(10)))
        break;
    }
    if (status != percore::StreamWriteStatus::kOk) {
      std::fprintf(stderr, "percore-stream-bench: write failed after %llu bytes: %s\n",
                   static_cast<unsigned long long>(written),
                   status == percore::StreamWriteStatus::kTooLarge
                       ? ("a message is at most " + std::to_string(stream->max_message_bytes()) +
                          " bytes")
                             .c_str()
                       : "the stream ended");
      return 1;
    }
    written += message_bytes;
  }
  const uint64_t received = counter->wait_for(written, std::chrono::seconds(60));
  const auto end = std::chrono::steady_clock::now();
  const double client_cpu = percore::bench::self_cpu_seconds() - client_cpu_before;
  const double server_cpu = percore::bench::processes_cpu_seconds(server_pids) - server_cpu_before;
  stream->Close();
  if (received < written) {
    std::fprintf(stderr, "percore-stream-bench: %llu of %llu bytes came back\n",
                 static_cast<unsigned long long>(received),
                 static_cast<unsigned long long>(written));
    return 1;
  }
  const double seconds = std::chrono::duration<double>(end - start).count();
  const double megabytes = static_cast<double>(written) / (1 << 20);
  const double mb_per_s = megabytes / seconds;
  const double client_ms_per_mb = client_cpu * 1000 / megabytes;
  const double server_ms_per_mb = server_pids.empty() ? 0 : server_cpu * 1000 / megabytes;
  std::printf("message %zu B, %.0f MB each way in %.2f s: %.1f MB/s; CPU per MB: client %.2f ms, "
              "server %.2f ms\n",
              message_bytes, megabytes, seconds, mb_per_s, client_ms_per_mb, server_ms_per_mb);
  if (!json_path.empty()) {
    std::ofstream out(json_path);
    out << "{\"message_bytes\": " << message_bytes << ", \"megabytes\": " << megabytes
        << ", \"seconds\": " << seconds << ", \"mb_per_s\": " << mb_per_s
        << ", \"client_cpu_ms_per_mb\": " << client_ms_per_mb
        << ", \"server_cpu_ms_per_mb\": " << server_ms_per_mb << "}\n";
  }
  return 0;
}
