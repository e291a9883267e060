// kProcessPool: handlers in worker processes forked from the server's zygote.
// A real server and client over loopback; prime.PrimeService with faults
// allowed (crash, loop, exhaust memory) on the process pool and
// example.EchoService inline beside it. Each test counts outcomes per call.

#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <semaphore>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "examples/echo_service.h"
#include "examples/prime_service.h"
#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/server_io/server.h>
#include "test/support/call_ledger.h"
#include "test/support/eventually.h"
#include "test/support/find_primes_stream.h"
#include "test/support/process_children.h"
#include "test/support/recording_stream_handler.h"
#include "test/support/sanitizers.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::RecordingHandler;

using testing::children_of;
using testing::kSanitized;

// This process's address space (VmSize), in bytes.
size_t address_space_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmSize:", 0) == 0)
      return static_cast<size_t>(std::atoll(line.c_str() + 7)) * 1024;
  }
  return 0;
}

template <typename Condition>
bool wait_until(milliseconds timeout, Condition condition) {
  return testing::eventually(condition, timeout);
}

class ProcessPoolTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}, int max_run_ms = 0) {
    options.io_threads = 2;
    if (options.process_workers == 0)
      options.process_workers = 2;
    server_ = std::make_unique<Server>(options);
    ServiceOptions prime_options;
    prime_options.default_mode = ExecutionMode::kProcessPool;
    prime_options.default_max_run_ms = max_run_ms;
    ASSERT_TRUE(server_->AddService(&prime_, prime_options));
    ASSERT_TRUE(server_->AddService(&echo_));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
    ChannelOptions channel_options;
    channel_options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(10000)).count());
    channel_options.max_retry = 0;
    channel_options.private_groups = ClientRuntimeOptions{.groups = 1};
    channel_ = std::make_unique<Channel>();
    ASSERT_TRUE(channel_->Init("127.0.0.1:" + std::to_string(server_->port()), channel_options,
                               &error))
        << error;
    // Every worker ready: the tests count respawns from here.
    ASSERT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
      return server_->stats().worker_processes_alive ==
             static_cast<uint64_t>(options.process_workers);
    }));
  }

  void TearDown() override {
    channel_.reset();
    server_.reset();
  }

  struct Outcome {
    int32_t code = 0;
    std::string text;
    bool is_prime = false;
    milliseconds took{0};
  };
  Outcome is_prime(uint64_t number, prime::Fault fault = prime::FAULT_NONE, int timeout_ms = 0) {
    prime::PrimeService_Stub stub(channel_.get());
    Controller controller;
    if (timeout_ms > 0)
      controller.set_timeout_ms(timeout_ms);
    prime::IsPrimeRequest request;
    request.set_number(number);
    request.set_fault(fault);
    prime::IsPrimeResponse response;
    const Clock::time_point start = Clock::now();
    stub.IsPrime(&controller, &request, &response, nullptr);
    Outcome outcome;
    outcome.took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    outcome.code = controller.ErrorCode();
    outcome.text = controller.ErrorText();
    outcome.is_prime = response.is_prime();
    return outcome;
  }

  // Calls FindPrimes (on the process pool) with a stream; the client's end.
  std::shared_ptr<Stream> find_primes(const std::shared_ptr<RecordingHandler>& handler,
                                      Controller& controller) {
    return testing::open_find_primes(channel_.get(), handler, controller);
  }
  // Writes a chunk of the numbers [first, last].
  static StreamWriteStatus write_chunk(Stream& stream, uint64_t first, uint64_t last,
                                       bool is_last, prime::Fault fault = prime::FAULT_NONE) {
    prime::PrimeChunk chunk;
    for (uint64_t number = first; number <= last; ++number)
      chunk.add_numbers(number);
    chunk.set_last(is_last);
    chunk.set_fault(fault);
    return stream.Write(chunk.SerializeAsString());
  }

  // Opens a FindPrimes stream, writes the chunk [1, last] and waits for its
  // reply: from then on a worker is streaming it.
  void stream_first_chunk(const std::shared_ptr<RecordingHandler>& handler, Controller& controller,
                          uint64_t last, std::shared_ptr<Stream>* stream) {
    *stream = find_primes(handler, controller);
    ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
    ASSERT_EQ(write_chunk(**stream, 1, last, false), StreamWriteStatus::kOk);
    ASSERT_TRUE(handler->wait(milliseconds(5000), [&] { return handler->count_ == 1; }));
  }

  examples::PrimeServiceImpl prime_{/*allow_faults=*/true};
  examples::EchoServiceImpl echo_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Channel> channel_;
};

