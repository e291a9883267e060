// percore-server as a real process under abuse a peer can cause at will:
// a client that never reads, ten thousand idle connections, descriptor
// exhaustion, a flood of malformed connections. Each asserts the bound the
// server promises (memory read from /proc/PID/status, log lines counted in
// its stderr) and that it keeps serving.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include "test/support/blocking_client.h"
#include "test/support/bytes.h"
#include "test/support/child_process.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using testing::BlockingClient;
using testing::ReceivedFrame;
using testing::ReceiveStatus;
using testing::scaled;
using Clock = std::chrono::steady_clock;

#if defined(PERCORE_SANITIZER_BUILD)
// Shadow memory, redzones and the quarantine of freed blocks make a
// sanitizer build's resident set say nothing about the server's own.
constexpr bool kMemoryIsMeasurable = false;
#else
constexpr bool kMemoryIsMeasurable = true;
#endif

std::string echo_frame(int64_t id, const std::string& message) {
  example::EchoRequest request;
  request.set_message(message);
  testing::RequestParts parts;
  parts.correlation_id = id;
  parts.service = "example.EchoService";
  parts.method = "Echo";
  parts.message = &request;
  return BlockingClient::encode_request(parts);
}

// True if an echo call on a new connection is answered within `timeout`.
bool echo_answered(int port, int64_t id, milliseconds timeout) {
  BlockingClient client;
  if (!client.connect("127.0.0.1", port) || !client.send_bytes(echo_frame(id, "alive?")))
    return false;
  ReceivedFrame answer;
  return client.receive(answer, timeout) == ReceiveStatus::kFrame &&
         answer.correlation_id() == id && answer.error_code() == 0;
}

// A file for a child's stderr, removed with the object.
class TemporaryFile {
 public:
  TemporaryFile()
      : path_((std::filesystem::temp_directory_path() /
               ("percore-test-" + std::to_string(::getpid()) + "-" + std::to_string(++serial_) +
                ".log"))
                  .string()) {}
  ~TemporaryFile() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }
  std::vector<std::string> lines_containing(const std::string& text) const {
    std::vector<std::string> lines;
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      if (line.find(text) != std::string::npos)
        lines.push_back(line);
    }
    return lines;
  }

 private:
  static inline int serial_ = 0;
  std::string path_;
};

// Raises this process's descriptor limit (children inherit it) to at least
// `wanted`; false if the hard limit is lower and cannot be raised.
bool raise_descriptor_limit(rlim_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0)
    return false;
  if (limit.rlim_cur >= wanted)
    return true;
  if (limit.rlim_max < wanted)
    limit.rlim_max = wanted;  // Allowed as root.
  limit.rlim_cur = wanted;
  return ::setrlimit(RLIMIT_NOFILE, &limit) == 0;
}

