// The API a gRPC or brpc user reaches for, end to end over loopback:
// NewCallback as a call's `done`, ClosureGuard in handlers, application error
// codes with a printf-style text, a synchronous call from a client I/O thread
// failing at once, Server::Wait and Server::RunUntilAskedToQuit.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/client_proxy/client_runtime.h>
#include <percore/proto/closure_guard.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/error_code.h>
#include <percore/proto/new_callback.h>
#include <percore/server_io/server.h>
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;

// Echo with the user API: "fail:N" fails with application code N,
// "forget" returns without running done (the guard does), "later" answers from
// another thread after release(), "hold" keeps its `done` until
// answer_held().
class GuardedEcho : public example::EchoService {
 public:
  ~GuardedEcho() override {
    answer_held();
    for (std::thread& thread : later_)
      thread.join();
  }
  void answer_held() {
    std::vector<google::protobuf::Closure*> held;
    {
      std::lock_guard lock(mutex_);
      held.swap(held_);
    }
    for (google::protobuf::Closure* done : held)
      done->Run();
  }
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    ClosureGuard done_guard(done);
    auto* cntl = static_cast<ServerController*>(controller);
    const std::string& message = request->message();
    if (message.rfind("fail:", 0) == 0) {
      const int code = std::atoi(message.c_str() + 5);
      cntl->SetFailed(code, "application says no to %s (%d)", message.c_str(), code);
      return;
    }
    if (message == "forget") {
      response->set_message("guard answered");
      return;  // No done->Run(): the guard's.
    }
    if (message == "throw") {
      response->set_message("half made");
      throw std::runtime_error("boom");  // The guard runs done while unwinding.
    }
    if (message == "throw unguarded") {
      done_guard.release();  // Nobody runs done: the server must answer.
      throw 42;
    }
    if (message == "hold") {
      std::lock_guard lock(mutex_);
      held_.push_back(done_guard.release());
      return;
    }
    if (message == "later") {
      google::protobuf::Closure* released = done_guard.release();
      std::lock_guard lock(mutex_);
      later_.emplace_back([response, released] {
        ClosureGuard guard(released);
        response->set_message("answered later");
      });
      return;
    }
    response->set_message(message);
  }

 private:
  std::mutex mutex_;
  std::vector<std::thread> later_;
  std::vector<google::protobuf::Closure*> held_;
};

class UserApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<Server>(ServerOptions{.io_threads = 1, .workers = 1});
    ASSERT_TRUE(server_->AddService(&echo_));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  std::unique_ptr<Channel> open_channel(ChannelOptions options = {}) {
    if (options.runtime == nullptr && !options.private_groups)
      options.private_groups = ClientRuntimeOptions{.groups = 1};
    options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(5000)).count());
    auto channel = std::make_unique<Channel>();
    std::string error;
    EXPECT_TRUE(channel->Init(address(), options, &error)) << error;
    return channel;
  }

  GuardedEcho echo_;
  std::unique_ptr<Server> server_;
};

TEST_F(UserApiTest, NewCallbackIsACallsDone) {
  auto channel = open_channel();
  example::EchoRequest request;
  request.set_message("hello");
  example::EchoResponse response;
  Controller cntl;
  std::promise<std::string> answer;
  example::EchoService_Stub(channel.get())
      .Echo(&cntl, &request, &response, NewCallback([&] {
              answer.set_value(cntl.Failed() ? cntl.ErrorText() : response.message());
            }));
  auto future = answer.get_future();
  ASSERT_EQ(future.wait_for(testing::scaled(milliseconds(5000))), std::future_status::ready);
  EXPECT_EQ(future.get(), "hello");
}

// A handler that throws does not end the server: with a ClosureGuard the
// answer is 2001 (never a success with a half-made response), without one
// the server answers 2001 itself; each is counted once, and the server
// answers the next call.
TEST_F(UserApiTest, AHandlerThatThrowsIsAnswered2001AndTheServerGoesOn) {
  auto channel = open_channel();
  const std::vector<std::string> messages = {"throw", "throw unguarded", "throw", "after"};
  std::vector<std::string> outcomes;
  for (const std::string& message : messages) {
    example::EchoRequest request;
    request.set_message(message);
    example::EchoResponse response;
    Controller cntl;
    example::EchoService_Stub(channel.get()).Echo(&cntl, &request, &response, nullptr);
    outcomes.push_back(cntl.Failed() ? std::to_string(cntl.ErrorCode()) + " " + cntl.ErrorText()
                                     : "ok " + response.message());
  }
  EXPECT_EQ(outcomes[0], "2001 the handler threw an exception");
  EXPECT_EQ(outcomes[1],
            "2001 the handler threw: an exception not derived from std::exception");
  EXPECT_EQ(outcomes[2], "2001 the handler threw an exception");
  EXPECT_EQ(outcomes[3], "ok after");
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.handler_exceptions, 3u);
  EXPECT_EQ(stats.answers_by_code.at(to_int(ErrorCode::kInternal)), 3u);
}

