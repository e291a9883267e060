// The server container over loopback, driven by the blocking raw-socket
// client: answers, error codes, pipelining, overload, deadlines, malformed
// frames and graceful stop.

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include "test/integration/server_fixture.h"
#include "test/support/stderr_capture.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using testing::BlockingClient;
using testing::ReceivedFrame;
using testing::ReceiveStatus;
using testing::RequestParts;
using testing::kReceiveTimeout;
using testing::ServerTest;

TEST_F(ServerTest, EchoAnswersTheMessageAndTheAttachment) {
  start();
  auto client = connect();
  example::EchoRequest request;
  request.set_message("hello percore");
  ASSERT_TRUE(client->send_request(echo_request(7, request, "attached bytes")));
  const ReceivedFrame frame = receive(*client);
  EXPECT_EQ(frame.correlation_id(), 7);
  EXPECT_TRUE(frame.meta.has_response());
  EXPECT_EQ(frame.error_code(), 0);
  example::EchoResponse response;
  ASSERT_TRUE(response.ParseFromString(frame.message));
  EXPECT_EQ(response.message(), "hello percore");
  EXPECT_EQ(frame.attachment, "attached bytes");
}

TEST_F(ServerTest, LargeAttachmentIsEchoedIntact) {
  start();
  auto client = connect();
  example::EchoRequest request;
  request.set_message("big");
  std::string attachment(3 << 20, '\0');
  for (size_t i = 0; i < attachment.size(); ++i)
    attachment[i] = static_cast<char>(i * 131);
  ASSERT_TRUE(client->send_request(echo_request(1, request, attachment)));
  const ReceivedFrame frame = receive(*client);
  EXPECT_EQ(frame.error_code(), 0);
  EXPECT_TRUE(frame.attachment == attachment);
}

TEST_F(ServerTest, IsPrimeAnswersOnTheWorkerPool) {
  start();
  auto client = connect();
  const std::map<uint64_t, bool> cases = {
      {32416190071ull, true}, {32416190070ull, false}, {2, true}, {1, false}, {97, true}};
  int64_t id = 0;
  for (const auto& [number, expected] : cases) {
    prime::IsPrimeRequest request;
    request.set_number(number);
    RequestParts parts;
    parts.correlation_id = ++id;
    parts.service = "prime.PrimeService";
    parts.method = "IsPrime";
    parts.message = &request;
    ASSERT_TRUE(client->send_request(parts));
    const ReceivedFrame frame = receive(*client);
    ASSERT_EQ(frame.error_code(), 0) << frame.error_text();
    EXPECT_EQ(frame.correlation_id(), id);
    prime::IsPrimeResponse response;
    ASSERT_TRUE(response.ParseFromString(frame.message));
    EXPECT_EQ(response.is_prime(), expected) << number;
  }
}

TEST_F(ServerTest, UnknownServiceMethodAndBadBodyGetTheirCodes) {
  start();
  auto client = connect();
  example::EchoRequest request;
  request.set_message("x");

  RequestParts unknown_service = echo_request(1, request);
  unknown_service.service = "example.NoSuchService";
  RequestParts unknown_method = echo_request(2, request);
  unknown_method.method = "Nope";
  // EchoRequest's message is required: an empty body does not parse.
  example::EchoRequest missing_field;
  RequestParts missing_required = echo_request(3, missing_field);
  ASSERT_TRUE(client->send_request(unknown_service));
  ASSERT_TRUE(client->send_request(unknown_method));
  ASSERT_TRUE(client->send_request(missing_required));
  // Garbage bytes as the message: a field tag with a truncated length.
  std::string garbage_frame = BlockingClient::encode_request(echo_request(4, request));
  // Replace the message (last 3 bytes: tag 0x0a, length 1, 'x') by 0x0a 0x7f 'x'.
  garbage_frame[garbage_frame.size() - 2] = 0x7f;
  ASSERT_TRUE(client->send_bytes(garbage_frame));

  std::map<int64_t, ReceivedFrame> answers;
  for (int i = 0; i < 4; ++i) {
    ReceivedFrame frame = receive(*client);
    answers[frame.correlation_id()] = frame;
  }
  EXPECT_EQ(answers[1].error_code(), 1001);
  EXPECT_NE(answers[1].error_text().find("example.NoSuchService"), std::string::npos);
  EXPECT_EQ(answers[2].error_code(), 1002);
  EXPECT_NE(answers[2].error_text().find("Nope"), std::string::npos);
  EXPECT_EQ(answers[3].error_code(), 1003);
  EXPECT_EQ(answers[4].error_code(), 1003);
  EXPECT_TRUE(answers[1].message.empty());

  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.answers_by_code.at(1001), 1u);
  EXPECT_EQ(stats.answers_by_code.at(1002), 1u);
  EXPECT_EQ(stats.methods.at("example.EchoService.Echo").answers_by_code.at(1003), 2u);
}

