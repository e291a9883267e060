// Every way a server connection ends, driven by the blocking raw-socket
// client over loopback: whatever starts the close (the peer's half-close, a
// rejected frame, a timeout, Stop), every request read before it is answered
// exactly once and the answers reach the peer; only a reset drops them.
// Also the limits that bound what a peer can make the server hold.

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include "test/integration/server_fixture.h"
#include "test/support/eventually.h"
#include "test/support/stderr_capture.h"

namespace percore {
namespace {

// The maximum of /proc/sys/net/ipv4/<name> ("min default max"), in bytes;
// 32 MiB when unreadable.
size_t tcp_buffer_max(const std::string& name) {
  std::ifstream file("/proc/sys/net/ipv4/" + name);
  size_t low = 0;
  size_t initial = 0;
  size_t high = 0;
  if (file >> low >> initial >> high)
    return high;
  return size_t{32} << 20;
}

using std::chrono::milliseconds;
using testing::BlockingClient;
using testing::eventually;
using testing::kReceiveTimeout;
using testing::ReceivedFrame;
using testing::RequestParts;
using testing::ReceiveStatus;
using testing::scaled;
using testing::ServerTest;

// Reads `count` answers; fails the test on a timeout or a duplicate id.
std::map<int64_t, ReceivedFrame> receive_answers(BlockingClient& client, int count) {
  std::map<int64_t, ReceivedFrame> answers;
  for (int i = 0; i < count; ++i) {
    ReceivedFrame frame;
    const ReceiveStatus status = client.receive(frame, kReceiveTimeout);
    EXPECT_EQ(status, ReceiveStatus::kFrame) << "answer " << i << " of " << count;
    if (status != ReceiveStatus::kFrame)
      break;
    EXPECT_TRUE(frame.meta.has_response());
    EXPECT_EQ(answers.count(frame.correlation_id()), 0u)
        << "answered twice: " << frame.correlation_id();
    answers[frame.correlation_id()] = frame;
  }
  return answers;
}

// After its answers, the connection ends with the server's FIN: no further
// frame, end of stream.
void expect_closed_without_more_answers(BlockingClient& client) {
  ReceivedFrame extra;
  EXPECT_EQ(client.receive(extra, kReceiveTimeout), ReceiveStatus::kClosed)
      << "unexpected frame " << extra.correlation_id();
}

class ServerCloseTest : public ServerTest {};

// The input: IsPrime on the worker pool, id 12, then
// shutdown(SHUT_WR). End of stream means "no more requests", not "gone".
TEST_F(ServerCloseTest, HalfCloseAfterAWorkerPoolRequestIsAnsweredThenClosed) {
  start();
  auto client = connect();
  prime::IsPrimeRequest request;
  request.set_number(1000000000000037ull);
  ASSERT_TRUE(client->send_request(prime_request(12, request)));
  ASSERT_TRUE(client->shutdown_write());
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 12);
  EXPECT_EQ(answer.error_code(), 0) << answer.error_text();
  prime::IsPrimeResponse response;
  ASSERT_TRUE(response.ParseFromString(answer.message));
  EXPECT_TRUE(response.is_prime());
  expect_closed_without_more_answers(*client);
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }, milliseconds(2000)));
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.closes_by_reason.at(CloseReason::kPeerClosed), 1u);
  EXPECT_EQ(stats.replies_dropped, 0u);
  EXPECT_EQ(stats.closes_without_flush, 0u);
}

TEST_F(ServerCloseTest, HalfCloseAfterAnInlineRequestIsAnsweredThenClosed) {
  start();
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(echo_frame(5, "last words")));
  ASSERT_TRUE(client->shutdown_write());
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 5);
  example::EchoResponse response;
  ASSERT_TRUE(response.ParseFromString(answer.message));
  EXPECT_EQ(response.message(), "last words");
  expect_closed_without_more_answers(*client);
}

// Requests past the in-flight limit are still buffered when the FIN is read:
// they are dispatched as the first ones finish, and all are answered.
TEST_F(ServerCloseTest, HalfCloseAnswersRequestsBufferedPastTheInflightLimit) {
  ServerOptions options;
  options.workers = 2;
  options.max_inflight_per_connection = 2;
  start(options);
  auto client = connect();
  std::string batch;
  for (int id = 100; id < 108; ++id)
    batch += sleep_frame(id, 20);
  batch += echo_frame(108, "after the sleeps");
  ASSERT_TRUE(client->send_bytes(batch));
  ASSERT_TRUE(client->shutdown_write());
  const auto answers = receive_answers(*client, 9);
  ASSERT_EQ(answers.size(), 9u);
  for (const auto& [id, frame] : answers) {
    EXPECT_GE(id, 100);
    EXPECT_LE(id, 108);
    EXPECT_EQ(frame.error_code(), 0) << id << ": " << frame.error_text();
  }
  expect_closed_without_more_answers(*client);
  EXPECT_LE(test_service_.max_concurrent_sleeps(), 2);
}

