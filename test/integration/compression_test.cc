// Message compression (compress_type 1 snappy, 2 gzip, 3 zlib) between a
// real percore server and client over loopback: round trips both ways for
// every type and execution mode, corrupt compressed requests (1003, the
// connection stays open), and a response that inflates past the client's
// max_body_bytes (2002).

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <semaphore>
#include <string>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/server_io/server.h>
#include "test/support/blocking_client.h"
#include "test/support/bytes.h"
#include "test/support/call_ledger.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;

const CompressType kAllTypes[] = {CompressType::kNone, CompressType::kSnappy,
                                  CompressType::kGzip, CompressType::kZlib};

std::string name_of(CompressType type) {
  return std::string(compress_type_name(static_cast<int32_t>(type)));
}

// Echoes the message and the attachment, answering compressed as it was
// asked, as a brpc handler does with
// cntl->set_response_compress_type(cntl->request_compress_type()).
class CompressingEchoService : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    auto* server_controller = static_cast<ServerController*>(controller);
    response->set_message(request->message());
    server_controller->response_attachment() = server_controller->request_attachment();
    server_controller->set_response_compress_type(server_controller->request_compress_type());
    done->Run();
  }
};

class CompressionServer {
 public:
  // max_body_bytes 0: the default.
  explicit CompressionServer(ExecutionMode mode, size_t max_body_bytes = 0) {
    ServerOptions options;
    options.io_threads = 1;
    options.workers = 2;
    if (max_body_bytes > 0)
      options.max_body_bytes = max_body_bytes;
    server_ = std::make_unique<Server>(options);
    ServiceOptions service_options;
    service_options.default_mode = mode;
    server_->AddService(&echo_, service_options);
    std::string error;
    EXPECT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }
  Server& server() { return *server_; }
  int port() const { return server_->port(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

 private:
  CompressingEchoService echo_;
  std::unique_ptr<Server> server_;
};

std::unique_ptr<Channel> open_channel(const std::string& target, size_t max_body_bytes = 0) {
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(10000)).count());
  if (max_body_bytes > 0)
    options.max_body_bytes = max_body_bytes;
  auto channel = std::make_unique<Channel>();
  std::string error;
  EXPECT_TRUE(channel->Init(target, options, &error)) << error;
  return channel;
}

// The message of call `id`: small ones, and every 16th a compressible 200 KiB.
std::string message_of(int id) {
  std::string text = "call ";
  text += std::to_string(id);
  if (id % 16 == 0) {
    while (text.size() < 200 * 1024) {
      text += "; compressible text of call ";
      text += std::to_string(id);
    }
  }
  return text;
}

class CompressionModeTest : public ::testing::TestWithParam<ExecutionMode> {};

// Every type both ways: 400 async calls per type, each id's outcome counted
// once (message, attachment and the answer's compress_type all checked).
TEST_P(CompressionModeTest, EveryTypeRoundTripsBothWays) {
  CompressionServer server(GetParam());
  auto channel = open_channel(server.address());
  example::EchoService_Stub stub(channel.get());
  constexpr int kCallsPerType = 400;
  constexpr int kInFlight = 64;
  constexpr int kCalls = kCallsPerType * 4;
  testing::CallLedger ledger(kCalls);
  std::counting_semaphore<kInFlight> permits(kInFlight);
  std::atomic<int> failures{0};
  std::atomic<int> wrong{0};

  struct Call : google::protobuf::Closure {
    int id = 0;
    CompressType type = CompressType::kNone;
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
    std::string attachment;
    testing::CallLedger* ledger = nullptr;
    std::counting_semaphore<kInFlight>* permits = nullptr;
    std::atomic<int>* failures = nullptr;
    std::atomic<int>* wrong = nullptr;
    void Run() override {
      if (controller.Failed()) {
        if (failures->fetch_add(1) < 5)
          ADD_FAILURE() << "call " << id << ": " << controller.ErrorCode() << " "
                        << controller.ErrorText();
      } else if (response.message() != request.message() ||
                 controller.response_attachment() != attachment ||
                 controller.response_compress_type() != type) {
        wrong->fetch_add(1);
      }
      ledger->record_end(static_cast<size_t>(id));
      permits->release();
      delete this;
    }
  };

  for (int id = 0; id < kCalls; ++id) {
    ASSERT_TRUE(permits.try_acquire_for(testing::scaled(milliseconds(10000)))) << "call " << id;
    auto* call = new Call;
    call->id = id;
    call->type = kAllTypes[id / kCallsPerType];
    call->request.set_message(message_of(id));
    call->attachment = "attachment ";
    call->attachment += std::to_string(id);
    call->controller.request_attachment() = call->attachment;
    call->controller.set_request_compress_type(call->type);
    call->ledger = &ledger;
    call->permits = &permits;
    call->failures = &failures;
    call->wrong = &wrong;
    stub.Echo(&call->controller, &call->request, &call->response, call);
  }
  for (int i = 0; i < kInFlight; ++i)
    ASSERT_TRUE(permits.try_acquire_for(testing::scaled(milliseconds(10000))));
  EXPECT_EQ(ledger.violations(), "");
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  const ServerStats stats = server.server().stats();
  EXPECT_EQ(stats.answers_by_code.at(0), static_cast<uint64_t>(kCalls));
  EXPECT_EQ(stats.answers_by_code.size(), 1u);
}

