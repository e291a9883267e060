// The client proxy against real servers over loopback (in-process percore
// Servers): every completion mode, a generated stub, attachments, deadlines,
// remote errors, limits, 2003 retries, and exactly-once under load.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <semaphore>
#include <set>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include "examples/echo_service.h"
#include <percore/proto/echo.pb.h>
#include <percore/server_io/server.h>
#include "test/proto/test_service.pb.h"
#include "test/support/call_ledger.h"
#include "test/support/eventually.h"
#include "test/support/once_closure.h"
#include "test/support/slack.h"
#include "test/support/test_service_impl.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

// A percore::Server on 127.0.0.1:0 with the echo and test services.
class TestServer {
 public:
  explicit TestServer(int workers = 2) {
    ServerOptions options;
    options.io_threads = 1;
    options.workers = workers;
    server_ = std::make_unique<Server>(options);
    server_->AddService(&echo_);
    ServiceOptions test_options;
    test_options.method_modes["Sleep"] = ExecutionMode::kWorkerPool;
    server_->AddService(&test_service_, test_options);
    std::string error;
    EXPECT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }

  Server& server() { return *server_; }
  testing::TestServiceImpl& test_service() { return test_service_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

 private:
  examples::EchoServiceImpl echo_;
  testing::TestServiceImpl test_service_;
  std::unique_ptr<Server> server_;
};

std::string current_thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

ChannelOptions small_options() {
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(5000)).count());
  return options;
}

std::unique_ptr<Channel> open_channel(const std::string& target,
                                      const ChannelOptions& options = small_options()) {
  auto channel = std::make_unique<Channel>();
  std::string error;
  EXPECT_TRUE(channel->Init(target, options, &error)) << error;
  return channel;
}

TEST(ChannelTest, SynchronousCallThroughAGeneratedStub) {
  TestServer server;
  auto channel = open_channel("list://" + server.address());
  example::EchoService_Stub stub(channel.get());
  example::EchoRequest request;
  request.set_message("hello stub");
  example::EchoResponse response;
  Controller controller;
  stub.Echo(&controller, &request, &response, nullptr);
  ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(response.message(), "hello stub");
  EXPECT_EQ(controller.remote_side(), server.address());
  EXPECT_GT(controller.latency_us(), 0);
  EXPECT_EQ(controller.retried_count(), 0);
}

TEST(ChannelTest, AttachmentsTravelBothWays) {
  TestServer server;
  auto channel = open_channel(server.address());  // A bare list.
  example::EchoService_Stub stub(channel.get());
  for (size_t size : {size_t{7}, size_t{100000}, size_t{3} << 20}) {
    example::EchoRequest request;
    request.set_message("with attachment");
    example::EchoResponse response;
    Controller controller;
    std::string attachment(size, '\0');
    for (size_t i = 0; i < size; ++i)
      attachment[i] = static_cast<char>(i * 7 + size);
    controller.request_attachment() = attachment;
    stub.Echo(&controller, &request, &response, nullptr);
    ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
    EXPECT_TRUE(controller.request_attachment().empty()) << "the call takes the attachment";
    EXPECT_EQ(controller.response_attachment().size(), size);
    EXPECT_TRUE(controller.response_attachment() == attachment);
  }
}

TEST(ChannelTest, QueuedCallbackRunsOffTheIoThreadsOnce) {
  TestServer server;
  auto channel = open_channel(server.address());
  example::EchoService_Stub stub(channel.get());
  example::EchoRequest request;
  request.set_message("queued");
  example::EchoResponse response;
  Controller controller;
  std::atomic<int> runs{0};
  std::binary_semaphore finished{0};
  std::string thread_name;
  auto* done = testing::once([&] {
    thread_name = current_thread_name();
    runs.fetch_add(1);
    finished.release();
  });
  stub.Echo(&controller, &request, &response, done);
  ASSERT_TRUE(finished.try_acquire_for(testing::scaled(milliseconds(5000))));
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(response.message(), "queued");
  EXPECT_EQ(thread_name.rfind("percore-cb-", 0), 0u) << thread_name;
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(runs.load(), 1);
}

