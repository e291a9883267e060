// percore-gateway in front of backends found through a real ZooKeeper, under
// HTTP load with a ledger at the HTTP clients: a backend killed, another
// added, a third stopped gracefully; and the pipeline gateway → stage A →
// stage B with a stage-B server killed. Every request is answered exactly
// once, with its own answer.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test/integration/discovery_fixture.h"
#include "test/support/child_process.h"
#include "test/support/echo_server.h"
#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/controller.h>
#include <percore/proto/echo.pb.h>
#include "test/support/eventually.h"
#include "test/support/http_client.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::HttpClient;

struct GatewayProcess {
  std::unique_ptr<testing::ChildProcess> process;
  int port = 0;
};

std::optional<GatewayProcess> start_gateway(const std::vector<std::string>& routes) {
  std::vector<std::string> argv = {testing::built_program("examples/percore-gateway"), "--listen",
                                   "127.0.0.1:0", "--io-threads", "1", "--groups", "1",
                                   "--default-timeout-ms", "3000"};
  for (const std::string& route : routes) {
    argv.push_back("--route");
    argv.push_back(route);
  }
  std::string error;
  GatewayProcess gateway;
  gateway.process = testing::ChildProcess::start(argv, &error);
  if (gateway.process == nullptr)
    return std::nullopt;
  const auto ready = gateway.process->wait_for_line("percore-gateway ready on", std::chrono::seconds(10));
  if (!ready)
    return std::nullopt;
  gateway.port = std::atoi(ready->c_str() + ready->find(':') + 1);
  return gateway;
}

// HTTP clients issuing numbered requests, each on its own keep-alive
// connection, recording every answer by request id.
class HttpLoad {
 public:
  struct Outcome {
    unsigned status = 0;  // 0: no answer (a violation)
    int code = 0;         // The JSON error's code, for a non-200.
    int answers = 0;
    bool matched = false;  // A 200 carried this request's own text.
  };
  using MakeRequest = std::function<std::pair<std::string, std::string>(size_t id)>;
  // `check` says whether a 200 body answers request `id`.
  using Check = std::function<bool(size_t id, const nlohmann::json& body)>;

  HttpLoad(int port, int clients, MakeRequest make, Check check)
      : port_(port), make_(std::move(make)), check_(std::move(check)), outcomes_(1000000) {
    for (int i = 0; i < clients; ++i)
      threads_.emplace_back([this] { run(); });
  }
  ~HttpLoad() { stop(); }

  void stop() {
    stop_.store(true);
    for (std::thread& thread : threads_) {
      if (thread.joinable())
        thread.join();
    }
  }
  size_t issued() const { return next_.load(); }
  bool wait_issued(size_t count) {
    return testing::eventually([&] { return issued() >= count; }, milliseconds(20000));
  }
  std::vector<Outcome> outcomes() {
    std::lock_guard lock(mutex_);
    return std::vector<Outcome>(outcomes_.begin(), outcomes_.begin() + issued());
  }

 private:
  void run() {
    auto client = std::make_unique<HttpClient>("127.0.0.1", port_, milliseconds(10000));
    while (!stop_.load()) {
      const size_t id = next_.fetch_add(1);
      if (id >= outcomes_.size())
        return;
      const auto [target, body] = make_(id);
      const auto answer = client->request("POST", target, body);
      std::lock_guard lock(mutex_);
      Outcome& outcome = outcomes_[id];
      if (!answer) {
        // No answer: recorded as such; a new connection for the next one.
        client = std::make_unique<HttpClient>("127.0.0.1", port_, milliseconds(10000));
        continue;
      }
      ++outcome.answers;
      outcome.status = answer->status;
      const nlohmann::json json = nlohmann::json::parse(answer->body, nullptr, false);
      if (answer->status == 200) {
        outcome.matched = check_(id, json);
      } else if (json.is_object()) {
        outcome.code = json.value("code", 0);
      }
      if (!answer->keep_alive)
        client = std::make_unique<HttpClient>("127.0.0.1", port_, milliseconds(10000));
    }
  }