// A compressed request frame whose message is `message`, as sent by hand.
std::string compressed_request(int64_t correlation_id, int32_t compress_type,
                               std::string_view message) {
  wire::RpcMeta meta;
  meta.mutable_request()->set_service_name("example.EchoService");
  meta.mutable_request()->set_method_name("Echo");
  meta.set_correlation_id(correlation_id);
  meta.set_compress_type(compress_type);
  GatherBuffer out;
  EXPECT_EQ(encode_frame(meta, message, std::string(), kDefaultMaxBodyBytes, out),
            EncodeStatus::kOk);
  return testing::flatten(out);
}

// Bodies that do not decompress are answered 1003 with a text that names the
// type; the connection stays open and serves the next request.
TEST_P(CompressionModeTest, CorruptCompressedRequestsAreAnswered1003) {
  CompressionServer server(GetParam());
  testing::BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server.port()));
  example::EchoRequest request;
  request.set_message("hello hello hello hello");
  int64_t id = 0;
  int bad = 0;
  for (CompressType type : {CompressType::kSnappy, CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string good;
    ASSERT_TRUE(serialize_compressed(request, type, good));
    std::string truncated = good.substr(0, good.size() - 2);
    for (const std::string& body : {std::string("not compressed at all"), truncated}) {
      ASSERT_TRUE(client.send_bytes(compressed_request(++id, static_cast<int32_t>(type), body)));
      testing::ReceivedFrame answer;
      ASSERT_EQ(client.receive(answer, testing::scaled(milliseconds(5000))),
                testing::ReceiveStatus::kFrame);
      EXPECT_EQ(answer.correlation_id(), id);
      EXPECT_EQ(answer.error_code(), 1003);
      std::string named(1, '(');
      named += name_of(type);
      named += ')';
      EXPECT_NE(answer.error_text().find(named), std::string::npos)
          << answer.error_text();
      ++bad;
    }
    // The same connection still serves a good compressed request.
    ASSERT_TRUE(client.send_bytes(compressed_request(++id, static_cast<int32_t>(type), good)));
    testing::ReceivedFrame answer;
    ASSERT_EQ(client.receive(answer, testing::scaled(milliseconds(5000))),
              testing::ReceiveStatus::kFrame);
    EXPECT_EQ(answer.error_code(), 0) << answer.error_text();
    EXPECT_EQ(answer.meta.compress_type(), static_cast<int32_t>(type));
    example::EchoResponse response;
    std::string inflated;
    ASSERT_EQ(decompress(type, answer.message, 1 << 20, inflated, nullptr),
              DecompressStatus::kOk);
    ASSERT_TRUE(response.ParseFromString(inflated));
    EXPECT_EQ(response.message(), request.message());
  }
  // An unknown type is refused by name, without trying.
  ASSERT_TRUE(client.send_bytes(compressed_request(++id, 7, "x")));
  testing::ReceivedFrame answer;
  ASSERT_EQ(client.receive(answer, testing::scaled(milliseconds(5000))),
            testing::ReceiveStatus::kFrame);
  EXPECT_EQ(answer.error_code(), 1003);
  EXPECT_NE(answer.error_text().find("unsupported compress_type 7"), std::string::npos);
  ++bad;
  const ServerStats stats = server.server().stats();
  EXPECT_EQ(stats.answers_by_code.at(1003), static_cast<uint64_t>(bad));
  EXPECT_EQ(stats.answers_by_code.at(0), 3u);
}