// A peer that half-closes in the middle of a frame: the complete requests
// before it are answered, the fragment is counted.
TEST_F(ServerCloseTest, HalfCloseInTheMiddleOfAFrameAnswersTheCompleteOnes) {
  start();
  auto client = connect();
  const std::string second = echo_frame(2, "cut short");
  ASSERT_TRUE(client->send_bytes(echo_frame(1, "whole") + second.substr(0, second.size() / 2)));
  ASSERT_TRUE(client->shutdown_write());
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 1);
  expect_closed_without_more_answers(*client);
  EXPECT_TRUE(eventually([&] { return server_->stats().incomplete_frames == 1; }, milliseconds(2000)));
}

// Stop while a half-closed peer waits: the call finishes within the grace
// period and its answer is written before the close.
TEST_F(ServerCloseTest, StopDuringAHalfCloseStillDeliversTheAnswer) {
  start();
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(7, 200)));
  ASSERT_TRUE(client->shutdown_write());
  ASSERT_TRUE(eventually([&] { return test_service_.sleeps_started() == 1; }, milliseconds(2000)));
  auto stopping = std::async(std::launch::async, [this] { server_->Stop(milliseconds(2000)); });
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 7);
  EXPECT_EQ(answer.error_code(), 0) << answer.error_text();
  expect_closed_without_more_answers(*client);
  stopping.get();
}

// The same with a grace period shorter than the handler: answered 2003.
TEST_F(ServerCloseTest, StopDuringAHalfClosePastTheGraceAnswers2003) {
  start();
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(8, 1000)));
  ASSERT_TRUE(client->shutdown_write());
  ASSERT_TRUE(eventually([&] { return test_service_.sleeps_started() == 1; }, milliseconds(2000)));
  auto stopping = std::async(std::launch::async, [this] { server_->Stop(milliseconds(50)); });
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 8);
  EXPECT_EQ(answer.error_code(), 2003);
  expect_closed_without_more_answers(*client);
  stopping.get();
}

// Stop with requests still buffered behind the in-flight limit: each of them
// is answered 2003, none is dropped.
TEST_F(ServerCloseTest, StopAnswersRequestsBufferedPastTheInflightLimit) {
  ServerOptions options;
  options.max_inflight_per_connection = 1;
  start(options);
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 300) + sleep_frame(2, 300) + sleep_frame(3, 300) +
                                 echo_frame(4, "buffered")));
  ASSERT_TRUE(eventually([&] { return test_service_.sleeps_started() == 1; }, milliseconds(2000)));
  server_->Stop(milliseconds(50));
  const auto answers = receive_answers(*client, 4);
  ASSERT_EQ(answers.size(), 4u);
  for (const auto& [id, frame] : answers)
    EXPECT_EQ(frame.error_code(), 2003) << id;
  expect_closed_without_more_answers(*client);
  EXPECT_EQ(test_service_.sleeps_started(), 1);
}

// A malformed frame after requests in the same write: the requests before it
// are answered (inline and worker pool), then the connection closes.
TEST_F(ServerCloseTest, RejectedFrameClosesOnlyAfterAnsweringWhatCameBefore) {
  start();
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(echo_frame(1, "one") + sleep_frame(2, 100) + echo_frame(3, "three") +
                                 "GET / HTTP/1.1\r\nHost: x\r\n\r\n" + echo_frame(4, "never")));
  const auto answers = receive_answers(*client, 3);
  ASSERT_EQ(answers.size(), 3u);
  EXPECT_EQ(answers.at(1).error_code(), 0);
  EXPECT_EQ(answers.at(2).error_code(), 0);
  EXPECT_EQ(answers.at(3).error_code(), 0);
  expect_closed_without_more_answers(*client);
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.rejected_frames.at(DecodeStatus::kBadMagic), 1u);
  EXPECT_TRUE(eventually(
      [&] { return server_->stats().closes_by_reason.count(CloseReason::kRejectedFrame) == 1; },
      milliseconds(2000)));
}

