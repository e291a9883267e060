// Streams between a percore client and a percore server over loopback:
// messages both ways in order, flow control, the end of a stream from each
// side (CLOSE, RST, a broken connection, Stop), each end told exactly once.
// The echo service of the examples (which accepts a stream attached to
// example.EchoService.Echo and echoes it) runs inline and on worker threads;
// ScriptedStreamService does what the request's message says.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "examples/echo_service.h"
#include "examples/prime_service.h"
#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/server_io/server.h>
#include <percore/server_io/server_controller.h>
#include "test/support/eventually.h"
#include "test/support/find_primes_stream.h"
#include "test/support/recording_stream_handler.h"
#include "test/support/sanitizers.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;

using testing::kSanitized;
using testing::RecordingHandler;

// example.EchoService.Echo, doing what request.message() says with the
// attached stream:
//   "refuse"   does not accept it;
//   "fail"     accepts it, then fails the call (2001);
//   "send N"   accepts it, writes N messages "0".."N-1", then closes it;
//   "hold"     accepts it and keeps it (the test closes or breaks it).
// Every accepted stream's server end is recorded in `ends`.
class ScriptedStreamService : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    auto* server_controller = static_cast<ServerController*>(controller);
    const std::string& script = request->message();
    response->set_message(script);
    if (script == "refuse") {
      done->Run();
      return;
    }
    auto handler = std::make_shared<RecordingHandler>();
    StreamOptions options;
    options.handler = handler;
    std::shared_ptr<Stream> stream;
    if (!server_controller->AcceptStream(options, &stream)) {
      server_controller->SetFailed("no stream to accept");
      done->Run();
      return;
    }
    {
      std::lock_guard lock(mutex_);
      handlers_.push_back(handler);
      streams_.push_back(stream);
    }
    if (script == "fail") {
      server_controller->SetFailed("failing after accepting");
    } else if (script.rfind("send ", 0) == 0) {
      const int count = std::atoi(script.c_str() + 5);
      for (int i = 0; i < count; ++i)
        EXPECT_EQ(stream->Write(std::to_string(i)), StreamWriteStatus::kOk);
      stream->Close();
    }
    done->Run();
  }

  std::shared_ptr<RecordingHandler> handler(size_t index) {
    std::lock_guard lock(mutex_);
    return index < handlers_.size() ? handlers_[index] : nullptr;
  }
  std::shared_ptr<Stream> stream(size_t index) {
    std::lock_guard lock(mutex_);
    return index < streams_.size() ? streams_[index] : nullptr;
  }
  // Waits (bounded) until the index-th accepted stream's handler was told
  // of its end.
  bool wait_end(size_t index) {
    return testing::eventually(
        [&] { return handler(index) != nullptr && handler(index)->end().has_value(); },
        std::chrono::milliseconds(5000));
  }

 private:
  std::mutex mutex_;
  std::vector<std::shared_ptr<RecordingHandler>> handlers_;
  std::vector<std::shared_ptr<Stream>> streams_;
};

// VmRSS of this process, in bytes.
size_t resident_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0)
      return static_cast<size_t>(std::atoll(line.c_str() + 6)) * 1024;
  }
  return 0;
}

// Shuts down (both ways) this process's client sockets connected to
// `port`: the connection breaks under both ends, as a network fault would.
int break_connections_to(uint16_t port) {
  int broken = 0;
  DIR* fds = ::opendir("/proc/self/fd");
  if (fds == nullptr)
    return 0;
  std::vector<int> candidates;
  while (dirent* entry = ::readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    if (fd > 2)
      candidates.push_back(fd);
  }
  ::closedir(fds);
  for (const int fd : candidates) {
    sockaddr_in peer{};
    sockaddr_in local{};
    socklen_t peer_size = sizeof(peer);
    socklen_t local_size = sizeof(local);
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) != 0 ||
        peer.sin_family != AF_INET) {
      continue;
    }
    if (ntohs(peer.sin_port) == port && ntohs(local.sin_port) != port) {
      ::shutdown(fd, SHUT_RDWR);
      ++broken;
    }
  }
  return broken;
}