// The input: one connection pipelines 60 KiB echo requests and reads
// nothing. The server stops reading it once 64 MiB (the default
// max_unwritten_bytes_per_connection) of answers wait, so the client cannot
// push 512 MiB through, and the server's resident set grows by less than
// 128 MiB. Then the server still serves others.
TEST(ServerAbuseTest, ClientThatNeverReadsCannotGrowTheServerWithoutBound) {
  auto server = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(server.has_value());
  ASSERT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  const long rss_before = testing::resident_kib(server->process->pid());
  ASSERT_GT(rss_before, 0);

  BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server->port));
  const std::string payload(60 * 1024, 'x');
  const size_t target = size_t{512} << 20;
  size_t sent = 0;
  int64_t id = 0;
  std::string frame;
  auto last_progress = Clock::now();
  while (sent < target && Clock::now() - last_progress < scaled(milliseconds(1000))) {
    if (frame.empty())
      frame = echo_frame(++id, payload);
    const ssize_t written =
        ::send(client.fd(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (written > 0) {
      frame.erase(0, static_cast<size_t>(written));
      sent += static_cast<size_t>(written);
      last_progress = Clock::now();
    } else {
      std::this_thread::sleep_for(milliseconds(2));
    }
  }
  const long rss_after = testing::resident_kib(server->process->pid());
  std::printf("non-reading client: sent %zu MiB before the server stopped reading; "
              "server RSS %ld KiB -> %ld KiB (+%ld KiB)\n",
              sent >> 20, rss_before, rss_after, rss_after - rss_before);
  EXPECT_LT(sent, target) << "the server kept reading";
  if (kMemoryIsMeasurable) {
    EXPECT_LT(rss_after - rss_before, 128 * 1024);
  }
  EXPECT_TRUE(echo_answered(server->port, 2, scaled(milliseconds(5000))));
}

// Ten thousand idle connections cost little (a stated bound: 4 KiB each),
// a good client keeps normal latency among them, and the idle timeout then
// closes them all.
TEST(ServerAbuseTest, TenThousandIdleConnectionsAreCheapAndClosedByTheIdleTimeout) {
  constexpr int kIdle = 10000;
  // This process holds the client ends, the server (which inherits the
  // limit) the other ends.
  if (!raise_descriptor_limit(kIdle + 512))
    GTEST_SKIP() << "cannot raise RLIMIT_NOFILE to " << kIdle + 512;
  const milliseconds idle_timeout = scaled(milliseconds(6000));
  auto server = testing::start_server_process(
      {"--io-threads", "2", "--workers", "1", "--idle-timeout-ms",
       std::to_string(idle_timeout.count())});
  ASSERT_TRUE(server.has_value());
  ASSERT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  const long rss_before = testing::resident_kib(server->process->pid());

  BlockingClient good;
  ASSERT_TRUE(good.connect("127.0.0.1", server->port));
  std::vector<std::unique_ptr<BlockingClient>> idle;
  idle.reserve(kIdle);
  for (int i = 0; i < kIdle; ++i) {
    auto client = std::make_unique<BlockingClient>();
    std::string error;
    ASSERT_TRUE(client->connect("127.0.0.1", server->port, &error)) << i << ": " << error;
    idle.push_back(std::move(client));
  }
  const auto opened_at = Clock::now();
  // Let the server accept them all (the good client's call queues behind).
  ASSERT_TRUE(echo_answered(server->port, 2, scaled(milliseconds(5000))));
  const long rss_after = testing::resident_kib(server->process->pid());

  std::vector<double> latencies_ms;
  for (int i = 0; i < 100; ++i) {
    const auto started = Clock::now();
    ASSERT_TRUE(good.send_bytes(echo_frame(100 + i, "among the idle")));
    ReceivedFrame answer;
    ASSERT_EQ(good.receive(answer, scaled(milliseconds(5000))), ReceiveStatus::kFrame);
    ASSERT_EQ(answer.correlation_id(), 100 + i);
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  const double median_ms = latencies_ms[latencies_ms.size() / 2];
  const long per_connection = (rss_after - rss_before) * 1024 / kIdle;
  std::printf("10,000 idle connections: server RSS %ld KiB -> %ld KiB (%ld bytes each); "
              "good client median %.3f ms, max %.3f ms\n",
              rss_before, rss_after, per_connection, median_ms, latencies_ms.back());
  if (kMemoryIsMeasurable) {
    EXPECT_LT(rss_after - rss_before, 4L * kIdle);  // KiB: 4 KiB a connection.
  }
  EXPECT_LT(median_ms, 10.0 * testing::time_slack());

  // Every idle connection ends with the server's FIN once the timeout passes
  // (the good client, just used, may go too: it is idle now).
  const auto deadline = opened_at + idle_timeout + scaled(milliseconds(5000));
  size_t closed = 0;
  std::vector<bool> is_closed(kIdle, false);
  while (closed < idle.size() && Clock::now() < deadline) {
    for (size_t i = 0; i < idle.size(); ++i) {
      if (is_closed[i])
        continue;
      char byte;
      const ssize_t got = ::recv(idle[i]->fd(), &byte, 1, MSG_DONTWAIT);
      if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
        is_closed[i] = true;
        ++closed;
      }
    }
    if (closed < idle.size())
      std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(closed, idle.size());
  EXPECT_GE(Clock::now() - opened_at, idle_timeout - milliseconds(1));
}


// Memory a peer made the server use goes back once its calls are over: a
// worker-pool call with a 40 MiB attachment must not leave its buffers in the
// pool of call objects (which keeps the capacity of their strings).
TEST(ServerAbuseTest, MemoryOfLargeCallsIsGivenBackAfterThem) {
  if (!kMemoryIsMeasurable)
    GTEST_SKIP() << "resident memory is not measurable under a sanitizer";
  // glibc keeps freed memory below its (dynamic) trim threshold for reuse;
  // a fixed threshold makes the resident set say what percore holds.
  auto server = testing::start_server_process(
      {"--io-threads", "1", "--workers", "1"},
      {"/usr/bin/env", "MALLOC_MMAP_THRESHOLD_=131072", "MALLOC_TRIM_THRESHOLD_=131072"});
  ASSERT_TRUE(server.has_value());
  ASSERT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  const long rss_before = testing::resident_kib(server->process->pid());
  for (int round = 0; round < 3; ++round) {
    BlockingClient client;
    ASSERT_TRUE(client.connect("127.0.0.1", server->port));
    testing::RequestParts parts;
    prime::IsPrimeRequest request;
    request.set_number(97);
    parts.correlation_id = round;
    parts.service = "prime.PrimeService";
    parts.method = "IsPrime";
    parts.message = &request;
    parts.attachment = std::string(40 << 20, 'a');
    ASSERT_TRUE(client.send_request(parts));
    ReceivedFrame answer;
    ASSERT_EQ(client.receive(answer, scaled(milliseconds(10000))), ReceiveStatus::kFrame);
    EXPECT_EQ(answer.error_code(), 0);
  }
  std::this_thread::sleep_for(milliseconds(300));
  const long rss_after = testing::resident_kib(server->process->pid());
  std::printf("three 40 MiB calls: server RSS %ld KiB -> %ld KiB afterwards\n", rss_before,
              rss_after);
  EXPECT_LT(rss_after - rss_before, 16 * 1024);
}

// Headers announcing 64 MiB bodies, and nothing more: the decoder reserves
// only a little per connection, so even under a 2 GiB address-space limit
// 200 of them neither crash the server nor stop it serving.
TEST(ServerAbuseTest, HeadersAloneDoNotReserveTheBodiesTheyAnnounce) {
  if (!kMemoryIsMeasurable)
    GTEST_SKIP() << "a sanitizer's shadow memory does not fit an address-space limit";
  auto server = testing::start_server_process({"--io-threads", "2", "--workers", "1"},
                                              {"/usr/bin/prlimit", "--as=2147483648"});
  ASSERT_TRUE(server.has_value());
  std::vector<std::unique_ptr<BlockingClient>> holders;
  const std::string header = std::string("PRPC") + std::string("\x04\x00\x00\x00", 4) +
                             std::string("\x00\x00\x00\x10", 4);  // 64 MiB body
  for (int i = 0; i < 200; ++i) {
    auto client = std::make_unique<BlockingClient>();
    ASSERT_TRUE(client->connect("127.0.0.1", server->port));
    ASSERT_TRUE(client->send_bytes(header));
    holders.push_back(std::move(client));
  }
  EXPECT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  EXPECT_FALSE(server->process->wait_exit(milliseconds(100)).has_value()) << "the server died";
  const long rss = testing::resident_kib(server->process->pid());
  std::printf("200 connections holding a 64 MiB header each: server RSS %ld KiB\n", rss);
}

// Out of descriptors: accept() fails with EMFILE over and over; the log says
// so at most once a second, and the server recovers as soon as descriptors
// are free again.
TEST(ServerAbuseTest, DescriptorExhaustionLogsOnceASecondAndRecovers) {
  TemporaryFile log;
  auto server = testing::start_server_process({"--io-threads", "1", "--workers", "1"},
                                              {"/usr/bin/prlimit", "--nofile=32:32"}, log.path());
  ASSERT_TRUE(server.has_value());
  const auto flood_started = Clock::now();
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < 60; ++i) {
    auto client = std::make_unique<BlockingClient>();
    ASSERT_TRUE(client->connect("127.0.0.1", server->port));
    clients.push_back(std::move(client));
  }
  // The backlog holds the connections the server cannot accept; it retries
  // every 10 ms meanwhile.
  std::this_thread::sleep_for(milliseconds(2500));
  const double seconds =
      std::chrono::duration<double>(Clock::now() - flood_started).count();
  const auto lines = log.lines_containing("accept failed");
  ASSERT_GE(lines.size(), 1u);
  EXPECT_LE(lines.size(), static_cast<size_t>(seconds) + 2) << "the log is flooded";
  EXPECT_NE(lines.back().find("suppressed"), std::string::npos) << lines.back();

  clients.clear();  // Frees the server's descriptors (it reads their FINs).
  EXPECT_TRUE(echo_answered(server->port, 3, scaled(milliseconds(5000))));
}

// 1,000 malformed connections a second: the log stays at a few lines a
// second, says how many it held back, and every one is counted.
TEST(ServerAbuseTest, FloodOfMalformedConnectionsKeepsTheLogShortAndCountsEveryOne) {
  TemporaryFile log;
  auto server = testing::start_server_process({"--io-threads", "2", "--workers", "1"}, {},
                                              log.path());
  ASSERT_TRUE(server.has_value());
  constexpr int kBad = 2000;
  const auto started = Clock::now();
  for (int i = 0; i < kBad; ++i) {
    // Paced at 1,000 a second, so that the flood spans several windows.
    std::this_thread::sleep_until(started + std::chrono::microseconds(1000 * i));
    BlockingClient bad;
    ASSERT_TRUE(bad.connect("127.0.0.1", server->port));
    ASSERT_TRUE(bad.send_bytes("SSH-2.0-OpenSSH_9.2\r\n"));  // Neither baidu_std nor HTTP.
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // One more, past the rate window: its line reports the ones held back.
  std::this_thread::sleep_for(milliseconds(1100));
  {
    BlockingClient last;
    ASSERT_TRUE(last.connect("127.0.0.1", server->port));
    ASSERT_TRUE(last.send_bytes("SSH-2.0-OpenSSH_9.2\r\n"));
    EXPECT_TRUE(last.wait_closed(scaled(milliseconds(5000))));
  }
  ASSERT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  server->process->send_signal(SIGTERM);
  ASSERT_TRUE(server->process->wait_exit(scaled(milliseconds(10000))).has_value());

  const auto lines = log.lines_containing("closing connection from");
  std::printf("%d malformed connections in %.2f s: %zu log lines\n", kBad + 1, seconds,
              lines.size());
  EXPECT_LE(lines.size(), 3 * (static_cast<size_t>(seconds) + 3)) << "the log is flooded";
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("similar lines suppressed"), std::string::npos) << lines.back();
  const auto stopped = log.lines_containing("stopped;");
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_NE(stopped[0].find(" " + std::to_string(kBad + 1) + " rejected frames"), std::string::npos)
      << stopped[0];
}

// Decompression bombs: gzip and zlib messages of 128 MiB of zeros (about
// 125 KiB each on the wire) and a snappy header announcing 4 GiB, sent to a
// server whose max_body_bytes is 4 MiB, pipelined 8 of each on one
// connection, to the inline echo service (inflated on the I/O thread) and to
// the worker-pool prime service (on a worker). Each is answered 1003 and the
// server's resident set grows by far less than one bomb's inflated size.
TEST(ServerAbuseTest, DecompressionBombsAreRefusedWithinMaxBodyBytes) {
  auto server = testing::start_server_process(
      {"--io-threads", "1", "--workers", "2", "--max-body-bytes", "4194304"},
      {"/usr/bin/env", "MALLOC_MMAP_THRESHOLD_=131072", "MALLOC_TRIM_THRESHOLD_=131072"});
  ASSERT_TRUE(server.has_value());
  ASSERT_TRUE(echo_answered(server->port, 1, scaled(milliseconds(5000))));
  const long rss_before = testing::resident_kib(server->process->pid());
  std::string bombs[3];
  {
    const std::string zeros(128 << 20, '\0');
    ASSERT_TRUE(compress(CompressType::kGzip, zeros, bombs[0]));
    ASSERT_TRUE(compress(CompressType::kZlib, zeros, bombs[1]));
  }
  bombs[2] = std::string("\xff\xff\xff\xff\x0f\x00\x00\x00", 8);  // Announces 4 GiB - 1.
  const CompressType types[3] = {CompressType::kGzip, CompressType::kZlib, CompressType::kSnappy};
  std::string stream;
  int64_t id = 100;
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < 3; ++i) {
      for (const char* method : {"example.EchoService/Echo", "prime.PrimeService/IsPrime"}) {
        const std::string_view name(method);
        wire::RpcMeta meta;
        meta.mutable_request()->set_service_name(std::string(name.substr(0, name.find('/'))));
        meta.mutable_request()->set_method_name(std::string(name.substr(name.find('/') + 1)));
        meta.set_correlation_id(++id);
        meta.set_compress_type(static_cast<int32_t>(types[i]));
        GatherBuffer out;
        ASSERT_EQ(encode_frame(meta, std::string_view(bombs[i]), std::string(),
                               kDefaultMaxBodyBytes, out),
                  EncodeStatus::kOk);
        stream += testing::flatten(out);
      }
    }
  }
  const int bomb_count = static_cast<int>(id - 100);
  BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server->port));
  ASSERT_TRUE(client.send_bytes(stream));
  long rss_peak = rss_before;
  std::vector<int> answers(static_cast<size_t>(bomb_count), 0);
  for (int i = 0; i < bomb_count; ++i) {
    ReceivedFrame answer;
    ASSERT_EQ(client.receive(answer, scaled(milliseconds(10000))), ReceiveStatus::kFrame);
    rss_peak = std::max(rss_peak, testing::resident_kib(server->process->pid()));
    EXPECT_EQ(answer.error_code(), 1003);
    EXPECT_NE(answer.error_text().find("decompresses to more than 4194304 bytes"),
              std::string::npos)
        << answer.error_text();
    const int64_t index = answer.correlation_id() - 101;
    ASSERT_TRUE(index >= 0 && index < bomb_count) << answer.correlation_id();
    ++answers[static_cast<size_t>(index)];
  }
  for (int i = 0; i < bomb_count; ++i)
    EXPECT_EQ(answers[static_cast<size_t>(i)], 1) << "bomb " << i;
  std::printf("%d bombs (each 128 MiB or 4 GiB inflated): server RSS %ld KiB, peak %ld KiB\n",
              bomb_count, rss_before, rss_peak);
  if (kMemoryIsMeasurable) {
    EXPECT_LT(rss_peak - rss_before, 64 * 1024);  // KiB; one bomb inflated is 128 MiB.
  }
  EXPECT_TRUE(echo_answered(server->port, 2, scaled(milliseconds(5000))));
}

}  // namespace
}  // namespace percore