TEST_F(ServerCloseTest, OversizedFrameClosesOnlyAfterAnsweringWhatCameBefore) {
  ServerOptions options;
  options.max_body_bytes = 8192;
  start(options);
  auto client = connect();
  const std::string oversized_header =
      std::string("PRPC") + std::string("\x00\x01\x00\x00", 4) + std::string("\x00\x00\x00\x10", 4);
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 100) + oversized_header));
  const auto answers = receive_answers(*client, 1);
  ASSERT_EQ(answers.count(1), 1u);
  EXPECT_EQ(answers.at(1).error_code(), 0);
  expect_closed_without_more_answers(*client);
  EXPECT_EQ(server_->stats().rejected_frames.at(DecodeStatus::kBodyTooLarge), 1u);
}

TEST_F(ServerCloseTest, ResponseFrameSentToTheServerClosesAfterAnsweringWhatCameBefore) {
  start();
  auto client = connect();
  wire::RpcMeta meta;
  meta.set_correlation_id(99);
  meta.mutable_response()->set_error_code(0);
  const std::string meta_bytes = meta.SerializeAsString();
  std::string response_frame = "PRPC";
  for (int i = 0; i < 2; ++i) {
    const auto size = static_cast<uint32_t>(meta_bytes.size());
    for (int shift = 24; shift >= 0; shift -= 8)
      response_frame.push_back(static_cast<char>(size >> shift));
  }
  response_frame += meta_bytes;
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 50) + response_frame));
  const auto answers = receive_answers(*client, 1);
  ASSERT_EQ(answers.count(1), 1u);
  EXPECT_EQ(answers.at(1).error_code(), 0);
  expect_closed_without_more_answers(*client);
  EXPECT_EQ(server_->stats().rejected_frames.at(DecodeStatus::kNeitherRequestNorResponse), 1u);
}

// Slowloris: 5 bytes of a header, then nothing. Closed after the timeout;
// a good client on another connection is served meanwhile.
TEST_F(ServerCloseTest, PartialFrameTimeoutClosesASlowSenderOnly) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 300;
  start(options);
  auto slow = connect();
  auto good = connect();
  const auto sent_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(slow->send_bytes(std::string("PRPC\x00", 5)));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(good->send_bytes(echo_frame(i, "still served")));
    EXPECT_EQ(receive(*good).error_code(), 0);
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(slow->wait_closed(kReceiveTimeout));
  const auto took = std::chrono::steady_clock::now() - sent_at;
  EXPECT_GE(took, milliseconds(300));
  EXPECT_LT(took, scaled(milliseconds(2000)));
  ASSERT_TRUE(good->send_bytes(echo_frame(9, "after")));
  EXPECT_EQ(receive(*good).correlation_id(), 9);
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.closes_by_reason.at(CloseReason::kPartialFrameTimeout), 1u);
  EXPECT_EQ(stats.incomplete_frames, 1u);
}

// A partial frame after a request still running: the request is answered
// before the close.
TEST_F(ServerCloseTest, PartialFrameTimeoutAnswersTheCallsBeforeIt) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 200;
  start(options);
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 500) + std::string("PRPC\x00\x00", 6)));
  const auto answers = receive_answers(*client, 1);
  ASSERT_EQ(answers.count(1), 1u);
  EXPECT_EQ(answers.at(1).error_code(), 0);
  expect_closed_without_more_answers(*client);
}

// A slow but steady sender is not a slowloris: each byte resets the clock.
TEST_F(ServerCloseTest, PartialFrameTimeoutSparesASlowButSteadySender) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 300;
  start(options);
  auto client = connect();
  const std::string frame = echo_frame(3, "trickled");
  for (size_t i = 0; i < frame.size(); i += 4) {
    ASSERT_TRUE(client->send_bytes(frame.substr(i, 4)));
    std::this_thread::sleep_for(milliseconds(40));
  }
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 3);
  EXPECT_EQ(answer.error_code(), 0);
}