class StreamTest : public ::testing::TestWithParam<ExecutionMode> {
 protected:
  void start(google::protobuf::Service* service, ServerOptions options = {}) {
    options.io_threads = 2;
    options.workers = 2;
    options.process_workers = 2;
    server_ = std::make_unique<Server>(options);
    ServiceOptions service_options;
    service_options.default_mode = GetParam();
    ASSERT_TRUE(server_->AddService(service, service_options));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
    ChannelOptions channel_options;
    channel_options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(10000)).count());
    channel_options.private_groups = ClientRuntimeOptions{.groups = 1};
    channel_ = std::make_unique<Channel>();
    ASSERT_TRUE(channel_->Init("127.0.0.1:" + std::to_string(server_->port()), channel_options,
                               &error))
        << error;
  }

  void TearDown() override {
    channel_.reset();
    if (server_ != nullptr)
      server_->Stop();
    server_.reset();
  }

  // Calls Echo with `message` and a stream; returns the client's end.
  std::shared_ptr<Stream> open(const std::string& message,
                               const std::shared_ptr<RecordingHandler>& handler,
                               Controller& controller, uint64_t max_buf_size = 2u << 20) {
    StreamOptions options;
    options.handler = handler;
    options.max_buf_size = max_buf_size;
    std::shared_ptr<Stream> stream = controller.open_stream(options);
    example::EchoService_Stub stub(channel_.get());
    example::EchoRequest request;
    request.set_message(message);
    example::EchoResponse response;
    stub.Echo(&controller, &request, &response, nullptr);
    return stream;
  }

  // The server's end of a stream is in this process: with kProcessPool it
  // is in a worker process, and only what the client sees can be checked.
  bool server_end_here() const { return GetParam() != ExecutionMode::kProcessPool; }

  std::unique_ptr<Server> server_;
  std::unique_ptr<Channel> channel_;
};

TEST_P(StreamTest, MessagesAreEchoedInOrderAndACloseEndsBothSidesOnce) {
  examples::EchoServiceImpl echo;
  start(&echo);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hello", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_FALSE(stream->end_reason().has_value());
  constexpr int kMessages = 1000;
  for (int i = 0; i < kMessages; ++i) {
    std::string message = "message " + std::to_string(i);
    while (stream->Write(std::move(message)) == StreamWriteStatus::kFull)
      ASSERT_TRUE(stream->WaitWritable(testing::scaled(milliseconds(5000))));
  }
  ASSERT_TRUE(handler->wait(milliseconds(10000), [&] { return handler->count_ == kMessages; }));
  const std::vector<std::string> messages = handler->messages();
  for (int i = 0; i < kMessages; ++i)
    ASSERT_EQ(messages[i], "message " + std::to_string(i));
  stream->Close();
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByUs);
  EXPECT_EQ(stream->Write("late"), StreamWriteStatus::kEnded);
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(handler->ends(), 1);
  EXPECT_EQ(server_->stats().streams_accepted, 1u);
}

TEST_P(StreamTest, AHundredMegabytesBothWaysStayWithinTheWindows) {
  examples::EchoServiceImpl echo;
  start(&echo);
  auto handler = std::make_shared<RecordingHandler>();
  handler->keep_messages(false);
  Controller controller;
  constexpr uint64_t kWindow = 1u << 20;
  std::shared_ptr<Stream> stream = open("bulk", handler, controller, kWindow);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  constexpr size_t kMessageBytes = 64 * 1024;
  constexpr uint64_t kTotal = 100ull << 20;
  const size_t rss_before = resident_bytes();
  size_t rss_peak = rss_before;
  uint64_t written = 0;
  const std::string payload(kMessageBytes, 'x');
  while (written < kTotal) {
    std::string message = payload;
    StreamWriteStatus status;
    while ((status = stream->Write(std::move(message))) == StreamWriteStatus::kFull)
      ASSERT_TRUE(stream->WaitWritable(testing::scaled(milliseconds(10000))));
    ASSERT_EQ(status, StreamWriteStatus::kOk);
    written += kMessageBytes;
    // What this side has written and the peer not yet consumed stays
    // within the window plus one message.
    ASSERT_LE(stream->bytes_written() - stream->bytes_acknowledged(), kWindow + kMessageBytes);
    if ((written / kMessageBytes) % 64 == 0)
      rss_peak = std::max(rss_peak, resident_bytes());
  }
  ASSERT_TRUE(handler->wait(milliseconds(60000), [&] { return handler->bytes_ == kTotal; }));
  EXPECT_EQ(stream->bytes_received(), kTotal);
  stream->Close();
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByUs);
  if (!kSanitized) {
    // Client and server share this process: two windows of 1 MiB and 2 MiB,
    // socket and read buffers. A stream that ignored its window would hold
    // most of the 100 MB.
    EXPECT_LT(rss_peak - rss_before, size_t{48} << 20)
        << "RSS grew by " << ((rss_peak - rss_before) >> 20) << " MiB";
  }
}