TEST_F(ProcessPoolTest, ACrashIsAnswered2001NamingTheSignalAndTheWorkerIsReplaced) {
  start();
  EXPECT_TRUE(is_prime(97).is_prime);
  const Outcome crashed = is_prime(97, prime::FAULT_CRASH);
  EXPECT_EQ(crashed.code, 2001);
  EXPECT_NE(crashed.text.find("worker process died: SIGSEGV"), std::string::npos) << crashed.text;
  const Outcome aborted = is_prime(97, prime::FAULT_ABORT);
  EXPECT_EQ(aborted.code, 2001);
  EXPECT_NE(aborted.text.find("SIGABRT"), std::string::npos) << aborted.text;
  // The next call on the same method is answered normally.
  const Outcome next = is_prime(101);
  EXPECT_EQ(next.code, 0) << next.text;
  EXPECT_TRUE(next.is_prime);
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
    return server_->stats().worker_processes_alive == 2;
  }));
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.worker_process_crashes, 2u);
  EXPECT_EQ(stats.worker_process_respawns, 2u);
  EXPECT_EQ(stats.worker_process_kills, 0u);
  EXPECT_EQ(stats.methods.at("prime.PrimeService.IsPrime").worker_crashes, 2u);
  EXPECT_EQ(stats.methods.at("prime.PrimeService.IsPrime").answers_by_code.at(2001), 2u);
}

TEST_F(ProcessPoolTest, AnInfiniteLoopIsKilledAfterMaxRunMs) {
  constexpr int kMaxRunMs = 300;
  start({}, kMaxRunMs);
  const Outcome looped = is_prime(97, prime::FAULT_LOOP);
  EXPECT_EQ(looped.code, 1008);
  EXPECT_NE(looped.text.find("max_run_ms (300 ms)"), std::string::npos) << looped.text;
  EXPECT_GE(looped.took.count(), kMaxRunMs);
  EXPECT_LE(looped.took.count(), kMaxRunMs + testing::scaled(milliseconds(100)).count());
  EXPECT_EQ(is_prime(97).code, 0);
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
    return server_->stats().worker_processes_alive == 2;
  }));
  const ServerStats stats = server_->stats();
  EXPECT_EQ(stats.worker_process_kills, 1u);
  EXPECT_EQ(stats.worker_process_crashes, 0u);
  EXPECT_EQ(stats.methods.at("prime.PrimeService.IsPrime").worker_kills, 1u);
}

// Without max_run_ms, the caller's deadline kills the worker: the only
// worker is free again for the next call.
TEST_F(ProcessPoolTest, TheCallersDeadlineKillsAWorkerThatRunsPastIt) {
  ServerOptions options;
  options.process_workers = 1;
  start(options);
  const Outcome looped = is_prime(97, prime::FAULT_LOOP, 300);
  EXPECT_EQ(looped.code, 1008);
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(3000)), [&] {
    return server_->stats().worker_process_kills == 1;
  }));
  const Outcome next = is_prime(97);
  EXPECT_EQ(next.code, 0) << next.text;
}