TEST_F(ServerCloseTest, IdleTimeoutClosesIdleConnectionsOnly) {
  ServerOptions options;
  options.idle_timeout_ms = 300;
  start(options);
  auto idle = connect();
  auto busy = connect();
  ASSERT_TRUE(idle->send_bytes(echo_frame(1, "once")));
  EXPECT_EQ(receive(*idle).error_code(), 0);
  const auto answered_at = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(busy->send_bytes(echo_frame(i, "busy")));
    EXPECT_EQ(receive(*busy).error_code(), 0);
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(idle->wait_closed(kReceiveTimeout));
  EXPECT_GE(std::chrono::steady_clock::now() - answered_at, milliseconds(300));
  // The busy one, 100 ms between calls, was never idle for 300 ms.
  ASSERT_TRUE(busy->send_bytes(echo_frame(42, "still open")));
  EXPECT_EQ(receive(*busy).correlation_id(), 42);
  EXPECT_EQ(server_->stats().closes_by_reason.at(CloseReason::kIdleTimeout), 1u);
}

// A connection waiting for a long handler is not idle.
TEST_F(ServerCloseTest, IdleTimeoutSparesAConnectionWithACallInFlight) {
  ServerOptions options;
  options.idle_timeout_ms = 200;
  start(options);
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 600)));
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 1);
  EXPECT_EQ(answer.error_code(), 0);
}

TEST_F(ServerCloseTest, ConnectionsPastTheLimitAreClosedAtOnce) {
  ServerOptions options;
  options.max_connections = 3;
  start(options);
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(connect());
    ASSERT_TRUE(clients.back()->send_bytes(echo_frame(i, "admitted")));
    EXPECT_EQ(receive(*clients.back()).error_code(), 0);
  }
  auto refused = connect();
  EXPECT_TRUE(refused->wait_closed(scaled(milliseconds(1000))));
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(clients[i]->send_bytes(echo_frame(10 + i, "still served")));
    EXPECT_EQ(receive(*clients[i]).correlation_id(), 10 + i);
  }
  EXPECT_EQ(server_->stats().connections_refused, 1u);
  // A slot freed is a slot for the next one.
  clients[0]->close();
  ASSERT_TRUE(eventually([&] { return server_->stats().connections_open == 2; }, milliseconds(2000)));
  auto admitted = connect();
  ASSERT_TRUE(admitted->send_bytes(echo_frame(20, "admitted later")));
  EXPECT_EQ(receive(*admitted).correlation_id(), 20);
}

// A client that pipelines and does not read: past the unwritten-bytes limit
// the server stops reading it (the client's sends stall), and once it reads,
// every request is answered exactly once, in order.
TEST_F(ServerCloseTest, UnwrittenAnswersPastTheLimitStopReadingAndLoseNothing) {
  ServerOptions options;
  options.max_body_bytes = 128 * 1024;
  options.max_unwritten_bytes_per_connection = 1 << 20;
  start(options);
  const int small_buffer = 64 * 1024;
  auto client = connect(small_buffer);
  const int fd = client->fd();
  ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small_buffer, sizeof(small_buffer));
  const std::string payload(60 * 1024, 'p');
  // Send without blocking until the server stops taking bytes for 300 ms.
  int64_t sent_requests = 0;
  size_t sent_bytes = 0;
  std::string pending;
  auto last_progress = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - last_progress < milliseconds(300) &&
         sent_bytes < (size_t{64} << 20)) {
    if (pending.empty())
      pending = echo_frame(sent_requests++, payload);
    const ssize_t written = ::send(fd, pending.data(), pending.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (written > 0) {
      pending.erase(0, static_cast<size_t>(written));
      sent_bytes += static_cast<size_t>(written);
      last_progress = std::chrono::steady_clock::now();
    } else {
      std::this_thread::sleep_for(milliseconds(5));
    }
  }
  // Stalled: the limit (1 MiB), one read of the decoder and the kernel's
  // buffers are all the client got rid of. The server's receive buffer grows
  // (autotuning) up to tcp_rmem's maximum, which differs from kernel to
  // kernel, so the bound names it rather than a fixed figure.
  const size_t kernel_buffers = tcp_buffer_max("tcp_rmem") + tcp_buffer_max("tcp_wmem") +
                                4 * static_cast<size_t>(small_buffer);
  EXPECT_LT(sent_bytes, kernel_buffers + (size_t{8} << 20));
  EXPECT_GE(server_->stats().write_backpressure_pauses, 1u);
  // Finish the last partial request (the server takes it once the answers
  // drain, so from another thread: sending and reading use the socket's two
  // directions only), then read everything.
  std::thread finisher([&] {
    EXPECT_TRUE(client->send_bytes(pending));
    EXPECT_TRUE(client->shutdown_write());
  });
  for (int64_t id = 0; id < sent_requests; ++id) {
    const ReceivedFrame frame = receive(*client);
    ASSERT_EQ(frame.correlation_id(), id);
    ASSERT_EQ(frame.error_code(), 0);
    example::EchoResponse response;
    ASSERT_TRUE(response.ParseFromString(frame.message));
    ASSERT_EQ(response.message().size(), payload.size());
  }
  finisher.join();
  expect_closed_without_more_answers(*client);
}