TEST_P(StreamTest, TheServerClosesAfterItsMessages) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("send 100", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_TRUE(handler->wait_end());
  // Every message written before the CLOSE arrives before the end.
  const std::vector<std::string> messages = handler->messages();
  ASSERT_EQ(messages.size(), 100u);
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(messages[i], std::to_string(i));
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(handler->ends(), 1);
  // One CLOSE only: a second would be answered RST by the client, to a
  // stream the server no longer knows.
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(server_->stats().stream_frames_for_unknown_streams, 0u);
  if (!server_end_here())
    return;
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kClosedByUs);
  EXPECT_EQ(service.handler(0)->ends(), 1);
}

TEST_P(StreamTest, TheClientClosesAndTheServerIsToldOnce) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hold", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_EQ(stream->Write("one"), StreamWriteStatus::kOk);
  ASSERT_EQ(stream->Write("two"), StreamWriteStatus::kOk);
  stream->Close();
  if (!server_end_here()) {
    ASSERT_TRUE(handler->wait_end());
    EXPECT_EQ(handler->end(), StreamEndReason::kClosedByUs);
    GTEST_SKIP() << "the server's end is in a worker process (see ProcessPoolTest)";
  }
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(service.handler(0)->messages(), (std::vector<std::string>{"one", "two"}));
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByUs);
  // The server's end is gone: writing to it says so.
  EXPECT_EQ(service.stream(0)->Write("late"), StreamWriteStatus::kEnded);
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(handler->ends(), 1);
  EXPECT_EQ(service.handler(0)->ends(), 1);
}

// The client's idle timeout: nothing arrives, so the client closes.
TEST_P(StreamTest, AClientStreamIdleForItsTimeoutClosesOnce) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  StreamOptions options;
  options.handler = handler;
  options.idle_timeout_ms = 300;
  std::shared_ptr<Stream> stream = controller.open_stream(options);
  example::EchoService_Stub stub(channel_.get());
  example::EchoRequest request;
  request.set_message("hold");
  example::EchoResponse response;
  const auto opened = std::chrono::steady_clock::now();
  stub.Echo(&controller, &request, &response, nullptr);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_TRUE(handler->wait_end());
  const auto took = std::chrono::steady_clock::now() - opened;
  EXPECT_EQ(handler->end(), StreamEndReason::kIdleTimeout);
  EXPECT_GE(took, milliseconds(300));
  EXPECT_EQ(stream->Write("late"), StreamWriteStatus::kEnded);
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(handler->ends(), 1);
  if (!server_end_here())
    return;
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(service.handler(0)->ends(), 1);
}

TEST_P(StreamTest, AStreamTheHandlerDoesNotAcceptEndsNotAccepted) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("refuse", handler, controller);
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kNotAccepted);
  EXPECT_EQ(stream->Write("x"), StreamWriteStatus::kEnded);
  EXPECT_EQ(handler->ends(), 1);
}

TEST_P(StreamTest, ACallThatFailsAfterAcceptingEndsBothEnds) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("fail", handler, controller);
  EXPECT_EQ(controller.ErrorCode(), 2001);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kNotAccepted);
  if (!server_end_here())
    return;
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kNotAccepted);
}

TEST_P(StreamTest, AServiceTheServerLacksFailsTheCallAndEndsTheStream) {
  examples::EchoServiceImpl echo;
  start(&echo);
  // prime.PrimeService is not on this server: answered 1001 inside the
  // stream's first DATA frame (as brpc answers), from no stream (-1).
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  StreamOptions options;
  options.handler = handler;
  std::shared_ptr<Stream> stream = controller.open_stream(options);
  prime::PrimeService_Stub stub(channel_.get());
  prime::IsPrimeRequest request;
  request.set_number(7);
  prime::IsPrimeResponse response;
  stub.IsPrime(&controller, &request, &response, nullptr);
  EXPECT_EQ(controller.ErrorCode(), 1001) << controller.ErrorText();
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kNotAccepted);
  EXPECT_EQ(handler->ends(), 1);
  // The connection is fine: the next call works.
  auto next = std::make_shared<RecordingHandler>();
  Controller next_controller;
  std::shared_ptr<Stream> next_stream = open("again", next, next_controller);
  EXPECT_FALSE(next_controller.Failed()) << next_controller.ErrorText();
  EXPECT_FALSE(next_stream->end_reason().has_value());
  next_stream->Close();
  ASSERT_TRUE(next->wait_end());
}

