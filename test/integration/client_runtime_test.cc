// Channels share thread groups: many Channels on one ClientRuntime start no
// more threads than one, every call of every Channel ends exactly once under
// load, and one Channel going away ends only its own calls.

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <future>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/client_runtime.h>
#include <percore/client_proxy/detail/thread_group.h>
#include "examples/echo_service.h"
#include <percore/proto/echo.pb.h>
#include <percore/proto/error_code.h>
#include <percore/proto/new_callback.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/server_io/server.h>
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

// A listening socket on 127.0.0.1:0. With `forge` false it never accepts:
// connects complete (the backlog) and requests go unanswered. With `forge`
// true one thread accepts one connection, reads its first request, then
// answers every other correlation id a small group can have (generations
// 0..3, slots 0..15) with "forged" before answering its own: a server that
// tries to end calls of other Channels sharing the group.
class RawListener {
 public:
  explicit RawListener(bool forge) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    socklen_t length = sizeof(address);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    if (forge)
      thread_ = std::thread([this] { forge_answers(); });
  }
  ~RawListener() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable())
      thread_.join();
    if (peer_ >= 0)
      ::close(peer_);
    ::close(fd_);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  static std::string response(int64_t correlation_id, const std::string& text) {
    wire::RpcMeta meta;
    meta.set_correlation_id(correlation_id);
    meta.mutable_response()->set_error_code(0);
    example::EchoResponse message;
    message.set_message(text);
    std::string out;
    EXPECT_EQ(encode_frame_head(meta, &message, 0, 1 << 20, out), EncodeStatus::kOk);
    return out;
  }

  void forge_answers() {
    peer_ = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (peer_ < 0)
      return;
    FrameDecoder decoder;
    Frame frame;
    char buffer[4096];
    while (decoder.next(frame) != DecodeStatus::kFrame) {
      const ssize_t bytes = ::recv(peer_, buffer, sizeof(buffer), 0);
      if (bytes <= 0)
        return;
      decoder.feed(std::string_view(buffer, static_cast<size_t>(bytes)));
    }
    const int64_t own = frame.meta.correlation_id();
    std::string out;
    for (int64_t generation = 0; generation < 4; ++generation) {
      for (int64_t slot = 0; slot < 16; ++slot) {
        const int64_t id = generation << 32 | slot;
        if (id != own)
          out += response(id, "forged");
      }
    }
    out += response(own, "mine");
    ::send(peer_, out.data(), out.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  int peer_ = -1;
  int port_ = 0;
  std::thread thread_;
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

// Correlation ids belong to the group, and the group's connections go to the
// servers of every Channel that shares it: a reply counts only on the
// connection its call was queued on. A server that answers ids of calls it
// never got cannot end them, however it guesses.
TEST(ClientRuntimeTest, AServerCannotEndCallsOfAnotherChannelOnTheRuntime) {
  RawListener silent(/*forge=*/false);
  RawListener forger(/*forge=*/true);
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 1});
  auto victim = open_channel(silent.address(), options);
  auto other = open_channel(forger.address(), options);

  example::EchoRequest request;
  request.set_message("hello");
  Controller victim_controller;
  victim_controller.set_timeout_ms(static_cast<int>(testing::scaled(milliseconds(500)).count()));
  example::EchoResponse victim_response;
  FutureDone victim_done;
  example::EchoService_Stub(victim.get())
      .Echo(&victim_controller, &request, &victim_response, &victim_done);

  Controller other_controller;
  example::EchoResponse other_response;
  example::EchoService_Stub(other.get()).Echo(&other_controller, &request, &other_response, nullptr);
  EXPECT_FALSE(other_controller.Failed()) << other_controller.ErrorText();
  EXPECT_EQ(other_response.message(), "mine");

  victim_done.future().wait();
  EXPECT_EQ(victim_controller.ErrorCode(), to_int(ErrorCode::kTimedOut))
      << victim_controller.ErrorText() << " from " << victim_controller.remote_side();
  EXPECT_EQ(victim_response.message(), "");
}