// A reset while answers are owed drops them (the only close that may), and
// says so in the counters.
TEST_F(ServerCloseTest, ResetByThePeerDropsOnlyWhatItOwedAndIsCounted) {
  start();
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(sleep_frame(1, 200)));
  ASSERT_TRUE(eventually([&] { return test_service_.sleeps_started() == 1; }, milliseconds(2000)));
  client->reset();
  EXPECT_TRUE(eventually(
      [&] {
        const ServerStats stats = server_->stats();
        return stats.replies_dropped == 1 && stats.connections_open == 0;
      },
      milliseconds(3000)));
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.closes_by_reason.at(CloseReason::kConnectionError), 1u);
  EXPECT_EQ(stats.closes_without_flush, 1u);
}

// A peer that half-closes and never reads answers bigger than the socket
// buffers: the close waits close_linger_ms for it, then resets.
TEST_F(ServerCloseTest, LingerBoundsTheFlushForAPeerThatDoesNotRead) {
  ServerOptions options;
  options.close_linger_ms = 300;
  start(options);
  auto client = connect();
  const int small_buffer = 64 * 1024;
  ::setsockopt(client->fd(), SOL_SOCKET, SO_RCVBUF, &small_buffer, sizeof(small_buffer));
  example::EchoRequest request;
  request.set_message("big");
  ASSERT_TRUE(client->send_request(echo_request(1, request, std::string(32 << 20, 'a'))));
  ASSERT_TRUE(client->shutdown_write());
  const auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return server_->stats().connections_open == 0; }, milliseconds(3000)));
  EXPECT_LT(std::chrono::steady_clock::now() - started, scaled(milliseconds(1500)));
  EXPECT_EQ(server_->stats().closes_without_flush, 1u);
}


// A half-closed peer that stops reading while worker-pool answers push the
// connection past its unwritten-bytes limit: the close must still end within
// close_linger_ms of the last progress (it used to wait forever, draining).
TEST_F(ServerCloseTest, HalfClosedPeerThatStopsReadingPastTheLimitIsResetAfterTheLinger) {
  ServerOptions options;
  options.max_body_bytes = 4 << 20;
  options.max_unwritten_bytes_per_connection = 4 << 20;
  options.close_linger_ms = 300;
  start(options);
  auto client = connect();
  const int small_buffer = 4096;
  ::setsockopt(client->fd(), SOL_SOCKET, SO_RCVBUF, &small_buffer, sizeof(small_buffer));
  std::string batch;
  for (int id = 0; id < 16; ++id)
    batch += bulk_frame(id, 1 << 20);
  ASSERT_TRUE(client->send_bytes(batch));
  ASSERT_TRUE(client->shutdown_write());
  EXPECT_TRUE(eventually([&] { return server_->stats().connections_closed == 1; }, milliseconds(5000)));
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.closes_without_flush, 1u);
  EXPECT_EQ(stats.closes_by_reason.at(CloseReason::kPeerClosed), 1u);
}

// A half-closed peer that reads slowly but steadily gets every answer: the
// linger counts time without progress, not the time the flush takes.
TEST_F(ServerCloseTest, HalfClosedSlowReaderGetsEveryAnswer) {
  ServerOptions options;
  // Longer than TCP's 200 ms minimum retransmission timeout: a small window
  // may reopen only on the server's zero-window probe, which is progress too.
  options.close_linger_ms = 1000;
  start(options);
  auto client = connect(64 * 1024);
  std::string batch;
  for (int id = 0; id < 8; ++id)
    batch += bulk_frame(id, 1 << 20);
  ASSERT_TRUE(client->send_bytes(batch));
  ASSERT_TRUE(client->shutdown_write());
  // About 2 MB/s: four seconds for 8 MiB, several lingers long.
  std::string received;
  char buffer[16 * 1024];
  const auto deadline = std::chrono::steady_clock::now() + testing::scaled(milliseconds(30000));
  for (;;) {
    const ssize_t bytes = ::recv(client->fd(), buffer, sizeof(buffer), 0);
    if (bytes <= 0 || std::chrono::steady_clock::now() > deadline)
      break;
    received.append(buffer, static_cast<size_t>(bytes));
    std::this_thread::sleep_for(milliseconds(8));
  }
  FrameDecoder decoder;
  decoder.feed(received);
  Frame frame;
  std::set<int64_t> answered;
  while (decoder.next(frame) == DecodeStatus::kFrame) {
    EXPECT_EQ(frame.meta.response().error_code(), 0);
    answered.insert(frame.meta.correlation_id());
  }
  EXPECT_EQ(answered.size(), 8u);
  EXPECT_EQ(server_->stats().closes_without_flush, 0u);
}

