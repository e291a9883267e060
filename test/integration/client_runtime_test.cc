// Channels share thread groups: many Channels on one ClientRuntime start no
// more threads than one, every call of every Channel ends exactly once under
// load, and one Channel going away ends only its own calls.

#include <dirent.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "client_proxy/channel.h"
#include "client_proxy/client_runtime.h"
#include "examples/echo_service.h"
#include "proto/echo.pb.h"
#include "proto/error_code.h"
#include "server_io/server.h"
#include "test/support/echo_load.h"
#include "test/support/eventually.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;

// The threads of this process now (/proc/self/task).
int thread_count() {
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr)
    return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] != '.')
      ++count;
  }
  ::closedir(tasks);
  return count;
}

// Ten echo servers, each its own percore::Server on 127.0.0.1:0.
class TenServers {
 public:
  static constexpr int kServers = 10;

  TenServers() {
    for (int i = 0; i < kServers; ++i) {
      ServerOptions options;
      options.io_threads = 1;
      options.workers = 1;
      auto server = std::make_unique<Server>(options);
      server->AddService(&echo_);
      std::string error;
      EXPECT_TRUE(server->Start("127.0.0.1:0", &error)) << error;
      servers_.push_back(std::move(server));
    }
  }
  std::string address(int i) const {
    return "127.0.0.1:" + std::to_string(servers_[static_cast<size_t>(i)]->port());
  }
  const Server& server(int i) const { return *servers_[static_cast<size_t>(i)]; }

 private:
  examples::EchoServiceImpl echo_;
  std::vector<std::unique_ptr<Server>> servers_;
};

std::unique_ptr<Channel> open_channel(const std::string& address, ChannelOptions options) {
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(5000)).count());
  auto channel = std::make_unique<Channel>();
  std::string error;
  EXPECT_TRUE(channel->Init(address, options, &error)) << error;
  return channel;
}

bool echo_once(Channel& channel, const std::string& text) {
  example::EchoService_Stub stub(&channel);
  Controller controller;
  example::EchoRequest request;
  request.set_message(text);
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  return !controller.Failed() && response.message() == text;
}

TEST(ClientRuntimeTest, TenChannelsToTenServersOnOneRuntimeStartNoMoreThreadsThanOne) {
  TenServers servers;
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 2});
  const int with_runtime = thread_count();

  std::vector<std::unique_ptr<Channel>> channels;
  channels.push_back(open_channel(servers.address(0), options));
  ASSERT_TRUE(echo_once(*channels[0], "first"));
  const int with_one_channel = thread_count();

  for (int i = 1; i < TenServers::kServers; ++i) {
    channels.push_back(open_channel(servers.address(i), options));
    ASSERT_TRUE(echo_once(*channels.back(), "channel " + std::to_string(i)));
  }
  EXPECT_EQ(thread_count(), with_one_channel);
  EXPECT_EQ(with_one_channel, with_runtime);
  for (const auto& channel : channels)
    EXPECT_EQ(channel->runtime(), options.runtime);
}

// The counter-check: Channels that ask for private groups do start threads
// of their own (so the test above could fail).
TEST(ClientRuntimeTest, PrivateGroupsStartThreadsPerChannel) {
  TenServers servers;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  const int before = thread_count();
  auto first = open_channel(servers.address(0), options);
  ASSERT_TRUE(echo_once(*first, "a"));
  const int per_channel = thread_count() - before;
  EXPECT_GE(per_channel, 3);  // Send, receive and a callback thread.
  auto second = open_channel(servers.address(1), options);
  ASSERT_TRUE(echo_once(*second, "b"));
  EXPECT_EQ(thread_count() - before, 2 * per_channel);
  EXPECT_NE(first->runtime(), second->runtime());
}

TEST(ClientRuntimeTest, ChannelsWithDefaultOptionsShareTheProcessWideRuntime) {
  TenServers servers;
  auto first = open_channel(servers.address(0), ChannelOptions{});
  ASSERT_TRUE(echo_once(*first, "a"));
  const int with_one = thread_count();
  auto second = open_channel(servers.address(1), ChannelOptions{});
  ASSERT_TRUE(echo_once(*second, "b"));
  EXPECT_EQ(thread_count(), with_one);
  EXPECT_EQ(first->runtime(), ClientRuntime::Default());
  EXPECT_EQ(second->runtime(), first->runtime());
}

// Ten calling threads, one per Channel, keep 32 asynchronous calls each in
// flight over ten Channels on one runtime of two groups: every call ends
// exactly once, OK, with its own payload, from its own Channel's server.
TEST(ClientRuntimeTest, TenChannelsUnderLoadOnOneRuntimeEndEveryCallOnce) {
  TenServers servers;
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 2});
  constexpr size_t kCallsPerChannel = 2000;
  std::vector<std::unique_ptr<Channel>> channels;
  std::vector<std::unique_ptr<testing::EchoLoad>> loads;
  for (int i = 0; i < TenServers::kServers; ++i) {
    channels.push_back(open_channel(servers.address(i), options));
    loads.push_back(std::make_unique<testing::EchoLoad>(*channels.back(), kCallsPerChannel, 32));
  }
  std::vector<std::thread> callers;
  for (auto& load : loads)
    callers.emplace_back([&load] { load->issue(kCallsPerChannel); });
  for (auto& caller : callers)
    caller.join();
  for (int i = 0; i < TenServers::kServers; ++i) {
    testing::EchoLoad& load = *loads[static_cast<size_t>(i)];
    load.wait_all();
    ASSERT_EQ(load.issued(), kCallsPerChannel);
    EXPECT_EQ(load.ledger().violations(), "") << "channel " << i;
    size_t not_ok = 0;
    for (const testing::CallOutcome& outcome : load.outcomes()) {
      if (outcome.code != 0 || outcome.remote_side != servers.address(i))
        ++not_ok;
    }
    EXPECT_EQ(not_ok, 0u) << "channel " << i;
    EXPECT_EQ(servers.server(i).stats().methods.at("example.EchoService.Echo").calls,
              kCallsPerChannel)
        << "server " << i;
    EXPECT_EQ(channels[static_cast<size_t>(i)]->calls_in_flight(), 0u);
  }
}

// Destroying one Channel ends its own calls (125) and closes its
// connections; the other Channels on the runtime go on.
TEST(ClientRuntimeTest, DestroyingOneChannelLeavesTheOthersOnTheRuntimeWorking) {
  TenServers servers;
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 2});
  auto kept = open_channel(servers.address(0), options);
  auto going = open_channel(servers.address(1), options);
  ASSERT_TRUE(echo_once(*kept, "kept"));
  ASSERT_TRUE(echo_once(*going, "going"));
  EXPECT_TRUE(testing::eventually(
      [&] { return servers.server(1).stats().connections_open > 0; }, milliseconds(2000)));
  going.reset();
  EXPECT_TRUE(testing::eventually(
      [&] { return servers.server(1).stats().connections_open == 0; }, milliseconds(5000)));
  for (int i = 0; i < 100; ++i)
    ASSERT_TRUE(echo_once(*kept, "after " + std::to_string(i)));
  EXPECT_GT(servers.server(0).stats().connections_open, 0u);
}

}  // namespace
}  // namespace percore