TEST_F(ServerTest, UnsupportedCompressTypeGets1003NotAMisparse) {
  start();
  auto client = connect();
  example::EchoRequest request;
  request.set_message("compressed?");
  wire::RpcMeta meta;
  meta.set_correlation_id(9);
  meta.set_compress_type(4);  // Not one of brpc's 0..3.
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  const std::string meta_bytes = meta.SerializeAsString();
  const std::string message_bytes = request.SerializeAsString();
  std::string frame = "PRPC";
  auto put = [&frame](uint32_t value) {
    for (int shift = 24; shift >= 0; shift -= 8)
      frame.push_back(static_cast<char>(value >> shift));
  };
  put(static_cast<uint32_t>(meta_bytes.size() + message_bytes.size()));
  put(static_cast<uint32_t>(meta_bytes.size()));
  ASSERT_TRUE(client->send_bytes(frame + meta_bytes + message_bytes));
  const ReceivedFrame answer = receive(*client);
  EXPECT_EQ(answer.correlation_id(), 9);
  EXPECT_EQ(answer.error_code(), 1003);
  EXPECT_NE(answer.error_text().find("unsupported compress_type 4"), std::string::npos);
}

TEST_F(ServerTest, HandlerFailuresReachTheCaller) {
  start();
  auto client = connect();
  percore::test::FailRequest plain;
  plain.set_text("disk on fire");
  percore::test::FailRequest coded;
  coded.set_code(1004);
  coded.set_text("who are you");
  RequestParts parts;
  parts.service = "percore.test.TestService";
  parts.method = "Fail";
  parts.correlation_id = 1;
  parts.message = &plain;
  ASSERT_TRUE(client->send_request(parts));
  parts.correlation_id = 2;
  parts.message = &coded;
  ASSERT_TRUE(client->send_request(parts));
  const ReceivedFrame first = receive(*client);
  const ReceivedFrame second = receive(*client);
  EXPECT_EQ(first.error_code(), 2001);
  EXPECT_EQ(first.error_text(), "disk on fire");
  EXPECT_EQ(second.error_code(), 1004);
  EXPECT_EQ(second.error_text(), "who are you");
}

TEST_F(ServerTest, PipelinedRequestsInOneWriteAreEachAnsweredOnce) {
  start();
  auto client = connect();
  constexpr int kRequests = 2000;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) {
    example::EchoRequest request;
    request.set_message("request " + std::to_string(i));
    // Ids far from 0..N so that an echoed index would not pass by accident.
    batch += BlockingClient::encode_request(echo_request(1000000 + i, request));
  }
  ASSERT_TRUE(client->send_bytes(batch));
  std::vector<int> seen(kRequests, 0);
  for (int i = 0; i < kRequests; ++i) {
    const ReceivedFrame frame = receive(*client);
    ASSERT_EQ(frame.error_code(), 0);
    const int64_t index = frame.correlation_id() - 1000000;
    ASSERT_GE(index, 0);
    ASSERT_LT(index, kRequests);
    ++seen[index];
    example::EchoResponse response;
    ASSERT_TRUE(response.ParseFromString(frame.message));
    EXPECT_EQ(response.message(), "request " + std::to_string(index));
  }
  for (int i = 0; i < kRequests; ++i)
    EXPECT_EQ(seen[i], 1) << "request " << i;
  ReceivedFrame extra;
  EXPECT_EQ(client->receive(extra, milliseconds(100)), ReceiveStatus::kTimedOut);
}