// 1,000 calls, every 100th a crash, 32 in flight, with echo calls beside
// them: every call ends exactly once, crashes with 2001, the rest with the
// right answer, and the inline method never fails.
TEST_F(ProcessPoolTest, ThousandCallsWithACrashEveryHundredthEachEndOnce) {
  ServerOptions options;
  options.process_workers = 3;
  start(options);
  constexpr int kCalls = 1000;
  constexpr int kInFlight = 32;
  testing::CallLedger ledger(kCalls);
  std::counting_semaphore<kInFlight> permits(kInFlight);
  std::atomic<int> wrong{0};
  std::atomic<int> crashes_answered{0};
  struct Call : google::protobuf::Closure {
    int id = 0;
    bool crash = false;
    Controller controller;
    prime::IsPrimeRequest request;
    prime::IsPrimeResponse response;
    testing::CallLedger* ledger = nullptr;
    std::counting_semaphore<kInFlight>* permits = nullptr;
    std::atomic<int>* wrong = nullptr;
    std::atomic<int>* crashes_answered = nullptr;
    void Run() override {
      if (crash) {
        if (controller.ErrorCode() == 2001 &&
            controller.ErrorText().find("SIGSEGV") != std::string::npos) {
          crashes_answered->fetch_add(1);
        } else {
          wrong->fetch_add(1);
        }
      } else if (controller.Failed() ||
                 response.is_prime() != examples::is_prime(request.number())) {
        if (wrong->fetch_add(1) < 5)
          ADD_FAILURE() << "call " << id << ": " << controller.ErrorCode() << " "
                        << controller.ErrorText();
      }
      ledger->record_end(static_cast<size_t>(id));
      permits->release();
      delete this;
    }
  };
  std::atomic<bool> echoing{true};
  std::atomic<int> echo_failures{0};
  std::atomic<int> echoes{0};
  std::thread echo_load([&] {
    example::EchoService_Stub stub(channel_.get());
    while (echoing.load()) {
      Controller controller;
      example::EchoRequest request;
      request.set_message("beside");
      example::EchoResponse response;
      stub.Echo(&controller, &request, &response, nullptr);
      if (controller.Failed() || response.message() != "beside")
        echo_failures.fetch_add(1);
      echoes.fetch_add(1);
    }
  });
  prime::PrimeService_Stub stub(channel_.get());
  for (int id = 0; id < kCalls; ++id) {
    ASSERT_TRUE(permits.try_acquire_for(testing::scaled(milliseconds(10000)))) << "call " << id;
    auto* call = new Call;
    call->id = id;
    call->crash = id % 100 == 50;
    call->request.set_number(1000003 + 2 * static_cast<uint64_t>(id));
    if (call->crash)
      call->request.set_fault(prime::FAULT_CRASH);
    call->ledger = &ledger;
    call->permits = &permits;
    call->wrong = &wrong;
    call->crashes_answered = &crashes_answered;
    stub.IsPrime(&call->controller, &call->request, &call->response, call);
  }
  for (int i = 0; i < kInFlight; ++i)
    ASSERT_TRUE(permits.try_acquire_for(testing::scaled(milliseconds(10000))));
  echoing.store(false);
  echo_load.join();
  EXPECT_EQ(ledger.violations(), "");
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(crashes_answered.load(), 10);
  EXPECT_EQ(echo_failures.load(), 0);
  EXPECT_GT(echoes.load(), 0);
  const ServerStats stats = server_->stats();
  const MethodStats& method = stats.methods.at("prime.PrimeService.IsPrime");
  EXPECT_EQ(method.calls, static_cast<uint64_t>(kCalls));
  EXPECT_EQ(method.answers_by_code.at(2001), 10u);
  EXPECT_EQ(method.answers_by_code.at(0), static_cast<uint64_t>(kCalls - 10));
  EXPECT_EQ(method.worker_crashes, 10u);
  EXPECT_EQ(stats.worker_process_respawns, 10u);
}

TEST_F(ProcessPoolTest, AnAllocationPastTheMemoryLimitLosesOneWorker) {
  if (kSanitized)
    GTEST_SKIP() << "sanitizers reserve terabytes of address space: RLIMIT_AS cannot apply";
  ServerOptions options;
  options.process_workers = 1;
  // RLIMIT_AS counts what the worker inherits (this test process's mappings,
  // other tests' thread stacks included) as well.
  options.process_memory_limit_bytes = address_space_bytes() + (size_t{256} << 20);
  start(options);
  const Outcome exhausted = is_prime(97, prime::FAULT_EXHAUST_MEMORY);
  EXPECT_EQ(exhausted.code, 2001);
  EXPECT_NE(exhausted.text.find("out of memory"), std::string::npos) << exhausted.text;
  const Outcome next = is_prime(97);
  EXPECT_EQ(next.code, 0) << next.text;
  EXPECT_TRUE(next.is_prime);
}