TEST(ChannelTest, InlineCallbackRunsOnTheReceiveThread) {
  TestServer server;
  ChannelOptions options = small_options();
  options.completion = CompletionMode::kInlineCallback;
  auto channel = open_channel(server.address(), options);
  example::EchoService_Stub stub(channel.get());
  example::EchoRequest request;
  request.set_message("inline");
  example::EchoResponse response;
  Controller controller;
  std::binary_semaphore finished{0};
  std::string thread_name;
  auto* done = testing::once([&] {
    thread_name = current_thread_name();
    finished.release();
  });
  stub.Echo(&controller, &request, &response, done);
  ASSERT_TRUE(finished.try_acquire_for(testing::scaled(milliseconds(5000))));
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(thread_name.rfind("percore-recv-", 0), 0u) << thread_name;
}

TEST(ChannelTest, FutureDoneBecomesReadyWhenTheCallEnds) {
  TestServer server;
  auto channel = open_channel(server.address());
  example::EchoService_Stub stub(channel.get());
  example::EchoRequest request;
  request.set_message("future");
  example::EchoResponse response;
  Controller controller;
  FutureDone done;
  stub.Echo(&controller, &request, &response, &done);
  ASSERT_EQ(done.future().wait_for(testing::scaled(milliseconds(5000))), std::future_status::ready);
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  EXPECT_EQ(response.message(), "future");
}