// Names come from the peer: an error answer that repeats a huge one is cut,
// so it keeps its code (1001 / 1002) instead of turning into 2001 "response
// too large".
TEST_F(ServerCloseTest, ErrorAnswersAboutHugeNamesKeepTheirCode) {
  ServerOptions options;
  options.max_body_bytes = 64 * 1024;
  start(options);
  auto client = connect();
  example::EchoRequest request;
  request.set_message("x");
  RequestParts no_service = echo_request(1, request);
  no_service.service = std::string(60 * 1024, 's');
  RequestParts no_method = echo_request(2, request);
  no_method.method = std::string(60 * 1024, 'm');
  ASSERT_TRUE(client->send_request(no_service));
  ASSERT_TRUE(client->send_request(no_method));
  const auto answers = receive_answers(*client, 2);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers.at(1).error_code(), 1001);
  EXPECT_EQ(answers.at(2).error_code(), 1002);
  EXPECT_LE(answers.at(1).error_text().size(), 1024u);
  EXPECT_NE(answers.at(1).error_text().find("bytes in all"), std::string::npos);
}

// An echoed string that is not UTF-8 (proto2: accepted) must not make
// protobuf write a line per request or answer (it does in debug builds of
// generated code).
TEST_F(ServerCloseTest, StringsThatAreNotUtf8DoNotWriteALogLineEach) {
  start();
  auto client = connect();
  std::string batch;
  for (int id = 0; id < 200; ++id)
    batch += echo_frame(id, "\xff\xfe not UTF-8");
  testing::StderrCapture captured;
  ASSERT_TRUE(client->send_bytes(batch));
  const auto answers = receive_answers(*client, 200);
  const std::string log = captured.stop();
  EXPECT_EQ(answers.size(), 200u);
  size_t lines = 0;
  for (const char c : log)
    lines += c == '\n';
  EXPECT_LE(lines, 2u) << log;
}

// "No byte either way for N seconds" holds for a connection that sent part of
// a frame too: with the partial-frame timeout off, the idle timeout closes it.
TEST_F(ServerCloseTest, IdleTimeoutClosesAConnectionHoldingAPartialFrame) {
  ServerOptions options;
  options.idle_timeout_ms = 300;
  options.partial_frame_timeout_ms = 0;
  start(options);
  auto client = connect();
  ASSERT_TRUE(client->send_bytes(std::string("PRPC\x00", 5)));
  EXPECT_TRUE(client->wait_closed(testing::scaled(milliseconds(3000))));
  client->close();  // The server counts the close once it sees ours.
  EXPECT_TRUE(eventually(
      [&] { return server_->stats().closes_by_reason.count(CloseReason::kIdleTimeout) == 1; },
      milliseconds(3000)));
  EXPECT_EQ(server_->stats().incomplete_frames, 1u);
}

// Server::AddConnection serves a socketpair as an accepted connection.
TEST_F(ServerCloseTest, AddedSocketpairConnectionIsServedAndClosedTheSameWay) {
  start();
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  ASSERT_TRUE(server_->AddConnection(fds[0]));
  const std::string request = echo_frame(77, "over a socketpair");
  ASSERT_EQ(::send(fds[1], request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  ::shutdown(fds[1], SHUT_WR);
  const timeval bound{5, 0};
  ::setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof(bound));
  FrameDecoder decoder;
  Frame frame;
  char buffer[4096];
  for (;;) {
    const ssize_t bytes = ::recv(fds[1], buffer, sizeof(buffer), 0);
    if (bytes <= 0)
      break;
    decoder.feed(std::string_view(buffer, static_cast<size_t>(bytes)));
  }
  ASSERT_EQ(decoder.next(frame), DecodeStatus::kFrame);
  EXPECT_EQ(frame.meta.correlation_id(), 77);
  EXPECT_EQ(decoder.next(frame), DecodeStatus::kNeedMore);
  ::close(fds[1]);
}

}  // namespace
}  // namespace percore