TEST_F(ServerTest, FloodedWorkerQueueAnswers2004ForTheExcessAndEveryRequestOnce) {
  ServerOptions options;
  options.workers = 1;
  options.worker_queue_capacity = 4;
  start(options);
  auto client = connect();
  constexpr int kRequests = 20;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) {
    percore::test::SleepRequest request;
    request.set_milliseconds(40);
    request.set_tag(i);
    batch += BlockingClient::encode_request(sleep_request(i, request));
  }
  ASSERT_TRUE(client->send_bytes(batch));
  std::vector<int> answers(kRequests, 0);
  int ok = 0;
  int limited = 0;
  for (int i = 0; i < kRequests; ++i) {
    const ReceivedFrame frame = receive(*client);
    ASSERT_GE(frame.correlation_id(), 0);
    ASSERT_LT(frame.correlation_id(), kRequests);
    ++answers[frame.correlation_id()];
    if (frame.error_code() == 0)
      ++ok;
    if (frame.error_code() == 2004)
      ++limited;
  }
  for (int i = 0; i < kRequests; ++i)
    EXPECT_EQ(answers[i], 1) << "request " << i;
  EXPECT_EQ(ok + limited, kRequests);
  // Four wait in the queue, and the worker may already hold a fifth.
  EXPECT_GE(ok, 4);
  EXPECT_LE(ok, 5);
  EXPECT_EQ(test_service_.sleeps_started(), ok);
  EXPECT_EQ(server_->stats().methods.at("percore.test.TestService.Sleep").answers_by_code.at(2004),
            static_cast<uint64_t>(limited));
}

TEST_F(ServerTest, ExpiredDeadlineGets1008AndTheHandlerNeverRuns) {
  ServerOptions options;
  options.workers = 1;
  start(options);
  auto client = connect();
  percore::test::SleepRequest blocker;
  blocker.set_milliseconds(300);
  blocker.set_tag(1);
  percore::test::SleepRequest late;
  late.set_milliseconds(0);
  late.set_tag(2);
  ASSERT_TRUE(client->send_bytes(BlockingClient::encode_request(sleep_request(1, blocker)) +
                                 BlockingClient::encode_request(sleep_request(2, late, 50))));
  std::map<int64_t, ReceivedFrame> answers;
  for (int i = 0; i < 2; ++i) {
    ReceivedFrame frame = receive(*client);
    answers[frame.correlation_id()] = frame;
  }
  EXPECT_EQ(answers[1].error_code(), 0);
  EXPECT_EQ(answers[2].error_code(), 1008);
  EXPECT_EQ(test_service_.sleep_tags(), std::set<uint64_t>{1});
}

TEST_F(ServerTest, MalformedFrameClosesThatConnectionOnly) {
  start();
  auto bad = connect();
  auto good = connect();
  example::EchoRequest request;
  request.set_message("still here");
  ASSERT_TRUE(good->send_request(echo_request(1, request)));
  EXPECT_EQ(receive(*good).error_code(), 0);

  // Another protocol (HTTP would be served: it has a path of its own).
  ASSERT_TRUE(bad->send_bytes("SSH-2.0-OpenSSH_9.2\r\n"));
  EXPECT_TRUE(bad->wait_closed(kReceiveTimeout));

  ASSERT_TRUE(good->send_request(echo_request(2, request)));
  const ReceivedFrame frame = receive(*good);
  EXPECT_EQ(frame.correlation_id(), 2);
  EXPECT_EQ(frame.error_code(), 0);
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.rejected_frames.at(DecodeStatus::kBadMagic), 1u);
  EXPECT_EQ(stats.rejected_frames_total(), 1u);
}

TEST_F(ServerTest, OversizedFrameIsRejectedFromItsHeader) {
  ServerOptions options;
  options.max_body_bytes = 8192;
  start(options);
  auto client = connect();
  // Only a header announcing 8193 bytes: the server must not wait for them.
  const std::string header =
      std::string("PRPC") + std::string("\x00\x00\x20\x01", 4) + std::string("\x00\x00\x00\x10", 4);
  ASSERT_TRUE(client->send_bytes(header));
  EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  EXPECT_EQ(server_->stats().rejected_frames.at(DecodeStatus::kBodyTooLarge), 1u);
}