TEST_F(UserApiTest, ApplicationErrorCodeAndFormattedTextReachTheClient) {
  auto channel = open_channel();
  example::EchoRequest request;
  request.set_message("fail:5000");
  example::EchoResponse response;
  Controller cntl;
  example::EchoService_Stub(channel.get()).Echo(&cntl, &request, &response, nullptr);
  EXPECT_TRUE(cntl.Failed());
  EXPECT_EQ(cntl.ErrorCode(), 5000);
  EXPECT_NE(cntl.ErrorText().find("application says no to fail:5000 (5000)"), std::string::npos)
      << cntl.ErrorText();
  EXPECT_EQ(error_code_name(cntl.ErrorCode()), "application error 5000");
  // Counted under its own number on both sides, not lumped with others.
  EXPECT_EQ(server_->stats().answers_by_code[5000], 1u);
  EXPECT_EQ(channel->stats().total.ends_by_code[5000], 1u);

  // Code 0 is not a failure to hide: answered 2001.
  request.set_message("fail:0");
  Controller zero;
  example::EchoService_Stub(channel.get()).Echo(&zero, &request, &response, nullptr);
  EXPECT_EQ(zero.ErrorCode(), to_int(ErrorCode::kInternal)) << zero.ErrorText();
}

// A handler that returns without running `done` is answered by its guard at
// once, not after the client's deadline.
TEST_F(UserApiTest, ClosureGuardAnswersAHandlerThatForgotDone) {
  auto channel = open_channel();
  example::EchoRequest request;
  request.set_message("forget");
  example::EchoResponse response;
  Controller cntl;
  const auto started = std::chrono::steady_clock::now();
  example::EchoService_Stub(channel.get()).Echo(&cntl, &request, &response, nullptr);
  EXPECT_FALSE(cntl.Failed()) << cntl.ErrorText();
  EXPECT_EQ(response.message(), "guard answered");
  EXPECT_LT(std::chrono::steady_clock::now() - started, testing::scaled(milliseconds(4000)));

  request.set_message("later");
  Controller later;
  example::EchoService_Stub(channel.get()).Echo(&later, &request, &response, nullptr);
  EXPECT_FALSE(later.Failed()) << later.ErrorText();
  EXPECT_EQ(response.message(), "answered later");
}

// A synchronous call from an inline callback blocks a client I/O thread: it
// ends at once with EDEADLK, whether the callback runs on the receive thread
// (a reply) or the send thread (a timeout), and whatever runtime the inner
// Channel uses.
TEST_F(UserApiTest, SynchronousCallFromAnyClientIoThreadFailsAtOnceWithEdeadlk) {
  ChannelOptions inline_options;
  inline_options.private_groups = ClientRuntimeOptions{.groups = 1};
  inline_options.completion = CompletionMode::kInlineCallback;
  auto outer = open_channel(inline_options);
  auto inner = open_channel();  // Its own runtime: not the outer's threads.

  const auto synchronous_call_code = [&](Controller& outer_cntl, const std::string& message) {
    example::EchoRequest request;
    request.set_message(message);
    example::EchoResponse response;
    std::promise<std::pair<int32_t, std::string>> inner_outcome;
    example::EchoService_Stub(outer.get())
        .Echo(&outer_cntl, &request, &response, NewCallback([&] {
                example::EchoRequest inner_request;
                inner_request.set_message("inner");
                example::EchoResponse inner_response;
                Controller inner_cntl;
                inner_cntl.set_timeout_ms(-1);  // Without the check, a hang.
                example::EchoService_Stub(inner.get())
                    .Echo(&inner_cntl, &inner_request, &inner_response, nullptr);
                inner_outcome.set_value({inner_cntl.ErrorCode(), inner_cntl.ErrorText()});
              }));
    auto future = inner_outcome.get_future();
    if (future.wait_for(testing::scaled(milliseconds(5000))) != std::future_status::ready) {
      // The callback hangs on a client thread: nothing can be torn down.
      std::fprintf(stderr, "the synchronous call from an inline callback hangs\n");
      std::abort();
    }
    return future.get();
  };

  Controller replied;  // Completed on the receive thread.
  const auto [reply_code, reply_text] = synchronous_call_code(replied, "outer");
  EXPECT_FALSE(replied.Failed()) << replied.ErrorText();
  EXPECT_EQ(reply_code, to_int(ErrorCode::kDeadlock)) << reply_text;
  EXPECT_EQ(reply_code, 35);
  EXPECT_NE(reply_text.find("synchronous call"), std::string::npos) << reply_text;

  Controller timed_out;  // Completed by the send thread's deadline timer.
  timed_out.set_timeout_ms(100);
  const auto [timeout_code, timeout_text] = synchronous_call_code(timed_out, "hold");
  EXPECT_EQ(timed_out.ErrorCode(), to_int(ErrorCode::kTimedOut)) << timed_out.ErrorText();
  EXPECT_EQ(timeout_code, to_int(ErrorCode::kDeadlock)) << timeout_text;
  echo_.answer_held();

  // The threads and Channels go on.
  example::EchoRequest request;
  request.set_message("still fine");
  example::EchoResponse response;
  Controller after;
  example::EchoService_Stub(inner.get()).Echo(&after, &request, &response, nullptr);
  EXPECT_FALSE(after.Failed()) << after.ErrorText();
}