// Read as brpc reads (protobuf's GzipInputStream): a gzip or zlib body of
// two streams one after the other is one message; an empty body is an empty
// message (here missing its required field), not a body that does not
// decompress.
TEST_P(CompressionModeTest, ConcatenatedStreamsAndEmptyBodiesAreReadAsBrpcReadsThem) {
  CompressionServer server(GetParam());
  testing::BlockingClient client;
  ASSERT_TRUE(client.connect("127.0.0.1", server.port()));
  example::EchoRequest request;
  request.set_message("hello hello hello hello");
  std::string serialized;
  ASSERT_TRUE(request.SerializeToString(&serialized));
  int64_t id = 0;
  for (CompressType type : {CompressType::kGzip, CompressType::kZlib}) {
    SCOPED_TRACE(name_of(type));
    std::string two;
    ASSERT_TRUE(compress(type, std::string_view(serialized).substr(0, 7), two));
    ASSERT_TRUE(compress(type, std::string_view(serialized).substr(7), two));
    ASSERT_TRUE(client.send_bytes(compressed_request(++id, static_cast<int32_t>(type), two)));
    testing::ReceivedFrame answer;
    ASSERT_EQ(client.receive(answer, testing::scaled(milliseconds(5000))),
              testing::ReceiveStatus::kFrame);
    EXPECT_EQ(answer.error_code(), 0) << answer.error_text();
    example::EchoResponse response;
    std::string inflated;
    ASSERT_EQ(decompress(type, answer.message, 1 << 20, inflated, nullptr),
              DecompressStatus::kOk);
    ASSERT_TRUE(response.ParseFromString(inflated));
    EXPECT_EQ(response.message(), request.message());

    ASSERT_TRUE(client.send_bytes(compressed_request(++id, static_cast<int32_t>(type), "")));
    ASSERT_EQ(client.receive(answer, testing::scaled(milliseconds(5000))),
              testing::ReceiveStatus::kFrame);
    EXPECT_EQ(answer.error_code(), 1003);
    EXPECT_NE(answer.error_text().find("misses required fields"), std::string::npos)
        << answer.error_text();
  }
}

// A request that inflates past the server's max_body_bytes is answered
// 1003; an answer that inflates past the client's is failed 2002.
TEST_P(CompressionModeTest, MessagesInflatingPastMaxBodyBytesAreRefusedOnBothSides) {
  CompressionServer server(GetParam());
  constexpr size_t kClientLimit = 1 << 20;
  auto channel = open_channel(server.address(), kClientLimit);
  example::EchoService_Stub stub(channel.get());
  // Sends `bytes` of one letter compressed as `type`; expects `code` and
  // the text of the inflation limit of 1 MiB.
  auto expect_refused = [](example::EchoService_Stub& to, CompressType type, size_t bytes,
                           int32_t code) {
    SCOPED_TRACE(name_of(type));
    Controller controller;
    controller.set_request_compress_type(type);
    example::EchoRequest request;
    request.set_message(std::string(bytes, 'a'));
    example::EchoResponse response;
    to.Echo(&controller, &request, &response, nullptr);
    EXPECT_EQ(controller.ErrorCode(), code) << controller.ErrorText();
    EXPECT_NE(controller.ErrorText().find("decompresses to more than 1048576 bytes"),
              std::string::npos)
        << controller.ErrorText();
    EXPECT_EQ(controller.response_compress_type(), CompressType::kNone);
  };
  // 8 MiB that compresses under the client's 1 MiB wire limit; the server
  // (64 MiB) takes it, but its compressed answer inflates past 1 MiB.
  for (CompressType type : {CompressType::kSnappy, CompressType::kGzip, CompressType::kZlib})
    expect_refused(stub, type, 8 << 20, 2002);
  // The other way: 4 MiB to a server whose limit is 1 MiB.
  CompressionServer small(GetParam(), kClientLimit);
  auto to_small = open_channel(small.address());
  example::EchoService_Stub small_stub(to_small.get());
  for (CompressType type : {CompressType::kSnappy, CompressType::kGzip, CompressType::kZlib})
    expect_refused(small_stub, type, 4 << 20, 1003);
  EXPECT_EQ(small.server().stats().answers_by_code.at(1003), 3u);
}

INSTANTIATE_TEST_SUITE_P(Modes, CompressionModeTest,
                         ::testing::Values(ExecutionMode::kInline, ExecutionMode::kWorkerPool,
                                           ExecutionMode::kProcessPool),
                         [](const ::testing::TestParamInfo<ExecutionMode>& info) {
                           return std::string(info.param == ExecutionMode::kInline ? "Inline"
                                              : info.param == ExecutionMode::kWorkerPool
                                                  ? "WorkerPool"
                                                  : "ProcessPool");
                         });

}  // namespace
}  // namespace percore
