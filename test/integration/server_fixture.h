#pragma once

// The in-process server fixture of the server tests: a Server on a free
// loopback port hosting the echo (inline), prime (worker pool) and test
// services, and request builders for the blocking raw-socket client.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>

#include "examples/echo_service.h"
#include "examples/prime_service.h"
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/server_io/server.h>
#include "test/support/blocking_client.h"
#include "test/support/slack.h"
#include "test/support/test_service_impl.h"

namespace percore::testing {

inline const std::chrono::milliseconds kReceiveTimeout =
    scaled(std::chrono::milliseconds(5000));

class ServerTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}) {
    if (options.io_threads == 0)
      options.io_threads = 2;
    if (options.workers == 0)
      options.workers = 2;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(&echo_));
    ServiceOptions prime_options;
    prime_options.default_mode = ExecutionMode::kWorkerPool;
    ASSERT_TRUE(server_->AddService(&prime_, prime_options));
    ServiceOptions test_options;
    test_options.method_modes["Sleep"] = ExecutionMode::kWorkerPool;
    test_options.method_modes["Bulk"] = ExecutionMode::kWorkerPool;
    ASSERT_TRUE(server_->AddService(&test_service_, test_options));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
    ASSERT_GT(server_->port(), 0);
  }

  void TearDown() override { server_.reset(); }

  // receive_buffer_bytes > 0: SO_RCVBUF, set before the handshake.
  std::unique_ptr<BlockingClient> connect(int receive_buffer_bytes = 0) {
    auto client = std::make_unique<BlockingClient>();
    std::string error;
    EXPECT_TRUE(client->connect("127.0.0.1", server_->port(), &error, receive_buffer_bytes))
        << error;
    return client;
  }

  static RequestParts echo_request(int64_t id, const example::EchoRequest& request,
                                   std::string attachment = {}) {
    RequestParts parts;
    parts.correlation_id = id;
    parts.service = "example.EchoService";
    parts.method = "Echo";
    parts.message = &request;
    parts.attachment = std::move(attachment);
    return parts;
  }

  static RequestParts sleep_request(int64_t id, const percore::test::SleepRequest& request,
                                    int32_t timeout_ms = 0) {
    RequestParts parts;
    parts.correlation_id = id;
    parts.service = "percore.test.TestService";
    parts.method = "Sleep";
    parts.message = &request;
    parts.timeout_ms = timeout_ms;
    return parts;
  }

  static RequestParts prime_request(int64_t id, const prime::IsPrimeRequest& request) {
    RequestParts parts;
    parts.correlation_id = id;
    parts.service = "prime.PrimeService";
    parts.method = "IsPrime";
    parts.message = &request;
    return parts;
  }

  // The bytes of one Sleep request (worker pool) of `milliseconds`.
  static std::string sleep_frame(int64_t id, uint32_t milliseconds) {
    percore::test::SleepRequest request;
    request.set_milliseconds(milliseconds);
    request.set_tag(static_cast<uint64_t>(id));
    return BlockingClient::encode_request(sleep_request(id, request));
  }

  // The bytes of one Bulk request (worker pool): an answer of `bytes`.
  static std::string bulk_frame(int64_t id, uint32_t bytes) {
    percore::test::BulkRequest request;
    request.set_bytes(bytes);
    RequestParts parts;
    parts.correlation_id = id;
    parts.service = "percore.test.TestService";
    parts.method = "Bulk";
    parts.message = &request;
    return BlockingClient::encode_request(parts);
  }

  // The bytes of one Echo request (inline).
  static std::string echo_frame(int64_t id, const std::string& message) {
    example::EchoRequest request;
    request.set_message(message);
    return BlockingClient::encode_request(echo_request(id, request));
  }

  static ReceivedFrame receive(BlockingClient& client) {
    ReceivedFrame frame;
    EXPECT_EQ(client.receive(frame, kReceiveTimeout), ReceiveStatus::kFrame);
    return frame;
  }

  examples::EchoServiceImpl echo_;
  examples::PrimeServiceImpl prime_;
  TestServiceImpl test_service_;
  std::unique_ptr<Server> server_;
};

}  // namespace percore::testing