TEST(ServerWaitTest, WaitReturnsOnceStopHasCompleted) {
  Server never_started;
  never_started.Wait();  // Returns at once.

  Server server(ServerOptions{.io_threads = 1, .workers = 1});
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    server.Wait();
    waited = true;
  });
  std::this_thread::sleep_for(milliseconds(50));
  EXPECT_FALSE(waited.load());
  server.Stop(milliseconds(100));
  waiter.join();
  EXPECT_TRUE(waited.load());
  server.Wait();  // Already stopped: at once.
}

// RunUntilAskedToQuit installs process-wide signal handlers: each case runs
// in a child process (a death test) so that this one keeps its own.
// A server that is not running has nothing to wait for: a program whose
// Start() failed must not block until a signal.
TEST(RunUntilAskedToQuitNotRunningTest, ReturnsZeroAtOnce) {
  Server never_started;
  EXPECT_EQ(never_started.RunUntilAskedToQuit(), 0);
  Server failed(ServerOptions{.io_threads = 1, .workers = 1});
  EXPECT_FALSE(failed.Start("no-such-host.invalid:1"));
  EXPECT_EQ(failed.RunUntilAskedToQuit(), 0);
}

class RunUntilAskedToQuitTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// Exits 0 if RunUntilAskedToQuit returns `expected` with the server still
// serving, after `trigger` (run on its own thread) asked it to quit.
// Whether a TCP connect to 127.0.0.1:port succeeds.
bool accepts(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  const bool connected =
      ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return connected;
}

// Waits until RunUntilAskedToQuit has installed its SIGTERM handler.
void wait_for_quit_handlers() {
  for (;;) {
    struct sigaction current {};
    ::sigaction(SIGTERM, nullptr, &current);
    if (current.sa_handler != SIG_DFL)
      return;
    std::this_thread::sleep_for(milliseconds(1));
  }
}

template <typename Trigger>
[[noreturn]] void run_until_asked(int expected, Trigger trigger) {
  // A RunUntilAskedToQuit that never returns fails the test (SIGALRM).
  ::alarm(static_cast<unsigned>(testing::scaled(milliseconds(20000)).count() / 1000));
  Server server(ServerOptions{.io_threads = 2, .workers = 2});
  std::string error;
  if (!server.Start("127.0.0.1:0", &error)) {
    std::fprintf(stderr, "start: %s\n", error.c_str());
    std::_Exit(10);
  }
  std::thread asker([&] { trigger(server); });
  const int got = server.RunUntilAskedToQuit();
  asker.join();
  if (got != expected) {
    std::fprintf(stderr, "RunUntilAskedToQuit returned %d, expected %d\n", got, expected);
    std::_Exit(11);
  }
  // A signal returns before the stop: the server still accepts.
  const bool serving = expected == 0 || accepts(server.port());
  server.Stop(milliseconds(100));
  // A later signal (the handler stays installed) no longer kills.
  ::kill(::getpid(), SIGINT);
  std::this_thread::sleep_for(milliseconds(20));
  std::_Exit(serving ? 0 : 12);
}

TEST_F(RunUntilAskedToQuitTest, ReturnsOnSigtermSentToTheProcess) {
  EXPECT_EXIT(run_until_asked(SIGTERM,
                              [](Server&) {
                                wait_for_quit_handlers();
                                ::kill(::getpid(), SIGTERM);
                              }),
              ::testing::ExitedWithCode(0), "");
}

// The recommended use: SIGINT / SIGTERM blocked in main before any thread
// starts. A signal sent before the call waits, and is taken at once.
TEST_F(RunUntilAskedToQuitTest, TakesASignalThatCameWhileBlockedEverywhere) {
  EXPECT_EXIT(
      {
        sigset_t signals;
        sigemptyset(&signals);
        sigaddset(&signals, SIGINT);
        sigaddset(&signals, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &signals, nullptr);
        ::kill(::getpid(), SIGINT);  // Pending: no thread takes it yet.
        run_until_asked(SIGINT, [](Server&) {});
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RunUntilAskedToQuitTest, ReturnsZeroWhenAnotherThreadStops) {
  EXPECT_EXIT(run_until_asked(0,
                              [](Server& server) {
                                std::this_thread::sleep_for(milliseconds(50));
                                server.Stop(milliseconds(100));
                              }),
              ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace percore