TEST(ChannelTest, HundredThousandAsyncCallsEachEndOnceWithTheirOwnPayload) {
  TestServer server;
  auto channel = open_channel(server.address());
  example::EchoService_Stub stub(channel.get());
  constexpr int kCalls = 100000;
  constexpr int kInFlight = 256;
  testing::CallLedger ledger(kCalls);
  std::counting_semaphore<kInFlight> permits(kInFlight);
  std::atomic<int> failures{0};
  std::atomic<int> wrong_payloads{0};

  struct Call : google::protobuf::Closure {
    int id = 0;
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
    testing::CallLedger* ledger = nullptr;
    std::counting_semaphore<kInFlight>* permits = nullptr;
    std::atomic<int>* failures = nullptr;
    std::atomic<int>* wrong_payloads = nullptr;
    void Run() override {
      if (controller.Failed()) {
        failures->fetch_add(1);
      } else if (response.message() != request.message()) {
        wrong_payloads->fetch_add(1);
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
    call->request.set_message("payload of call " + std::to_string(id));
    call->ledger = &ledger;
    call->permits = &permits;
    call->failures = &failures;
    call->wrong_payloads = &wrong_payloads;
    stub.Echo(&call->controller, &call->request, &call->response, call);
  }
  for (int i = 0; i < kInFlight; ++i) {
    ASSERT_TRUE(permits.try_acquire_for(testing::scaled(milliseconds(10000))));
  }
  EXPECT_EQ(ledger.violations(), "");
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(wrong_payloads.load(), 0);
  EXPECT_EQ(channel->calls_in_flight(), 0u);
}

TEST(ChannelTest, SlowHandlerTimesOutWithinTheDeadlinePlusSlack) {
  TestServer server;
  auto channel = open_channel(server.address());
  percore::test::TestService_Stub stub(channel.get());
  percore::test::SleepRequest request;
  request.set_milliseconds(600);
  percore::test::SleepResponse response;
  Controller controller;
  controller.set_timeout_ms(200);
  const auto start = Clock::now();
  stub.Sleep(&controller, &request, &response, nullptr);
  const auto elapsed = Clock::now() - start;
  EXPECT_EQ(controller.ErrorCode(), 1008) << controller.ErrorText();
  EXPECT_GE(elapsed, milliseconds(200));
  EXPECT_LT(elapsed, milliseconds(200) + testing::scaled(milliseconds(50)));
}

TEST(ChannelTest, RemoteErrorCodesReachTheCaller) {
  TestServer server;
  auto channel = open_channel(server.address());
  percore::test::TestService_Stub stub(channel.get());
  percore::test::FailRequest request;
  request.set_code(1004);
  request.set_text("not you");
  percore::test::FailResponse response;
  Controller controller;
  stub.Fail(&controller, &request, &response, nullptr);
  EXPECT_EQ(controller.ErrorCode(), 1004);
  EXPECT_EQ(controller.ErrorText(), "not you");

  // A service the server does not host: 1001 from the server.
  Server bare;
  ASSERT_TRUE(bare.Start("127.0.0.1:0"));
  auto bare_channel = open_channel("127.0.0.1:" + std::to_string(bare.port()));
  percore::test::TestService_Stub bare_stub(bare_channel.get());
  Controller unknown;
  bare_stub.Fail(&unknown, &request, &response, nullptr);
  EXPECT_EQ(unknown.ErrorCode(), 1001);
  EXPECT_NE(unknown.ErrorText().find("percore.test.TestService"), std::string::npos);
}

TEST(ChannelTest, TooLargeRequestFailsWith1003BeforeAnythingIsSent) {
  TestServer server;
  ChannelOptions options = small_options();
  options.max_body_bytes = 1024;
  auto channel = open_channel(server.address(), options);
  example::EchoService_Stub stub(channel.get());
  example::EchoRequest request;
  request.set_message(std::string(2000, 'x'));
  example::EchoResponse response;
  Controller controller;
  stub.Echo(&controller, &request, &response, nullptr);
  EXPECT_EQ(controller.ErrorCode(), 1003);
  EXPECT_NE(controller.ErrorText().find("max_body_bytes"), std::string::npos);
  EXPECT_EQ(server.server().stats().methods.at("example.EchoService.Echo").calls, 0u);
}

TEST(ChannelTest, InFlightLimitAnswers1011AndLosesNothing) {
  TestServer server(4);
  ChannelOptions options = small_options();
  options.private_groups = ClientRuntimeOptions{.groups = 1, .max_inflight_per_group = 8};
  auto channel = open_channel(server.address(), options);
  percore::test::TestService_Stub stub(channel.get());
  constexpr int kCalls = 100;
  testing::CallLedger ledger(kCalls);
  std::mutex mutex;
  std::map<int32_t, int> codes;
  std::counting_semaphore<kCalls> ended(0);
  struct Call {
    Controller controller;
    percore::test::SleepRequest request;
    percore::test::SleepResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int id = 0; id < kCalls; ++id) {
    calls.push_back(std::make_unique<Call>());
    Call* call = calls.back().get();
    call->request.set_milliseconds(300);
    stub.Sleep(&call->controller, &call->request, &call->response, testing::once([&, call, id] {
      {
        std::lock_guard lock(mutex);
        ++codes[call->controller.ErrorCode()];
      }
      ledger.record_end(static_cast<size_t>(id));
      ended.release();
    }));
  }
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(ended.try_acquire_for(testing::scaled(milliseconds(10000))));
  }
  EXPECT_EQ(ledger.violations(), "");
  EXPECT_EQ(codes[0], 8);
  EXPECT_EQ(codes[1011], kCalls - 8);
}

TEST(ChannelTest, SlowQueuedCallbacksHoldTheInFlightLimitInsteadOfPilingUp) {
  TestServer server;
  ChannelOptions options = small_options();
  options.private_groups = ClientRuntimeOptions{.groups = 1, .max_inflight_per_group = 4};
  auto channel = open_channel(server.address(), options);
  example::EchoService_Stub stub(channel.get());
  std::binary_semaphore release_callbacks{0};
  std::atomic<int> callbacks_done{0};
  struct Call {
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < 4; ++i) {
    calls.push_back(std::make_unique<Call>());
    calls.back()->request.set_message("slow callback");
    // The first callback blocks the group's only callback thread.
    stub.Echo(&calls.back()->controller, &calls.back()->request, &calls.back()->response,
              testing::once([&, i] {
                if (i == 0)
                  release_callbacks.acquire();
                callbacks_done.fetch_add(1);
              }));
  }
  // The replies are in, the callbacks wait: their calls still count.
  ASSERT_TRUE(
      testing::eventually([&] { return channel->calls_in_flight() == 4; }, milliseconds(3000)));
  std::this_thread::sleep_for(milliseconds(50));
  Controller fifth;
  example::EchoRequest request;
  request.set_message("one too many");
  example::EchoResponse response;
  stub.Echo(&fifth, &request, &response, nullptr);
  EXPECT_EQ(fifth.ErrorCode(), 1011);
  release_callbacks.release();
  EXPECT_TRUE(testing::eventually([&] { return callbacks_done.load() == 4; }, milliseconds(3000)));
  EXPECT_TRUE(
      testing::eventually([&] { return channel->calls_in_flight() == 0; }, milliseconds(3000)));
  for (const auto& call : calls)
    EXPECT_FALSE(call->controller.Failed());
}

TEST(ChannelTest, NoServerAvailableFailsFastWith112) {
  // A port nobody listens on: bind one, note it, close it.
  int port = 0;
  {
    Server probe;
    ASSERT_TRUE(probe.Start("127.0.0.1:0"));
    port = probe.port();
  }
  auto channel = open_channel("127.0.0.1:" + std::to_string(port));
  example::EchoService_Stub stub(channel.get());
  for (int i = 0; i < 3; ++i) {
    example::EchoRequest request;
    request.set_message("anyone?");
    example::EchoResponse response;
    Controller controller;
    const auto start = Clock::now();
    stub.Echo(&controller, &request, &response, nullptr);
    EXPECT_EQ(controller.ErrorCode(), 112) << controller.ErrorText();
    EXPECT_LT(Clock::now() - start, testing::scaled(milliseconds(200)));
  }
}

TEST(ChannelTest, CallAnswered2003IsSentAgainToAnotherServer) {
  TestServer stopping(1);
  TestServer healthy;
  auto channel = open_channel("list://" + stopping.address() + "," + healthy.address());
  // Keep `stopping` inside its grace period: a long call holds Stop() there,
  // and meanwhile every new request is answered 2003.
  percore::test::TestService_Stub stub(channel.get());
  std::thread long_call([&] {
    // Straight to `stopping`, through its own channel.
    auto direct = open_channel(stopping.address());
    percore::test::TestService_Stub direct_stub(direct.get());
    percore::test::SleepRequest request;
    request.set_milliseconds(1500);
    percore::test::SleepResponse response;
    Controller controller;
    direct_stub.Sleep(&controller, &request, &response, nullptr);
  });
  while (stopping.test_service().sleeps_started() == 0)
    std::this_thread::sleep_for(milliseconds(2));
  std::thread stopper([&] { stopping.server().Stop(milliseconds(3000)); });
  std::this_thread::sleep_for(milliseconds(50));

  example::EchoService_Stub echo(channel.get());
  int retried = 0;
  for (int i = 0; i < 40; ++i) {
    example::EchoRequest request;
    request.set_message("retry me");
    example::EchoResponse response;
    Controller controller;
    echo.Echo(&controller, &request, &response, nullptr);
    ASSERT_FALSE(controller.Failed()) << controller.ErrorCode() << " " << controller.ErrorText();
    EXPECT_EQ(controller.remote_side(), healthy.address());
    retried += controller.retried_count();
  }
  EXPECT_GT(retried, 0) << "some calls should have met the stopping server first";
  stopper.join();
  long_call.join();
}

TEST(ChannelTest, DestroyingTheChannelEndsPendingCallsWith125) {
  TestServer server;
  auto channel = open_channel(server.address());
  percore::test::TestService_Stub stub(channel.get());
  constexpr int kCalls = 20;
  testing::CallLedger ledger(kCalls);
  std::atomic<int> cancelled{0};
  struct Call {
    Controller controller;
    percore::test::SleepRequest request;
    percore::test::SleepResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int id = 0; id < kCalls; ++id) {
    calls.push_back(std::make_unique<Call>());
    calls.back()->request.set_milliseconds(800);
    Call* call = calls.back().get();
    stub.Sleep(&call->controller, &call->request, &call->response, testing::once([&, call, id] {
      if (call->controller.ErrorCode() == 125)
        cancelled.fetch_add(1);
      ledger.record_end(static_cast<size_t>(id));
    }));
  }
  std::this_thread::sleep_for(milliseconds(50));
  const auto start = Clock::now();
  channel.reset();
  EXPECT_LT(Clock::now() - start, testing::scaled(milliseconds(1000)));
  // Every callback ran before the destructor returned.
  EXPECT_EQ(ledger.violations(), "");
  EXPECT_EQ(cancelled.load(), kCalls);
  server.server().Stop(milliseconds(10));
}

}  // namespace
}  // namespace percore
