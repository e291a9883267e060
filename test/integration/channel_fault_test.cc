// The client proxy against real percore-server processes that die, freeze and
// come back. Each test counts outcomes per call id: nothing lost, nothing
// doubled, nothing hung.

#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <semaphore>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include "test/support/call_ledger.h"
#include "test/support/child_process.h"
#include "test/support/echo_load.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::string address_of(const testing::ServerProcess& server) {
  return "127.0.0.1:" + std::to_string(server.port);
}

TEST(ChannelFaultTest, KillNineOneOfTwoServersUnderLoad) {
  auto first = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  auto second = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(first && second);
  const std::string first_address = address_of(*first);
  const std::string second_address = address_of(*second);

  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  const milliseconds timeout = testing::scaled(milliseconds(3000));
  options.timeout_ms = static_cast<int>(timeout.count());
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + first_address + "," + second_address, options));
  testing::EchoLoad load(channel, 2000000, 128);

  load.start_background();
  ASSERT_TRUE(load.wait_issued(10000));
  // Frozen for a moment first, so that calls are surely in flight on it when
  // it dies: a fast echo server otherwise answers all it has read before the
  // signal lands, and there is nothing left to fail.
  first->process->send_signal(SIGSTOP);
  std::this_thread::sleep_for(milliseconds(50));
  const Clock::time_point killed_at = Clock::now();
  first->process->send_signal(SIGKILL);
  ASSERT_TRUE(first->process->wait_exit(milliseconds(5000)).has_value());
  ASSERT_TRUE(load.wait_issued(load.issued() + 10000));

  // Back on the same port: the channel must find it again by itself.
  auto restarted = testing::start_server_process(
      {"--io-threads", "1", "--workers", "1", "--listen", first_address});
  ASSERT_TRUE(restarted.has_value());
  const Clock::time_point restarted_at = Clock::now();
  std::optional<Clock::time_point> reused;
  while (Clock::now() - restarted_at < testing::scaled(milliseconds(3000)) && !reused) {
    std::this_thread::sleep_for(milliseconds(20));
    reused = load.first_answer_from(first_address, restarted_at);
  }
  load.stop_background();
  load.wait_all();

  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  const std::vector<testing::CallOutcome> outcomes = load.outcomes();
  ASSERT_GE(outcomes.size(), 20000u);
  const std::map<int32_t, int> codes = testing::count_codes(outcomes);
  for (const auto& [code, count] : codes) {
    EXPECT_TRUE(code == 0 || code == 1009) << count << " calls ended with " << code;
  }
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.code != 0 && outcome.code != 1009) {
      ADD_FAILURE() << "e.g. code " << outcome.code << " from " << outcome.remote_side;
      break;
    }
  }
  EXPECT_GT(codes.count(1009) ? codes.at(1009) : 0, 0) << "calls in flight on the killed server";
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.code != 1009)
      continue;
    EXPECT_EQ(outcome.remote_side, first_address);
    // Failed at once, not at the deadline.
    EXPECT_LT(outcome.latency_us, std::chrono::microseconds(timeout).count() / 3);
  }
  // Between the kill and the restart, only the live server answered.
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.code == 0 && outcome.ended_at > killed_at + milliseconds(50) &&
        outcome.ended_at < restarted_at) {
      EXPECT_EQ(outcome.remote_side, second_address);
    }
  }
  ASSERT_TRUE(reused.has_value()) << "the restarted server was not used again within 3 s";
  EXPECT_LT(*reused - restarted_at, testing::scaled(milliseconds(3000)));
}

TEST(ChannelFaultTest, FrozenServerTimesOutWhileTheOtherGoesOn) {
  auto frozen = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  auto healthy = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(frozen && healthy);
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.timeout_ms = 300;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + address_of(*frozen) + "," + address_of(*healthy), options));
  testing::EchoLoad load(channel, 1000000, 32);
  load.start_background();
  ASSERT_TRUE(load.wait_issued(500));
  frozen->process->send_signal(SIGSTOP);
  const Clock::time_point stopped_at = Clock::now();
  std::this_thread::sleep_for(milliseconds(700));
  load.stop_background();
  load.wait_all();
  frozen->process->send_signal(SIGCONT);

  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  const std::vector<testing::CallOutcome> outcomes = load.outcomes();
  const std::map<int32_t, int> codes = testing::count_codes(outcomes);
  for (const auto& [code, count] : codes) {
    EXPECT_TRUE(code == 0 || code == 1008) << count << " calls ended with " << code;
  }
  EXPECT_GT(codes.count(1008) ? codes.at(1008) : 0, 0) << "the frozen server's calls time out";
  int answered_after_freeze = 0;
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.code == 1008) {
      EXPECT_EQ(outcome.remote_side, address_of(*frozen));
    }
    if (outcome.code == 0 && outcome.ended_at > stopped_at + milliseconds(50)) {
      EXPECT_EQ(outcome.remote_side, address_of(*healthy));
      ++answered_after_freeze;
    }
  }
  EXPECT_GT(answered_after_freeze, 2000);
}

TEST(ChannelFaultTest, AllServersDownFailsFastWith112) {
  auto only = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(only.has_value());
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  Channel channel;
  ASSERT_TRUE(channel.Init(address_of(*only), options));
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message("up?");
  example::EchoResponse response;
  Controller warmup;
  stub.Echo(&warmup, &request, &response, nullptr);
  ASSERT_FALSE(warmup.Failed()) << warmup.ErrorText();

  only->process->send_signal(SIGKILL);
  ASSERT_TRUE(only->process->wait_exit(milliseconds(5000)).has_value());
  std::this_thread::sleep_for(milliseconds(100));  // The client sees the EOF.
  for (int i = 0; i < 20; ++i) {
    Controller controller;
    const auto start = Clock::now();
    stub.Echo(&controller, &request, &response, nullptr);
    EXPECT_EQ(controller.ErrorCode(), 112) << controller.ErrorText();
    EXPECT_LT(Clock::now() - start, testing::scaled(milliseconds(100)));
  }
}

}  // namespace
}  // namespace percore