// Workers that die before they are ready are replaced with back-off; while
// none is alive the method answers 2001 at once, and the inline method is
// unaffected.
TEST_F(ProcessPoolTest, WorkersCrashingAtStartAreRespawnedWithBackOff) {
  ServerOptions options;
  options.process_workers = 2;
  options.process_worker_start = [] { std::abort(); };
  options.io_threads = 2;
  server_ = std::make_unique<Server>(options);
  ServiceOptions prime_options;
  prime_options.default_mode = ExecutionMode::kProcessPool;
  ASSERT_TRUE(server_->AddService(&prime_, prime_options));
  ASSERT_TRUE(server_->AddService(&echo_));
  std::string error;
  ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  ChannelOptions channel_options;
  channel_options.max_retry = 0;
  channel_ = std::make_unique<Channel>();
  ASSERT_TRUE(
      channel_->Init("127.0.0.1:" + std::to_string(server_->port()), channel_options, &error));
  std::this_thread::sleep_for(milliseconds(100));
  const Outcome refused = is_prime(97);
  EXPECT_EQ(refused.code, 2001);
  EXPECT_NE(refused.text.find("no worker process is running"), std::string::npos)
      << refused.text;
  example::EchoService_Stub echo(channel_.get());
  Controller controller;
  example::EchoRequest request;
  request.set_message("still here");
  example::EchoResponse response;
  echo.Echo(&controller, &request, &response, nullptr);
  EXPECT_FALSE(controller.Failed()) << controller.ErrorText();
  // Back-off doubles from 10 ms to 1 s: over 2 s, two slots start at most
  // about 2 x 9 workers (10+20+...+640 ms, then 1 s apart), not thousands.
  std::this_thread::sleep_for(milliseconds(2000));
  const ServerStats stats = server_->stats();
  EXPECT_GE(stats.worker_process_respawns, 4u);
  EXPECT_LE(stats.worker_process_respawns, 24u);
  EXPECT_EQ(stats.methods.at("prime.PrimeService.IsPrime").worker_crashes, 0u);
}

TEST_F(ProcessPoolTest, PastTheQueueCallsAreAnswered2004) {
  ServerOptions options;
  options.process_workers = 1;
  options.process_queue_capacity = 2;
  start(options, /*max_run_ms=*/static_cast<int>(testing::scaled(milliseconds(1000)).count()));
  std::vector<std::thread> callers;
  std::vector<Outcome> outcomes(3);
  // One runs (and loops until killed), two wait; the fourth is refused.
  callers.emplace_back([&] { outcomes[0] = is_prime(97, prime::FAULT_LOOP); });
  std::this_thread::sleep_for(milliseconds(100));
  callers.emplace_back([&] { outcomes[1] = is_prime(97); });
  callers.emplace_back([&] { outcomes[2] = is_prime(101); });
  std::this_thread::sleep_for(milliseconds(300));
  const Outcome refused = is_prime(103);
  EXPECT_EQ(refused.code, 2004);
  EXPECT_NE(refused.text.find("worker process queue is full (2 requests waiting)"),
            std::string::npos)
      << refused.text;
  for (std::thread& caller : callers)
    caller.join();
  EXPECT_EQ(outcomes[0].code, 1008);
  EXPECT_EQ(outcomes[1].code, 0) << outcomes[1].text;
  EXPECT_EQ(outcomes[2].code, 0) << outcomes[2].text;
}

// Stop() answers a call still running in a worker 2003, and leaves no child
// process behind: the zygote is reaped, and its workers with it.
TEST_F(ProcessPoolTest, StopAnswersRunningCallsAndLeavesNoProcessBehind) {
  start();
  const std::set<pid_t> zygotes = children_of(::getpid());
  ASSERT_EQ(zygotes.size(), 1u);
  const std::set<pid_t> workers = children_of(*zygotes.begin());
  EXPECT_EQ(workers.size(), 2u);
  // Two loop in the workers, a third waits in the queue.
  std::vector<Outcome> outcomes(3);
  std::vector<std::thread> callers;
  for (int i = 0; i < 2; ++i)
    callers.emplace_back([&, i] { outcomes[i] = is_prime(97, prime::FAULT_LOOP); });
  std::this_thread::sleep_for(milliseconds(200));
  callers.emplace_back([&] { outcomes[2] = is_prime(97); });
  std::this_thread::sleep_for(milliseconds(200));
  server_->Stop(milliseconds(200));
  for (std::thread& caller : callers)
    caller.join();
  // Running and queued calls alike (the client reports 2003 in its own
  // words: the server is stopping).
  for (const Outcome& outcome : outcomes)
    EXPECT_EQ(outcome.code, 2003) << outcome.text;
  EXPECT_TRUE(children_of(::getpid()).empty());
  for (const pid_t pid : workers)
    EXPECT_NE(::kill(pid, 0), 0) << "worker " << pid << " outlived Stop()";
  EXPECT_NE(::kill(*zygotes.begin(), 0), 0);
}