// A synchronous call made from an inline callback would wait for the I/O
// thread it blocks: it fails at once with 35 (EDEADLK) instead of hanging, and the
// group goes on.
TEST(ClientRuntimeTest, SynchronousCallFromAnInlineCallbackFailsAtOnce) {
  TenServers servers;
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 1});
  options.completion = CompletionMode::kInlineCallback;
  options.timeout_ms = -1;  // Without the check, a hang.
  auto channel = open_channel(servers.address(0), options);
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(5000)).count());
  auto other = open_channel(servers.address(1), options);
  example::EchoRequest request;
  request.set_message("outer");
  example::EchoResponse response;
  Controller controller;
  controller.set_timeout_ms(-1);
  std::promise<int32_t> inner_code;
  auto done = [&] {
    example::EchoRequest inner_request;
    inner_request.set_message("inner");
    example::EchoResponse inner_response;
    Controller inner;
    example::EchoService_Stub(other.get()).Echo(&inner, &inner_request, &inner_response, nullptr);
    inner_code.set_value(inner.ErrorCode());
  };
  struct Done : google::protobuf::Closure {
    std::function<void()> body;
    void Run() override { body(); }
  } closure;
  closure.body = done;
  example::EchoService_Stub(channel.get()).Echo(&controller, &request, &response, &closure);
  auto future = inner_code.get_future();
  ASSERT_EQ(future.wait_for(testing::scaled(milliseconds(5000))), std::future_status::ready);
  EXPECT_EQ(future.get(), to_int(ErrorCode::kDeadlock));
  EXPECT_TRUE(echo_once(*other, "still fine"));
}

// Destroying a Channel from a thread of its own runtime could wait for that
// very thread: it stops the process with the assertion instead of hanging.
TEST(ClientRuntimeDeathTest, DestroyingAChannelFromItsRuntimesCallbackDies) {
#if !defined(PERCORE_ENABLE_ASSERTS)
  GTEST_SKIP() << "built with PERCORE_ASSERTS=OFF";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        TenServers servers;
        ChannelOptions options;
        options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 1});
        auto channel = open_channel(servers.address(0), options);
        example::EchoRequest request;
        example::EchoResponse response;
        Controller controller;
        std::promise<void> never;
        struct Done : google::protobuf::Closure {
          std::unique_ptr<Channel>* channel = nullptr;
          void Run() override { channel->reset(); }
        } closure;
        closure.channel = &channel;
        example::EchoService_Stub(channel.get()).Echo(&controller, &request, &response, &closure);
        never.get_future().wait_for(std::chrono::seconds(20));
      },
      "assertion failed: runtime_ == nullptr");
}

