// percore-server as a real process: ready line, answers, a request built by
// hand from docs/PROTOCOL.md, graceful stop on SIGTERM, bind failures.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>

#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include "test/support/blocking_client.h"
#include "test/support/child_process.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using testing::BlockingClient;
using testing::ReceivedFrame;
using testing::ReceiveStatus;

TEST(ServerProcessTest, AnswersARequestBuiltByHandFromTheProtocolDescription) {
  auto server = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(server.has_value());
  BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server->port));

  // Every byte from the field numbers of docs/PROTOCOL.md, no codec:
  // meta = request{service_name "example.EchoService", method_name "Echo"},
  //        correlation_id 5; message = EchoRequest{message "hi"}.
  const std::string service = "example.EchoService";
  std::string request_meta =
      "\x0a" + std::string(1, static_cast<char>(service.size())) + service + "\x12\x04" + "Echo";
  std::string meta =
      "\x0a" + std::string(1, static_cast<char>(request_meta.size())) + request_meta + "\x20\x05";
  const std::string message = "\x0a\x02hi";
  const uint32_t body = static_cast<uint32_t>(meta.size() + message.size());
  std::string frame = "PRPC";
  for (uint32_t value : {body, static_cast<uint32_t>(meta.size())}) {
    for (int shift = 24; shift >= 0; shift -= 8)
      frame.push_back(static_cast<char>(value >> shift));
  }
  ASSERT_TRUE(client.send_bytes(frame + meta + message));

  ReceivedFrame answer;
  ASSERT_EQ(client.receive(answer, milliseconds(5000)), ReceiveStatus::kFrame);
  EXPECT_EQ(answer.correlation_id(), 5);
  EXPECT_TRUE(answer.meta.has_response());
  EXPECT_EQ(answer.error_code(), 0);
  EXPECT_EQ(answer.message, message);  // EchoResponse has the same layout.
}

TEST(ServerProcessTest, ServesBothExampleServicesAndStopsGracefullyOnSigterm) {
  auto server = testing::start_server_process({"--grace-ms", "2000"});
  ASSERT_TRUE(server.has_value());
  BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server->port));

  example::EchoRequest echo;
  echo.set_message("over the wire");
  testing::RequestParts echo_parts;
  echo_parts.correlation_id = 1;
  echo_parts.service = "example.EchoService";
  echo_parts.method = "Echo";
  echo_parts.message = &echo;
  prime::IsPrimeRequest prime_request;
  prime_request.set_number(32416190071ull);
  testing::RequestParts prime_parts;
  prime_parts.correlation_id = 2;
  prime_parts.service = "prime.PrimeService";
  prime_parts.method = "IsPrime";
  prime_parts.message = &prime_request;
  ASSERT_TRUE(client.send_request(echo_parts));
  ASSERT_TRUE(client.send_request(prime_parts));

  std::map<int64_t, ReceivedFrame> answers;
  for (int i = 0; i < 2; ++i) {
    ReceivedFrame frame;
    ASSERT_EQ(client.receive(frame, milliseconds(5000)), ReceiveStatus::kFrame);
    answers[frame.correlation_id()] = frame;
  }
  example::EchoResponse echo_response;
  ASSERT_TRUE(echo_response.ParseFromString(answers[1].message));
  EXPECT_EQ(echo_response.message(), "over the wire");
  prime::IsPrimeResponse prime_response;
  ASSERT_TRUE(prime_response.ParseFromString(answers[2].message));
  EXPECT_TRUE(prime_response.is_prime());

  server->process->send_signal(SIGTERM);
  const std::optional<int> status = server->process->wait_exit(milliseconds(5000));
  ASSERT_TRUE(status.has_value()) << "percore-server did not stop on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
  EXPECT_TRUE(client.wait_closed(milliseconds(2000)));
}

TEST(ServerProcessTest, SecondServerOnTheSamePortExitsWithAnError) {
  auto first = testing::start_server_process({});
  ASSERT_TRUE(first.has_value());
  std::string error;
  auto second =
      testing::ChildProcess::start({testing::built_program("examples/percore-server"), "--listen",
                                    "127.0.0.1:" + std::to_string(first->port)},
                                   &error);
  ASSERT_NE(second, nullptr) << error;
  const std::optional<int> status = second->wait_exit(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_NE(WEXITSTATUS(*status), 0);
}

TEST(ServerProcessTest, RejectsUnknownOptions) {
  std::string error;
  auto server = testing::ChildProcess::start(
      {testing::built_program("examples/percore-server"), "--no-such-option", "1"}, &error);
  ASSERT_NE(server, nullptr) << error;
  const std::optional<int> status = server->wait_exit(milliseconds(5000));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
}

}  // namespace
}  // namespace percore