TEST_F(ServerTest, ConnectionWithTooManyCallsInFlightIsNotReadUntilSomeFinish) {
  ServerOptions options;
  options.workers = 4;
  options.max_inflight_per_connection = 2;
  start(options);
  auto client = connect();
  constexpr int kRequests = 8;
  std::string batch;
  for (int i = 0; i < kRequests; ++i) {
    percore::test::SleepRequest request;
    request.set_milliseconds(30);
    request.set_tag(i);
    batch += BlockingClient::encode_request(sleep_request(i, request));
  }
  ASSERT_TRUE(client->send_bytes(batch));
  std::vector<int> answers(kRequests, 0);
  for (int i = 0; i < kRequests; ++i) {
    const ReceivedFrame frame = receive(*client);
    EXPECT_EQ(frame.error_code(), 0);
    ++answers.at(frame.correlation_id());
  }
  for (int i = 0; i < kRequests; ++i)
    EXPECT_EQ(answers[i], 1);
  // Four idle workers, but never more than two of this connection's calls.
  EXPECT_LE(test_service_.max_concurrent_sleeps(), 2);
  EXPECT_EQ(test_service_.sleeps_started(), kRequests);
}

TEST_F(ServerTest, ConnectionsAreSpreadRoundRobinOverIoThreads) {
  ServerOptions options;
  options.io_threads = 2;
  start(options);
  std::map<uint64_t, int> connections_per_thread;
  std::vector<std::unique_ptr<BlockingClient>> clients;
  for (int i = 0; i < 4; ++i) {
    clients.push_back(connect());
    percore::test::WhoAmIRequest request;
    RequestParts parts;
    parts.correlation_id = i;
    parts.service = "percore.test.TestService";
    parts.method = "WhoAmI";
    parts.message = &request;
    ASSERT_TRUE(clients.back()->send_request(parts));
    const ReceivedFrame frame = receive(*clients.back());
    percore::test::WhoAmIResponse response;
    ASSERT_TRUE(response.ParseFromString(frame.message));
    ++connections_per_thread[response.thread_hash()];
  }
  ASSERT_EQ(connections_per_thread.size(), 2u);
  for (const auto& [thread, count] : connections_per_thread)
    EXPECT_EQ(count, 2);
}

TEST_F(ServerTest, SecondServerOnTheSamePortFailsToBind) {
  start();
  Server second;
  std::string error;
  EXPECT_FALSE(second.Start("127.0.0.1:" + std::to_string(server_->port()), &error));
  EXPECT_NE(error.find("cannot listen"), std::string::npos) << error;
}

TEST_F(ServerTest, StopAnswersEveryRequestInFlight) {
  ServerOptions options;
  options.workers = 4;
  start(options);
  auto client = connect();
  // Two calls finish within the grace period, two outlive it.
  std::string batch;
  for (int i = 0; i < 4; ++i) {
    percore::test::SleepRequest request;
    request.set_milliseconds(i < 2 ? 100 : 1500);
    request.set_tag(i);
    batch += BlockingClient::encode_request(sleep_request(i, request));
  }
  ASSERT_TRUE(client->send_bytes(batch));
  // Wait until all four handlers run, so they are truly in flight.
  for (int i = 0; i < 200 && test_service_.sleeps_started() < 4; ++i) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(test_service_.sleeps_started(), 4);

  const auto stop_started = std::chrono::steady_clock::now();
  auto stopping = std::async(std::launch::async, [this] { server_->Stop(milliseconds(400)); });
  // A request sent while the server drains is turned away with 2003.
  std::this_thread::sleep_for(milliseconds(50));
  example::EchoRequest request;
  request.set_message("too late");
  ASSERT_TRUE(client->send_request(echo_request(10, request)));

  std::map<int64_t, int32_t> codes;
  for (int i = 0; i < 5; ++i) {
    const ReceivedFrame frame = receive(*client);
    EXPECT_EQ(codes.count(frame.correlation_id()), 0u) << "answered twice";
    codes[frame.correlation_id()] = frame.error_code();
  }
  stopping.get();
  const auto stop_took = std::chrono::steady_clock::now() - stop_started;
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], 0);
  EXPECT_EQ(codes[2], 2003);
  EXPECT_EQ(codes[3], 2003);
  EXPECT_EQ(codes[10], 2003);
  EXPECT_TRUE(client->wait_closed(kReceiveTimeout));
  // The grace period bounds the stop, not the 1.5 s handlers.
  EXPECT_LT(stop_took, testing::scaled(milliseconds(1300)));
}