// A call made right after Init finds its Channel's route and first server
// list applied, even when the group's send thread is busy with another
// Channel's calls: 300 fresh Channels, each first call OK.
TEST(ClientRuntimeTest, FirstCallRightAfterInitFindsTheChannelsServers) {
  TenServers servers;
  ChannelOptions options;
  options.runtime = std::make_shared<ClientRuntime>(ClientRuntimeOptions{.groups = 2});
  auto busy = open_channel(servers.address(0), options);
  testing::EchoLoad load(*busy, 100000, 32);
  load.start_background();
  for (int i = 0; i < 300; ++i) {
    auto channel = open_channel(servers.address(1 + i % 9), options);
    ASSERT_TRUE(echo_once(*channel, "first " + std::to_string(i))) << "channel " << i;
  }
  load.stop_background();
  load.wait_all();
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
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

// ClientRuntimeOptions::callers_write: one call at a time, each written by
// its caller while the send thread sleeps (a lent turn), so the send thread
// is not woken per call; with the option off, every call wakes it. Every
// call is answered with its own text either way.
TEST(ClientRuntimeTest, CallersWriteTheirOwnCallsWhileTheSendThreadSleeps) {
  TenServers servers;
  for (const bool callers_write : {true, false}) {
    SCOPED_TRACE(callers_write ? "callers write" : "the send thread writes");
    auto runtime = std::make_shared<ClientRuntime>(
        ClientRuntimeOptions{.groups = 1, .callers_write = callers_write});
    ChannelOptions options;
    options.runtime = runtime;
    auto channel = open_channel(servers.address(0), options);
    ASSERT_TRUE(echo_once(*channel, "connect"));
    const detail::ThreadGroup& group = runtime->group(0);
    const uint64_t lent_before = group.lent_send_turns();
    const uint64_t wakeups_before = group.send_wakeups();
    constexpr int kCalls = 200;
    int answered = 0;
    for (int i = 0; i < kCalls; ++i)
      answered += echo_once(*channel, "call " + std::to_string(i)) ? 1 : 0;
    EXPECT_EQ(answered, kCalls);
    const uint64_t lent = group.lent_send_turns() - lent_before;
    const uint64_t wakeups = group.send_wakeups() - wakeups_before;
    if (callers_write) {
      // A few calls may find the send thread awake (a timer): most do not.
      EXPECT_GE(lent, uint64_t{kCalls} * 3 / 4);
      EXPECT_LE(wakeups, uint64_t{kCalls} / 4);
    } else {
      EXPECT_EQ(lent, 0u);
      // The send thread writes every call: after a wake-up when it was
      // parked, or in the turn it was still running (more often in a slow
      // build, where 119 of 200 calls woke it under ThreadSanitizer).
      EXPECT_GE(wakeups, uint64_t{kCalls} / 4);
    }
  }
}

// A synchronous call from a queued callback (allowed) is written at once,
// with callers_write on or off: the callback thread is blocked in it, so
// nothing may hold it back until the callback returns (it was held until
// the send thread's next timer, about 500 ms, and a 100 ms call to a server
// that answers at once ended 1008).
TEST(ClientRuntimeTest, ASynchronousCallFromAQueuedCallbackIsWrittenAtOnce) {
  TenServers servers;
  for (const bool callers_write : {true, false}) {
    SCOPED_TRACE(callers_write ? "callers write" : "the send thread writes");
    ChannelOptions options;
    options.private_groups = ClientRuntimeOptions{.groups = 1, .callers_write = callers_write};
    auto channel = open_channel(servers.address(0), options);
    ASSERT_TRUE(echo_once(*channel, "connect"));
    std::promise<std::pair<int, std::string>> inner;
    example::EchoService_Stub stub(channel.get());
    Controller outer_controller;
    example::EchoRequest outer_request;
    outer_request.set_message("outer");
    example::EchoResponse outer_response;
    stub.Echo(&outer_controller, &outer_request, &outer_response, NewCallback([&] {
                Controller controller;
                controller.set_timeout_ms(
                    static_cast<int>(testing::scaled(milliseconds(200)).count()));
                example::EchoRequest request;
                request.set_message("inner");
                example::EchoResponse response;
                stub.Echo(&controller, &request, &response, nullptr);
                inner.set_value({controller.ErrorCode(), response.message()});
              }));
    std::future<std::pair<int, std::string>> result = inner.get_future();
    ASSERT_EQ(result.wait_for(testing::scaled(milliseconds(5000))), std::future_status::ready);
    const auto [code, text] = result.get();
    EXPECT_EQ(code, 0);
    EXPECT_EQ(text, "inner");
  }
}

// A queued callback of one runtime's Channel makes a call on a Channel with
// groups of its own and destroys it (allowed from any thread but that
// runtime's): nothing of the destroyed runtime is touched afterwards (a
// held-back wake-up of its send loop once was, after the runtime was freed:
// ASan's heap-use-after-free).
TEST(ClientRuntimeTest, ACallbackMayCallOnAnotherRuntimeAndDestroyIt) {
  TenServers servers;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  auto channel = open_channel(servers.address(0), options);
  for (int round = 0; round < 20; ++round) {
    std::promise<int> done;
    example::EchoService_Stub stub(channel.get());
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
    stub.Echo(&controller, &request, &response, NewCallback([&] {
                auto other = open_channel(servers.address(1), options);
                example::EchoService_Stub other_stub(other.get());
                Controller other_controller;
                example::EchoRequest other_request;
                example::EchoResponse other_response;
                std::atomic<int> ended{0};
                other_stub.Echo(&other_controller, &other_request, &other_response,
                                NewCallback([&] { ended.fetch_add(1); }));
                other.reset();  // Ends the call (answered, or 125) and frees its groups.
                done.set_value(ended.load());
              }));
    std::future<int> ended = done.get_future();
    ASSERT_EQ(ended.wait_for(testing::scaled(milliseconds(10000))), std::future_status::ready);
    EXPECT_EQ(ended.get(), 1) << "round " << round;
  }
}

}  // namespace
}  // namespace percore