// A queued call is answered 1008 when its deadline passes, not when a
// worker frees up.
TEST_F(ProcessPoolTest, AQueuedCallIsAnsweredAtItsDeadline) {
  ServerOptions options;
  options.process_workers = 1;
  start(options, /*max_run_ms=*/static_cast<int>(testing::scaled(milliseconds(3000)).count()));
  Outcome looped;
  std::thread loop([&] { looped = is_prime(97, prime::FAULT_LOOP); });
  std::this_thread::sleep_for(milliseconds(200));
  const Outcome queued = is_prime(97, prime::FAULT_NONE, 300);
  EXPECT_EQ(queued.code, 1008);
  // The server's own answer, well before the loop's kill frees the worker.
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(1000)), [&] {
    const ServerStats stats = server_->stats();
    const auto& codes = stats.methods.at("prime.PrimeService.IsPrime").answers_by_code;
    return codes.count(1008) == 1 && codes.at(1008) == 1;
  }));
  EXPECT_EQ(server_->stats().worker_process_kills, 0u);
  loop.join();
  EXPECT_EQ(looped.code, 1008);
}

// Crashes beside good calls fail only themselves: each crashing worker is
// replaced at once (a crash while running a call is the call's, not a failed
// start), and the good calls, one after two crashes each, all succeed.
TEST_F(ProcessPoolTest, CrashingCallsBesideGoodOnesFailOnlyThemselves) {
  start();
  constexpr int kRounds = 20;
  int good = 0;
  int crashed = 0;
  for (int i = 0; i < kRounds * 3; ++i) {
    const bool crash = i % 3 != 0;
    const Outcome outcome = is_prime(97, crash ? prime::FAULT_CRASH : prime::FAULT_NONE);
    if (crash) {
      EXPECT_EQ(outcome.code, 2001) << outcome.text;
      EXPECT_NE(outcome.text.find("SIGSEGV"), std::string::npos) << outcome.text;
      crashed += outcome.code == 2001;
    } else {
      EXPECT_EQ(outcome.code, 0) << "call " << i << ": " << outcome.text;
      good += outcome.code == 0 && outcome.is_prime;
    }
  }
  EXPECT_EQ(good, kRounds);
  EXPECT_EQ(crashed, 2 * kRounds);
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
    return server_->stats().worker_processes_alive == 2;
  }));
  EXPECT_EQ(server_->stats().worker_process_respawns, static_cast<uint64_t>(2 * kRounds));
}

// The worker's death is seen from its socket too: with the zygote stopped
// (no exit report), a crash is still answered 2001, not 1008 or never.
TEST_F(ProcessPoolTest, ACrashIsAnsweredEvenWhileTheZygoteIsStopped) {
  start({}, /*max_run_ms=*/static_cast<int>(testing::scaled(milliseconds(2000)).count()));
  const std::set<pid_t> zygotes = children_of(::getpid());
  ASSERT_EQ(zygotes.size(), 1u);
  ASSERT_EQ(::kill(*zygotes.begin(), SIGSTOP), 0);
  const Outcome crashed = is_prime(97, prime::FAULT_CRASH);
  ::kill(*zygotes.begin(), SIGCONT);
  EXPECT_EQ(crashed.code, 2001) << crashed.text;
  EXPECT_NE(crashed.text.find("worker process died"), std::string::npos) << crashed.text;
  EXPECT_LT(crashed.took.count(), testing::scaled(milliseconds(1000)).count());
  EXPECT_EQ(is_prime(97).code, 0);
}