TEST_P(StreamTest, ABrokenConnectionEndsBothEndsOnce) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  if (!server_end_here())
    GTEST_SKIP() << "the server's end is in a worker process (see ProcessPoolTest)";
  std::shared_ptr<Stream> stream = open("hold", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_EQ(stream->Write("before"), StreamWriteStatus::kOk);
  ASSERT_TRUE(testing::eventually(
      [&] { return service.handler(0) != nullptr && service.handler(0)->count() == 1; },
      milliseconds(5000)));
  ASSERT_GE(break_connections_to(server_->port()), 1);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kConnectionBroken);
  ASSERT_TRUE(testing::eventually([&] { return service.handler(0)->end().has_value(); },
                                  milliseconds(5000)));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kConnectionBroken);
  EXPECT_EQ(stream->Write("after"), StreamWriteStatus::kEnded);
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(handler->ends(), 1);
  EXPECT_EQ(service.handler(0)->ends(), 1);
  // The channel goes on with a new connection.
  auto next = std::make_shared<RecordingHandler>();
  Controller next_controller;
  std::shared_ptr<Stream> next_stream = open("send 3", next, next_controller);
  EXPECT_FALSE(next_controller.Failed()) << next_controller.ErrorText();
  ASSERT_TRUE(next->wait_end());
  EXPECT_EQ(next->messages().size(), 3u);
}

TEST_P(StreamTest, StopClosesTheServersStreams) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hold", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  server_->Stop();
  ASSERT_TRUE(handler->wait_end());
  // A CLOSE went out before the connection closed.
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(handler->ends(), 1);
  if (!server_end_here())
    return;
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kClosedByUs);
  EXPECT_EQ(service.handler(0)->ends(), 1);
}

TEST_P(StreamTest, WritesBeforeTheResponseWaitAndGoInOrder) {
  ScriptedStreamService service;
  start(&service);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  StreamOptions options;
  options.handler = handler;
  std::shared_ptr<Stream> stream = controller.open_stream(options);
  ASSERT_EQ(stream->Write("early 1"), StreamWriteStatus::kOk);
  ASSERT_EQ(stream->Write("early 2"), StreamWriteStatus::kOk);
  example::EchoService_Stub stub(channel_.get());
  example::EchoRequest request;
  request.set_message("hold");
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_EQ(stream->Write("late 3"), StreamWriteStatus::kOk);
  if (!server_end_here()) {
    stream->Close();
    ASSERT_TRUE(handler->wait_end());
    GTEST_SKIP() << "the server's end is in a worker process (see ProcessPoolTest)";
  }
  ASSERT_TRUE(testing::eventually(
      [&] { return service.handler(0) != nullptr && service.handler(0)->count() == 3; },
      milliseconds(5000)));
  EXPECT_EQ(service.handler(0)->messages(),
            (std::vector<std::string>{"early 1", "early 2", "late 3"}));
  stream->Close();
  ASSERT_TRUE(handler->wait_end());
}

TEST_P(StreamTest, StreamsPerConnectionAreBounded) {
  ScriptedStreamService service;
  ServerOptions options;
  options.max_streams_per_connection = 2;
  start(&service, options);
  if (!server_end_here())
    GTEST_SKIP() << "the server's end is in a worker process (see ProcessPoolTest)";
  std::vector<std::shared_ptr<RecordingHandler>> handlers;
  std::vector<std::shared_ptr<Stream>> streams;
  for (int i = 0; i < 3; ++i) {
    handlers.push_back(std::make_shared<RecordingHandler>());
    Controller controller;
    streams.push_back(open("hold", handlers.back(), controller));
    // The third is refused by AcceptStream: the scripted handler fails it.
    EXPECT_EQ(controller.Failed(), i == 2) << i << " " << controller.ErrorText();
  }
  EXPECT_FALSE(streams[0]->end_reason().has_value());
  EXPECT_FALSE(streams[1]->end_reason().has_value());
  ASSERT_TRUE(handlers[2]->wait_end());
  EXPECT_EQ(handlers[2]->end(), StreamEndReason::kNotAccepted);
  // Closing one makes room again.
  streams[0]->Close();
  ASSERT_TRUE(handlers[0]->wait_end());
  ASSERT_TRUE(service.wait_end(0));
  auto next = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hold", next, controller);
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_FALSE(stream->end_reason().has_value());
}