  const int port_;
  MakeRequest make_;
  Check check_;
  std::mutex mutex_;
  std::vector<Outcome> outcomes_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Calls answered by a server, from its /metrics (-1: unreachable).
double calls_answered(int port, const std::string& method) {
  const auto metrics = testing::http_get(port, "/metrics");
  if (!metrics || metrics->status != 200)
    return -1;
  const std::string prefix =
      "percore_server_calls_total{method=\"" + method + "\",code=\"0\"} ";
  const size_t at = metrics->body.find(prefix);
  return at == std::string::npos ? 0 : std::stod(metrics->body.substr(at + prefix.size()));
}

class GatewayTest : public DiscoveryTest {};

// Attachments go through the gateway both ways, each call with its own
// (baidu_std; a backend listed by address, no ZooKeeper needed).
TEST(GatewayAttachmentTest, EveryCallsAttachmentsGoThroughBothWays) {
  testing::EchoServer backend;
  std::optional<GatewayProcess> gateway =
      start_gateway({"example.EchoService=" + backend.address()});
  ASSERT_TRUE(gateway.has_value());
  Channel channel;
  ChannelOptions options;
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(5000)).count());
  ASSERT_TRUE(channel.Init("127.0.0.1:" + std::to_string(gateway->port), options));
  example::EchoService_Stub stub(&channel);
  constexpr int kCalls = 40;
  std::map<int, std::string> outcome;  // Per call id.
  for (int id = 0; id < kCalls; ++id) {
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
    request.set_message("call " + std::to_string(id));
    // Empty, small and large (past the copy threshold, and past 64 KiB).
    const size_t size = id % 4 == 0 ? 0 : id % 4 == 1 ? 10 : id % 4 == 2 ? 5000 : 100000;
    const std::string attachment(size, static_cast<char>('a' + id % 26));
    controller.request_attachment() = attachment;
    stub.Echo(&controller, &request, &response, nullptr);
    if (controller.Failed()) {
      outcome[id] = "failed: " + controller.ErrorText();
    } else if (response.message() != request.message()) {
      outcome[id] = "wrong message";
    } else if (controller.response_attachment() != attachment) {
      outcome[id] = "attachment of " + std::to_string(controller.response_attachment().size()) +
                    " bytes, sent " + std::to_string(attachment.size());
    } else {
      outcome[id] = "ok";
    }
  }
  for (int id = 0; id < kCalls; ++id)
    EXPECT_EQ(outcome[id], "ok") << "call " << id;
  gateway->process->send_signal(SIGTERM);
  EXPECT_TRUE(gateway->process->wait_exit(testing::scaled(milliseconds(10000))).has_value());
}