// Streams on a process-pool handler: the stream's end is in the worker and
// the server relays its frames. The worker takes no other call until the
// stream ends; then it is free again.
TEST_F(ProcessPoolTest, AStreamHoldsItsWorkerUntilItEnds) {
  ServerOptions options;
  options.process_workers = 1;
  start(options);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream;
  ASSERT_NO_FATAL_FAILURE(stream_first_chunk(handler, controller, 100, &stream));
  prime::PrimeStreamReply first;
  ASSERT_TRUE(first.ParseFromString(handler->messages().at(0)));
  EXPECT_EQ(first.found().primes_size(), 25);  // pi(100)
  // The only worker streams: a call waits for it, and past its deadline is
  // answered 1008 without running.
  const Outcome waiting = is_prime(97, prime::FAULT_NONE, 300);
  EXPECT_EQ(waiting.code, 1008) << waiting.text;
  ASSERT_EQ(write_chunk(*stream, 101, 200, true), StreamWriteStatus::kOk);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(handler->ends(), 1);
  ASSERT_EQ(handler->messages().size(), 3u);  // Two chunks, the summary.
  prime::PrimeStreamReply summary;
  ASSERT_TRUE(summary.ParseFromString(handler->messages().back()));
  EXPECT_EQ(summary.summary().primes_found(), 46u);  // pi(200)
  // The stream ended: the worker takes calls again.
  const Outcome after = is_prime(97);
  EXPECT_EQ(after.code, 0) << after.text;
  EXPECT_TRUE(after.is_prime);
  EXPECT_EQ(server_->stats().streams_accepted, 1u);
}

// The client's Close reaches the worker's handler (its thread stops and the
// worker is free); so does a connection that goes away.
TEST_F(ProcessPoolTest, AClientCloseOrAGoneConnectionFreesTheStreamingWorker) {
  ServerOptions options;
  options.process_workers = 1;
  start(options);
  for (const bool close_connection : {false, true}) {
    auto handler = std::make_shared<RecordingHandler>();
    Controller controller;
    std::shared_ptr<Stream> stream;
    ASSERT_NO_FATAL_FAILURE(stream_first_chunk(handler, controller, 10, &stream));
    if (close_connection) {
      // The channel and its connections go; the stream ends broken here.
      channel_.reset();
      ASSERT_TRUE(handler->wait_end());
      EXPECT_EQ(handler->end(), StreamEndReason::kConnectionBroken);
      ChannelOptions channel_options;
      channel_options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(10000)).count());
      channel_options.private_groups = ClientRuntimeOptions{.groups = 1};
      channel_ = std::make_unique<Channel>();
      std::string error;
      ASSERT_TRUE(channel_->Init("127.0.0.1:" + std::to_string(server_->port()),
                                 channel_options, &error))
          << error;
    } else {
      stream->Close();
      ASSERT_TRUE(handler->wait_end());
      EXPECT_EQ(handler->end(), StreamEndReason::kClosedByUs);
    }
    EXPECT_EQ(handler->ends(), 1);
    // Answered by the one worker, well before its deadline.
    const Outcome next = is_prime(101, prime::FAULT_NONE,
                                  static_cast<int>(testing::scaled(milliseconds(3000)).count()));
    EXPECT_EQ(next.code, 0) << (close_connection ? "after the connection went: " : "after Close: ")
                            << next.text;
  }
  // Each streaming worker was replaced when its stream ended.
  EXPECT_EQ(server_->stats().worker_process_crashes, 0u);
  EXPECT_EQ(server_->stats().worker_process_kills, 0u);
  EXPECT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
    return server_->stats().worker_process_respawns == 2u;
  }));
}