TEST_F(ServerTest, StatsCountCallsAndErrorsPerMethod) {
  start();
  auto client = connect();
  example::EchoRequest request;
  request.set_message("count me");
  for (int i = 0; i < 3; ++i)
    ASSERT_TRUE(client->send_request(echo_request(i, request)));
  for (int i = 0; i < 3; ++i)
    receive(*client);
  const ServerStats stats = server_->stats();
  const MethodStats& echo = stats.methods.at("example.EchoService.Echo");
  EXPECT_EQ(echo.calls, 3u);
  EXPECT_EQ(echo.errors(), 0u);
  EXPECT_EQ(echo.answers_by_code.at(0), 3u);
  EXPECT_EQ(stats.methods.at("prime.PrimeService.IsPrime").calls, 0u);
  EXPECT_GE(stats.connections_accepted, 1u);
}


// A request frame whose message is `message_bytes` as they are.
std::string raw_request_frame(int64_t id, const std::string& service, const std::string& method,
                              const std::string& message_bytes) {
  wire::RpcMeta meta;
  meta.set_correlation_id(id);
  meta.mutable_request()->set_service_name(service);
  meta.mutable_request()->set_method_name(method);
  const std::string meta_bytes = meta.SerializeAsString();
  std::string frame = "PRPC";
  for (const size_t value : {meta_bytes.size() + message_bytes.size(), meta_bytes.size()}) {
    for (int shift = 24; shift >= 0; shift -= 8)
      frame.push_back(static_cast<char>(value >> shift));
  }
  return frame + meta_bytes + message_bytes;
}

// protobuf writes an ERROR line of its own for a proto3 string that is not
// UTF-8 and for missing required fields: a peer must not be able to make one
// line per request. Every such request is answered 1003; the log gets at most
// protobuf's first line and percore's rate-limited ones.
TEST_F(ServerTest, BadRequestsDoNotWriteALogLineEach) {
  start();
  auto client = connect();
  // FailRequest.text (proto3 string, field 2) = 0xff 0xfe.
  const std::string not_utf8 = std::string("\x12\x02\xff\xfe", 4);
  example::EchoRequest missing_required;  // `message` is required.
  constexpr int kEach = 100;
  std::string batch;
  for (int i = 0; i < kEach; ++i) {
    batch += raw_request_frame(2 * i, "percore.test.TestService", "Fail", not_utf8);
    batch += BlockingClient::encode_request(echo_request(2 * i + 1, missing_required));
  }
  testing::StderrCapture captured;
  ASSERT_TRUE(client->send_bytes(batch));
  std::map<int64_t, ReceivedFrame> answers;
  for (int i = 0; i < 2 * kEach; ++i) {
    ReceivedFrame frame = receive(*client);
    answers[frame.correlation_id()] = frame;
  }
  const std::string log = captured.stop();
  ASSERT_EQ(answers.size(), static_cast<size_t>(2 * kEach));
  for (const auto& [id, frame] : answers)
    EXPECT_EQ(frame.error_code(), 1003) << id;
  EXPECT_NE(answers[1].error_text().find("required fields of example.EchoRequest: message"),
            std::string::npos)
      << answers[1].error_text();
  EXPECT_NE(answers[0].error_text().find("does not parse as percore.test.FailRequest"),
            std::string::npos)
      << answers[0].error_text();
  const auto count = [&log](const std::string& text) {
    size_t found = 0;
    for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
      ++found;
    return found;
  };
  EXPECT_LE(count("libprotobuf"), 1u) << log;
  EXPECT_LE(count("\n"), 4u) << log;
}

}  // namespace
}  // namespace percore