TEST_F(GatewayTest, BackendsKilledAddedAndStoppedUnderLoadEveryRequestAnsweredOnce) {
  auto first = start_registered_server();
  auto second = start_registered_server();
  ASSERT_TRUE(first.has_value() && second.has_value());
  auto gateway = start_gateway({std::string("example.EchoService=") + echo_target()});
  ASSERT_TRUE(gateway.has_value());
  HttpLoad load(
      gateway->port, 4,
      [](size_t id) {
        return std::pair<std::string, std::string>(
            "/example.EchoService/Echo", nlohmann::json{{"message", std::string("r") + std::to_string(id)}}.dump());
      },
      [](size_t id, const nlohmann::json& body) {
        return body.is_object() && body.value("message", "") == std::string("r") + std::to_string(id);
      });
  ASSERT_TRUE(load.wait_issued(1000));

  // kill -9: only the calls in flight on it may fail (502, code 1009).
  first->process->send_signal(SIGKILL);
  ASSERT_TRUE(first->process->wait_exit(milliseconds(5000)).has_value());
  ASSERT_TRUE(load.wait_issued(load.issued() + 1000));
  // A new backend is found and takes calls.
  auto third = start_registered_server();
  ASSERT_TRUE(third.has_value());
  EXPECT_TRUE(testing::eventually(
      [&] { return calls_answered(third->port, "example.EchoService.Echo") > 0; },
      milliseconds(5000)))
      << "the added backend got no call";
  // A graceful stop (deregister, drain) fails nothing.
  const size_t before_stop = load.issued();
  second->process->send_signal(SIGTERM);
  ASSERT_TRUE(second->process->wait_exit(testing::scaled(milliseconds(10000))).has_value());
  ASSERT_TRUE(load.wait_issued(load.issued() + 1000));
  load.stop();

  size_t failed = 0;
  const std::vector<HttpLoad::Outcome> outcomes = load.outcomes();
  for (size_t id = 0; id < outcomes.size(); ++id) {
    const HttpLoad::Outcome& outcome = outcomes[id];
    ASSERT_EQ(outcome.answers, 1) << "request " << id << " answered " << outcome.answers << " times";
    if (outcome.status == 200) {
      EXPECT_TRUE(outcome.matched) << "request " << id << " got another request's answer";
      continue;
    }
    ++failed;
    EXPECT_EQ(outcome.status, 502u) << "request " << id;
    EXPECT_EQ(outcome.code, 1009) << "request " << id;
    EXPECT_LT(id, before_stop) << "request " << id << " failed during the graceful stop";
  }
  std::printf("%zu requests through the gateway, %zu failed (502)\n", outcomes.size(), failed);
  // At most the calls in flight on the killed backend (4 clients).
  EXPECT_LE(failed, 4u);
  EXPECT_GE(outcomes.size(), 3000u);
  // The gateway's own /metrics count what its Channel did.
  const auto metrics = testing::http_get(gateway->port, "/metrics");
  ASSERT_TRUE(metrics.has_value());
  EXPECT_NE(metrics->body.find(std::string("percore_client_calls_total{target=\"") + echo_target() + "\",code=\"0\"}"),
            std::string::npos);
  gateway->process->send_signal(SIGTERM);
  EXPECT_TRUE(gateway->process->wait_exit(testing::scaled(milliseconds(10000))).has_value());
}

TEST_F(GatewayTest, PipelineThroughTheGatewayLosesNoRequestWhenAStageBServerDies) {
  const std::string stage_b = registry() + "/pipeline.StageB";
  auto b1 = start_registered_server({"--stage-b"});
  auto b2 = start_registered_server({"--stage-b"});
  ASSERT_TRUE(b1.has_value() && b2.has_value());
  auto a = start_registered_server({"--stage-a-next", stage_b});
  ASSERT_TRUE(a.has_value());
  auto gateway = start_gateway({std::string("pipeline.StageA=") + registry() + "/pipeline.StageA"});
  ASSERT_TRUE(gateway.has_value());
  HttpLoad load(
      gateway->port, 4,
      [](size_t id) {
        return std::pair<std::string, std::string>(
            "/pipeline.StageA/Process",
            nlohmann::json{{"text", std::string("r") + std::to_string(id)}, {"stageBDelayMs", 2}}.dump());
      },
      [](size_t id, const nlohmann::json& body) {
        return body.is_object() && body.value("text", "") == std::string("A(R") + std::to_string(id) + ")";
      });
  ASSERT_TRUE(load.wait_issued(500));
  b1->process->send_signal(SIGKILL);
  ASSERT_TRUE(b1->process->wait_exit(milliseconds(5000)).has_value());
  ASSERT_TRUE(load.wait_issued(load.issued() + 1000));
  load.stop();

  size_t failed = 0;
  const std::vector<HttpLoad::Outcome> outcomes = load.outcomes();
  for (size_t id = 0; id < outcomes.size(); ++id) {
    const HttpLoad::Outcome& outcome = outcomes[id];
    ASSERT_EQ(outcome.answers, 1) << "request " << id << " answered " << outcome.answers << " times";
    if (outcome.status == 200) {
      EXPECT_TRUE(outcome.matched) << "request " << id << " got another request's answer";
      continue;
    }
    ++failed;
    // Stage B's broken connection reaches the HTTP client through A and the
    // gateway with its code.
    EXPECT_EQ(outcome.status, 502u) << "request " << id;
    EXPECT_EQ(outcome.code, 1009) << "request " << id;
  }
  std::printf("%zu requests through gateway, A and B, %zu failed (502)\n", outcomes.size(), failed);
  EXPECT_LE(failed, 4u);
  EXPECT_GE(outcomes.size(), 1500u);
}

}  // namespace
}  // namespace percore