// A worker that dies mid-stream resets its stream (the client is told once,
// kResetByPeer) and is replaced; the next stream works.
TEST_F(ProcessPoolTest, AWorkerThatDiesMidStreamResetsItsStream) {
  start();
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  // What a worker wrote before it died may die with it: the first reply is
  // awaited before the crash.
  std::shared_ptr<Stream> stream;
  ASSERT_NO_FATAL_FAILURE(stream_first_chunk(handler, controller, 10, &stream));
  ASSERT_EQ(write_chunk(*stream, 11, 20, false, prime::FAULT_CRASH), StreamWriteStatus::kOk);
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kResetByPeer);
  EXPECT_EQ(handler->messages().size(), 1u);  // The first chunk's primes.
  EXPECT_EQ(stream->Write("after"), StreamWriteStatus::kEnded);
  std::this_thread::sleep_for(testing::scaled(milliseconds(100)));
  EXPECT_EQ(handler->ends(), 1);
  ASSERT_TRUE(wait_until(testing::scaled(milliseconds(5000)), [&] {
    return server_->stats().worker_process_crashes == 1 &&
           server_->stats().worker_processes_alive == 2;
  }));
  EXPECT_EQ(server_->stats().methods.at("prime.PrimeService.FindPrimes").worker_crashes, 1u);
  auto next = std::make_shared<RecordingHandler>();
  Controller next_controller;
  std::shared_ptr<Stream> next_stream = find_primes(next, next_controller);
  ASSERT_FALSE(next_controller.Failed()) << next_controller.ErrorText();
  ASSERT_EQ(write_chunk(*next_stream, 1, 30, true), StreamWriteStatus::kOk);
  ASSERT_TRUE(next->wait_end());
  EXPECT_EQ(next->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(next->messages().size(), 2u);
}

// Stop with streams open in workers: each client end is told once, and no
// process is left behind.
TEST_F(ProcessPoolTest, StopEndsStreamsInWorkersAndLeavesNoProcess) {
  start();
  std::vector<std::shared_ptr<RecordingHandler>> handlers;
  std::vector<std::shared_ptr<Stream>> streams;
  for (int i = 0; i < 2; ++i) {
    handlers.push_back(std::make_shared<RecordingHandler>());
    Controller controller;
    streams.push_back(find_primes(handlers.back(), controller));
    ASSERT_FALSE(controller.Failed()) << controller.ErrorText();
  }
  server_->Stop();
  for (const auto& handler : handlers) {
    ASSERT_TRUE(handler->wait_end());
    EXPECT_EQ(handler->ends(), 1);
  }
  EXPECT_TRUE(children_of(::getpid()).empty());
}

// Stop closes streams in workers at once: a call queued behind the only
// (streaming) worker runs within Stop's wait instead of waiting it out.
TEST_F(ProcessPoolTest, StopFreesStreamingWorkersForTheCallsQueuedBehindThem) {
  ServerOptions options;
  options.process_workers = 1;
  start(options);
  auto handler = std::make_shared<RecordingHandler>();
  Controller controller;
  std::shared_ptr<Stream> stream;
  ASSERT_NO_FATAL_FAILURE(stream_first_chunk(handler, controller, 100, &stream));
  // A second stream waits for the worker, and a call behind it: the stream
  // is accepted after Stop began, and is closed at once as well.
  auto second_handler = std::make_shared<RecordingHandler>();
  Controller second_controller;
  std::shared_ptr<Stream> second;
  std::thread second_opener([&] { second = find_primes(second_handler, second_controller); });
  std::this_thread::sleep_for(milliseconds(100));
  std::atomic<bool> answered = false;
  Outcome queued;
  std::thread caller([&] {
    queued = is_prime(97);
    answered = true;
  });
  // They wait for the worker (the stream holds it).
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_FALSE(answered);
  const Clock::time_point stop_began = Clock::now();
  server_->Stop(std::chrono::seconds(20));
  const auto stop_took = Clock::now() - stop_began;
  caller.join();
  second_opener.join();
  EXPECT_FALSE(second_controller.Failed()) << second_controller.ErrorText();
  ASSERT_TRUE(second_handler->wait_end());
  EXPECT_EQ(second_handler->ends(), 1);
  EXPECT_TRUE(answered);
  EXPECT_EQ(queued.code, 0) << queued.text;
  EXPECT_TRUE(queued.is_prime);
  EXPECT_LT(stop_took, testing::scaled(milliseconds(5000)));
  ASSERT_TRUE(handler->wait_end());
  EXPECT_EQ(handler->end(), StreamEndReason::kClosedByPeer);
  EXPECT_EQ(handler->ends(), 1);
  EXPECT_TRUE(children_of(::getpid()).empty());
}

}  // namespace
}  // namespace percore