TEST_P(StreamTest, FindPrimesStreamsThePrimesOfEachChunkAndASummary) {
  // The compute scenario: chunks of numbers one way, the primes of each
  // chunk back as they are found, then a summary and the server's CLOSE.
  examples::PrimeServiceImpl primes;
  start(&primes);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = testing::open_find_primes(channel_.get(), handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  constexpr uint64_t kTo = 10000;
  constexpr uint64_t kChunk = 100;
  for (uint64_t first = 1; first <= kTo; first += kChunk) {
    prime::PrimeChunk chunk;
    for (uint64_t number = first; number < first + kChunk; ++number)
      chunk.add_numbers(number);
    chunk.set_last(first + kChunk > kTo);
    std::string bytes = chunk.SerializeAsString();
    while (stream->Write(std::move(bytes)) == StreamWriteStatus::kFull)
      ASSERT_TRUE(stream->WaitWritable(testing::scaled(milliseconds(5000))));
  }
  ASSERT_TRUE(handler->wait_end(milliseconds(30000)));
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  const std::vector<std::string> messages = handler->messages();
  ASSERT_EQ(messages.size(), kTo / kChunk + 1);
  uint64_t primes_seen = 0;
  for (size_t i = 0; i + 1 < messages.size(); ++i) {
    prime::PrimeStreamReply reply;
    ASSERT_TRUE(reply.ParseFromString(messages[i]));
    ASSERT_TRUE(reply.has_found());
    EXPECT_EQ(reply.found().chunk(), i);
    for (const uint64_t prime : reply.found().primes()) {
      EXPECT_TRUE(examples::is_prime(prime));
      EXPECT_GE(prime, i * kChunk + 1);
      EXPECT_LT(prime, (i + 1) * kChunk + 1);
    }
    primes_seen += static_cast<uint64_t>(reply.found().primes_size());
  }
  prime::PrimeStreamReply last;
  ASSERT_TRUE(last.ParseFromString(messages.back()));
  ASSERT_TRUE(last.has_summary());
  EXPECT_EQ(last.summary().error(), "");
  EXPECT_EQ(last.summary().primes_found(), 1229u);  // pi(10000)
  EXPECT_EQ(primes_seen, 1229u);
  EXPECT_EQ(last.summary().numbers_checked(), kTo);
  EXPECT_EQ(last.summary().chunks(), kTo / kChunk);
}

TEST_P(StreamTest, FindPrimesWithoutAStreamIsABadRequest) {
  examples::PrimeServiceImpl primes;
  start(&primes);
  Controller controller;
  prime::PrimeService_Stub stub(channel_.get());
  prime::FindPrimesRequest request;
  prime::FindPrimesResponse response;
  stub.FindPrimes(&controller, &request, &response, nullptr);
  EXPECT_EQ(controller.ErrorCode(), 1003) << controller.ErrorText();
}

TEST_P(StreamTest, AMessageLargerThanTheServerTakesEndsTheStreamWithAReset) {
  ScriptedStreamService service;
  ServerOptions options;
  options.max_body_bytes = 4096;
  start(&service, options);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hold", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_EQ(stream->Write("small"), StreamWriteStatus::kOk);
  // The client's own limit is the default 64 MiB: this goes out. Its frame
  // fits the server's max_body_bytes (4096) but the message is past the
  // server's largest message (4096 - 40 bytes): the stream, not the
  // connection, is refused.
  ASSERT_EQ(stream->Write(std::string(4070, 'L')), StreamWriteStatus::kOk);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kResetByPeer);
  if (!server_end_here())
    return;
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kMessageTooLarge);
  EXPECT_EQ(service.handler(0)->messages(), (std::vector<std::string>{"small"}));
  EXPECT_EQ(service.stream(0)->max_message_bytes(), 4096u - 40u);
  EXPECT_EQ(service.stream(0)->Write(std::string(4097, 'x')), StreamWriteStatus::kTooLarge);
}

TEST_P(StreamTest, AFrameLargerThanTheServerTakesClosesTheConnectionAfterDeliveringWhatCameBefore) {
  ScriptedStreamService service;
  ServerOptions options;
  options.max_body_bytes = 4096;
  start(&service, options);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("hold", handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  ASSERT_EQ(stream->Write("small"), StreamWriteStatus::kOk);
  // A frame past max_body_bytes: the connection is rejected, as for any
  // frame; what came before it is still delivered, and the server's stream
  // ends with a CLOSE to the client.
  ASSERT_EQ(stream->Write(std::string(10000, 'L')), StreamWriteStatus::kOk);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  if (!server_end_here())
    return;
  ASSERT_TRUE(service.wait_end(0));
  EXPECT_EQ(service.handler(0)->messages(), (std::vector<std::string>{"small"}));
  EXPECT_EQ(service.handler(0)->end(), StreamEndReason::kClosedByUs);
}

TEST_P(StreamTest, FindPrimesRefusesAChunkPastItsQueueBoundWithAnErrorSummary) {
  examples::PrimeServiceImpl primes;
  start(&primes);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = testing::open_find_primes(channel_.get(), handler, controller);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  prime::PrimeChunk chunk;
  // Nine-byte varints: about 9 MB, past the 8 MiB of chunks waiting (and
  // never computed: the chunk is refused whole).
  for (uint64_t i = 0; i < 1000000; ++i)
    chunk.add_numbers((uint64_t{1} << 62) + 2 * i + 1);
  chunk.set_last(true);
  std::string bytes = chunk.SerializeAsString();
  ASSERT_GT(bytes.size(), examples::PrimeServiceImpl::kMaxQueuedChunkBytes);
  ASSERT_EQ(stream->Write(std::move(bytes)), StreamWriteStatus::kOk);
  ASSERT_TRUE(handler->wait_end(milliseconds(10000)));
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  const std::vector<std::string> messages = handler->messages();
  ASSERT_EQ(messages.size(), 1u);
  prime::PrimeStreamReply reply;
  ASSERT_TRUE(reply.ParseFromString(messages[0]));
  ASSERT_TRUE(reply.has_summary());
  EXPECT_NE(reply.summary().error().find("bytes of chunks waiting"), std::string::npos)
      << reply.summary().error();
}

TEST_P(StreamTest, WaitWritableWakesOnFeedbackWithoutAFullWrite) {
  examples::EchoServiceImpl echo;
  start(&echo);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream = open("small window", handler, controller, /*max_buf_size=*/1000);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  // One message fills the window (accepted while it was not full); the
  // writer waits without having been told kFull.
  ASSERT_EQ(stream->Write(std::string(5000, 'w')), StreamWriteStatus::kOk);
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(stream->WaitWritable(testing::scaled(milliseconds(5000))));
  // The server's FEEDBACK woke it, not the timeout.
  EXPECT_LT(std::chrono::steady_clock::now() - start, testing::scaled(milliseconds(2000)));
  stream->Close();
  ASSERT_TRUE(handler->wait_end());
}

TEST(StreamControllerTest, AStreamWhoseCallIsNeverMadeEndsNotAccepted) {
  auto replaced = std::make_shared<RecordingHandler>();
  auto abandoned = std::make_shared<RecordingHandler>();
  std::shared_ptr<Stream> first;
  std::shared_ptr<Stream> second;
  {
    Controller controller;
    StreamOptions options;
    options.handler = replaced;
    first = controller.open_stream(options);
    options.handler = abandoned;
    second = controller.open_stream(options);
    // Replaced by the second open_stream: ended at once.
    EXPECT_EQ(replaced->end(), StreamEndReason::kNotAccepted);
    EXPECT_FALSE(abandoned->end().has_value());
    EXPECT_EQ(second->Write("waits for a call that never comes"), StreamWriteStatus::kOk);
  }
  EXPECT_EQ(abandoned->end(), StreamEndReason::kNotAccepted);
  EXPECT_EQ(second->Write("x"), StreamWriteStatus::kEnded);
  EXPECT_EQ(replaced->ends(), 1);
  EXPECT_EQ(abandoned->ends(), 1);
}

INSTANTIATE_TEST_SUITE_P(Modes, StreamTest,
                         ::testing::Values(ExecutionMode::kInline, ExecutionMode::kWorkerPool,
                                           ExecutionMode::kProcessPool),
                         [](const ::testing::TestParamInfo<ExecutionMode>& info) {
                           return info.param == ExecutionMode::kInline       ? "Inline"
                                  : info.param == ExecutionMode::kWorkerPool ? "WorkerPool"
                                                                             : "ProcessPool";
                         });

}  // namespace
}  // namespace percore
