// The client proxy against servers that fail it: servers that answer every
// call 2003, close idle connections, refuse connections, freeze or go
// silent. Each test counts what the servers received and how every call
// ended, per call id: nothing lost, nothing doubled, no storm.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include "test/support/call_ledger.h"
#include "test/support/child_process.h"
#include "test/support/echo_load.h"
#include "test/support/echo_server.h"
#include "test/support/eventually.h"
#include "test/support/scripted_server.h"
#include "test/support/slack.h"
#include "test/support/stderr_capture.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::ScriptedServer;

using testing::EchoServer;

ChannelOptions one_group() {
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  return options;
}

struct SyncResult {
  int32_t code = -1;
  std::string text;
  milliseconds took{0};
  std::string remote_side;
};

SyncResult echo_once(Channel& channel, const std::string& message = "hi") {
  example::EchoService_Stub stub(&channel);
  Controller controller;
  example::EchoRequest request;
  request.set_message(message);
  example::EchoResponse response;
  const Clock::time_point start = Clock::now();
  stub.Echo(&controller, &request, &response, nullptr);
  SyncResult result;
  result.code = controller.ErrorCode();
  if (result.code == 0 && response.message() != message)
    result.code = -2;
  result.text = controller.ErrorText();
  result.took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  result.remote_side = controller.remote_side();
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The p99 latency (ms) of the calls that ended in [from, to), failures
// included (a timed-out call counts at its deadline).
double p99_ms(const std::vector<testing::CallOutcome>& outcomes, Clock::time_point from,
              Clock::time_point to) {
  std::vector<int64_t> latencies;
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.ended_at >= from && outcome.ended_at < to)
      latencies.push_back(outcome.latency_us);
  }
  if (latencies.empty())
    return -1;
  std::sort(latencies.begin(), latencies.end());
  return static_cast<double>(latencies[latencies.size() * 99 / 100]) / 1000.0;
}

// SIGSTOP, and wait until the process is stopped (a signal is delivered when
// the process next runs: a request sent right after could still be answered).
void freeze(testing::ChildProcess& process) {
  process.send_signal(SIGSTOP);
  testing::eventually(
      [&] {
        // Every thread, not only the main one.
        const std::string tasks = "/proc/" + std::to_string(process.pid()) + "/task";
        for (const auto& task : std::filesystem::directory_iterator(tasks)) {
          std::ifstream stat(task.path() / "stat");
          std::string pid, name, state;
          stat >> pid >> name >> state;
          if (state != "T" && state != "t")
            return false;
        }
        return true;
      },
      milliseconds(2000));
}

// --- 2003: a stopping server ---

TEST(ChannelHealthTest, StoppingServerGetsOneRequestAndTheCallEndsAtOnce) {
  ScriptedServer stopping(ScriptedServer::Answer::kServerStopping);
  ChannelOptions options = one_group();
  options.timeout_ms = 1000;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + stopping.address(), options));

  const SyncResult result = echo_once(channel);
  // Not a resend storm ending in 1008 at the deadline: the server that said
  // it is stopping gets nothing more, and no other server can take the call.
  EXPECT_TRUE(result.code == 2003 || result.code == 112) << result.code << " " << result.text;
  EXPECT_LT(result.took, testing::scaled(milliseconds(200)));
  EXPECT_LE(stopping.requests(), 2u);

  // Calls right after: the server is in back-off; they end at once, and
  // still nothing is sent to it before it has reconnected.
  for (int i = 0; i < 20; ++i) {
    const SyncResult next = echo_once(channel);
    EXPECT_TRUE(next.code == 2003 || next.code == 112) << next.code << " " << next.text;
    EXPECT_LT(next.took, testing::scaled(milliseconds(200)));
  }
  EXPECT_LE(stopping.requests(), 3u);
}

// A call that left its connection (2003 here) and then ended before it was
// on another one still names the server it last tried (brpc's remote_side):
// it used to be empty, so a caller could not tell which server failed it.
TEST(ChannelHealthTest, CallEndingBetweenAttemptsNamesTheServerItLastTried) {
  ScriptedServer stopping(ScriptedServer::Answer::kServerStopping);
  ChannelOptions options = one_group();
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + stopping.address(), options));
  for (int i = 0; i < 5; ++i) {
    const SyncResult result = echo_once(channel);
    ASSERT_TRUE(result.code == 2003 || result.code == 112) << result.code << " " << result.text;
    if (result.code == 2003) {
      EXPECT_EQ(result.remote_side, stopping.address()) << result.text;
    }
  }
}

TEST(ChannelHealthTest, PercoreClientAgainstAStoppingServerEndsLongBeforeItsDeadline) {
  ScriptedServer stopping(ScriptedServer::Answer::kServerStopping);
  // Per process (two test runs at once), and removed at the end.
  const std::string stderr_path = ::testing::TempDir() + "percore-client-stopping-" +
                                  std::to_string(::getpid()) + ".err";
  struct Remove {
    const std::string& path;
    ~Remove() { std::remove(path.c_str()); }
  } remove_after{stderr_path};
  std::string error;
  const Clock::time_point start = Clock::now();
  auto client = testing::ChildProcess::start(
      {testing::built_program("examples/percore-client"), "--target",
       "list://" + stopping.address(), "--timeout-ms", "1000", "echo", "hi"},
      &error, stderr_path);
  ASSERT_NE(client, nullptr) << error;
  const std::optional<int> status = client->wait_exit(testing::scaled(milliseconds(5000)));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(status.has_value());
  ASSERT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 1);
  const std::string printed = read_file(stderr_path);
  EXPECT_TRUE(printed.find("2003") != std::string::npos ||
              printed.find("112") != std::string::npos)
      << printed;
  EXPECT_EQ(printed.find("1008"), std::string::npos) << printed;
  // Process start included; the call's own deadline is 1000 ms.
  EXPECT_LT(took, testing::scaled(milliseconds(800)));
  EXPECT_LE(stopping.requests(), 2u);
}

TEST(ChannelHealthTest, StoppingServerBesideAHealthyOneLosesNoCall) {
  ScriptedServer stopping(ScriptedServer::Answer::kServerStopping);
  EchoServer healthy;
  ChannelOptions options = one_group();
  options.timeout_ms = 1000;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + stopping.address() + "," + healthy.address(), options));

  std::map<int32_t, int> codes;
  const Clock::time_point start = Clock::now();
  while (Clock::now() - start < milliseconds(1000)) {
    ++codes[echo_once(channel).code];
    std::this_thread::sleep_for(milliseconds(2));
  }
  EXPECT_EQ(codes.size(), 1u);
  EXPECT_GT(codes[0], 50);
  // One call per reconnect of the stopping server (after 100, 200, 400 ms
  // of back-off...), each sent again once to the healthy server.
  const ChannelStats stats = channel.stats();
  EXPECT_GE(stopping.requests(), 1u);
  EXPECT_LE(stopping.requests(), 8u);
  EXPECT_EQ(stats.total.retries, stopping.requests());
}

TEST(ChannelHealthTest, RetryBudgetBoundsTheRequestsWhenEveryServerAnswers2003) {
  ScriptedServer first(ScriptedServer::Answer::kServerStopping);
  ScriptedServer second(ScriptedServer::Answer::kServerStopping);
  ScriptedServer third(ScriptedServer::Answer::kServerStopping);
  ChannelOptions options = one_group();
  options.timeout_ms = 1000;
  // Without the budget, each call could bounce between the servers (which
  // reconnect almost at once) up to 100 times.
  options.max_resends = 100;
  options.backoff_initial_ms = 2;
  options.backoff_max_ms = 2;
  // A small budget, so that the load surely reaches it: 5% of the calls
  // sent, no floor.
  options.retry_budget_percent = 5;
  options.retry_budget_min_per_second = 0;
  Channel channel;
  ASSERT_TRUE(channel.Init(
      "list://" + first.address() + "," + second.address() + "," + third.address(), options));

  constexpr int kThreads = 4;
  std::vector<std::map<int32_t, int>> codes(kThreads);
  std::vector<std::thread> threads;
  const Clock::time_point start = Clock::now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (Clock::now() - start < milliseconds(2000))
        ++codes[t][echo_once(channel).code];
    });
  }
  for (std::thread& thread : threads)
    thread.join();

  uint64_t calls = 0;
  for (const auto& per_thread : codes) {
    for (const auto& [code, count] : per_thread) {
      EXPECT_TRUE(code == 2003 || code == 112) << count << " calls ended with " << code;
      calls += static_cast<uint64_t>(count);
    }
  }
  const ChannelStats stats = channel.stats();
  EXPECT_EQ(stats.total.calls_ended, calls);
  const uint64_t requests = first.requests() + second.requests() + third.requests();
  const uint64_t retries = stats.total.retries;
  ASSERT_LE(retries, requests);
  const uint64_t first_sends = requests - retries;
  // The budget: 5% of the calls sent (plus, at most, one per thread: a
  // call that passed the check and then waited for a connection).
  EXPECT_LE(retries, first_sends * 5 / 100 + kThreads)
      << requests << " requests, " << first_sends << " first sends";
  // The budget, not luck, bounded them.
  EXPECT_GT(stats.total.retries_refused_by_budget, 0u);
  std::printf("requests %llu, first sends %llu, retries %llu, refused by budget %llu\n",
              static_cast<unsigned long long>(requests),
              static_cast<unsigned long long>(first_sends),
              static_cast<unsigned long long>(retries),
              static_cast<unsigned long long>(stats.total.retries_refused_by_budget));
}

// --- idle close: a clean close is not a failure ---

TEST(ChannelHealthTest, IdleCloseByAHealthyServerFailsNoCall) {
  ServerOptions server_options;
  server_options.idle_timeout_ms = 50;
  EchoServer server(server_options);
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + server.address(), one_group()));

  int failed = 0;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    const SyncResult result = echo_once(channel, "call " + std::to_string(i));
    if (result.code != 0) {
      ++failed;
      ADD_FAILURE() << "call " << i << ": " << result.code << " " << result.text;
    }
  }
  EXPECT_EQ(failed, 0);
  const ChannelStats stats = channel.stats();
  // The server did close them while idle (else the test proves nothing),
  // and the client counted no failure.
  EXPECT_GE(stats.total.clean_closes, 20u);
  EXPECT_EQ(stats.total.connect_failures, 0u);
  EXPECT_EQ(stats.total.connections_broken, 0u);
  EXPECT_EQ(stats.total.retries, 0u);
}

// --- refused connects: logged with their reason, rate-limited ---

TEST(ChannelHealthTest, RefusedConnectIsLoggedWithItsReasonOnceASecond) {
  int port = 0;
  {
    ScriptedServer gone(ScriptedServer::Answer::kOk);
    port = gone.port();
  }  // Closed: connects to it are refused.
  const std::string address = "127.0.0.1:" + std::to_string(port);
  ChannelOptions options = one_group();
  options.backoff_initial_ms = 10;
  options.backoff_max_ms = 10;
  testing::StderrCapture capture;
  {
    Channel channel;
    ASSERT_TRUE(channel.Init("list://" + address, options));
    const SyncResult result = echo_once(channel);
    EXPECT_EQ(result.code, 112) << result.text;
    std::this_thread::sleep_for(milliseconds(600));
    EXPECT_GE(channel.stats().total.connect_failures, 10u);
  }
  const std::string log = capture.stop();
  const std::string line = "connect to " + address + " failed: Connection refused";
  EXPECT_NE(log.find(line), std::string::npos) << log;
  size_t lines = 0;
  for (size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1))
    ++lines;
  // Dozens of attempts in 0.6 s, one line a second.
  EXPECT_LE(lines, 2u) << log;
}

// --- frozen and silent servers ---

TEST(ChannelHealthTest, FrozenServerIsEjectedAndReadmittedAndNoCallIsLost) {
  std::vector<testing::ServerProcess> servers;
  for (int i = 0; i < 3; ++i) {
    auto server = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
    ASSERT_TRUE(server.has_value());
    servers.push_back(std::move(*server));
  }
  const auto address_of = [](const testing::ServerProcess& server) {
    return "127.0.0.1:" + std::to_string(server.port);
  };
  ChannelOptions options = one_group();
  options.timeout_ms = 500;
  options.keepalive_time_ms = 200;
  options.keepalive_timeout_ms = 200;
  options.outlier_base_ejection_time_ms = 300;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://" + address_of(servers[0]) + "," + address_of(servers[1]) +
                               "," + address_of(servers[2]),
                           options));
  testing::EchoLoad load(channel, 4000000, 16);
  load.start_background();

  std::this_thread::sleep_for(milliseconds(300));  // Warm.
  const Clock::time_point before_from = Clock::now();
  std::this_thread::sleep_for(milliseconds(1000));
  const Clock::time_point frozen_at = Clock::now();
  freeze(*servers[0].process);
  ASSERT_TRUE(testing::eventually([&] { return channel.stats().total.ejections >= 1; },
                                  milliseconds(5000)));
  const Clock::time_point ejected_at = Clock::now();
  std::this_thread::sleep_for(milliseconds(1500));
  const Clock::time_point thawed_at = Clock::now();
  servers[0].process->send_signal(SIGCONT);
  ASSERT_TRUE(testing::eventually([&] { return channel.stats().total.readmissions >= 1; },
                                  milliseconds(5000)));
  // Back in rotation: it answers calls again.
  std::optional<Clock::time_point> answered;
  ASSERT_TRUE(testing::eventually(
      [&] { return (answered = load.first_answer_from(address_of(servers[0]), thawed_at)).has_value(); },
      milliseconds(5000)));
  load.stop_background();
  load.wait_all();

  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  const std::vector<testing::CallOutcome> outcomes = load.outcomes();
  for (const auto& [code, count] : testing::count_codes(outcomes)) {
    EXPECT_TRUE(code == 0 || code == 1008 || code == 1009) << count << " calls ended with " << code;
  }
  const double before = p99_ms(outcomes, before_from, frozen_at);
  // From a little after the ejection (calls placed before it end first)
  // until the thaw.
  const double after = p99_ms(outcomes, ejected_at + milliseconds(600), thawed_at);
  std::printf("p99 before the freeze %.2f ms, after the ejection %.2f ms (timeout 500 ms)\n",
              before, after);
  ASSERT_GE(after, 0);
  // Unejected, a third of the calls would wait out their 500 ms deadline.
  EXPECT_LT(after, testing::scaled(milliseconds(100)).count());
  const ChannelStats stats = channel.stats();
  EXPECT_GE(stats.total.probes_sent, 1u);
  EXPECT_EQ(stats.total.servers_ejected, 0);
}

TEST(ChannelHealthTest, SilentConnectionIsFoundDeadItsCallsEnd1009AndNewCallsGoElsewhere) {
  auto frozen = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  auto other = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(frozen && other);
  const std::string frozen_address = "127.0.0.1:" + std::to_string(frozen->port);
  ChannelOptions options = one_group();
  options.timeout_ms = 10000;  // Far beyond the keepalive: only it can end them early.
  options.keepalive_time_ms = 200;
  options.keepalive_timeout_ms = 200;
  options.load_balancer = LoadBalancer::kRoundRobin;
  Channel channel;
  ASSERT_TRUE(channel.Init(
      "list://" + frozen_address + ",127.0.0.1:" + std::to_string(other->port), options));
  ASSERT_EQ(echo_once(channel).code, 0);
  ASSERT_EQ(echo_once(channel).code, 0);

  freeze(*frozen->process);
  testing::EchoLoad load(channel, 1000, 20);
  const Clock::time_point issued_at = Clock::now();
  load.issue(20);
  load.wait_all();
  const std::vector<testing::CallOutcome> outcomes = load.outcomes();
  EXPECT_EQ(load.ledger().violations(20), "");
  int on_frozen = 0;
  for (const testing::CallOutcome& outcome : outcomes) {
    if (outcome.code == 0)
      continue;
    ++on_frozen;
    EXPECT_EQ(outcome.code, 1009);
    EXPECT_EQ(outcome.remote_side, frozen_address);
    // keepalive_time + keepalive_timeout + a sweep or two, not the deadline.
    EXPECT_LT(outcome.ended_at - issued_at, testing::scaled(milliseconds(2000)));
  }
  EXPECT_GE(on_frozen, 5);  // Round robin put half of them there.
  const ChannelStats found = channel.stats();
  EXPECT_GE(found.total.connections_dead, 1u);
  EXPECT_GE(found.total.ejections, 1u);

  // The silent server is ejected: new calls go to the other one.
  testing::EchoLoad after(channel, 1000, 20);
  after.issue(100);
  after.wait_all();
  EXPECT_EQ(after.ledger().violations(100), "");
  for (const auto& [code, count] : testing::count_codes(after.outcomes()))
    EXPECT_EQ(code, 0) << count << " calls ended with " << code;
  frozen->process->send_signal(SIGCONT);
}

TEST(ChannelHealthTest, EjectedServerThatClosesItsIdleProbeConnectionIsStillReadmitted) {
  // Both close connections idle for 100 ms: the health check's connection
  // too, soon after it answered.
  auto frozen = testing::start_server_process(
      {"--io-threads", "1", "--workers", "1", "--idle-timeout-ms", "100"});
  auto other = testing::start_server_process(
      {"--io-threads", "1", "--workers", "1", "--idle-timeout-ms", "100"});
  ASSERT_TRUE(frozen && other);
  ChannelOptions options = one_group();
  options.timeout_ms = 200;
  options.outlier_base_ejection_time_ms = 300;
  options.load_balancer = LoadBalancer::kRoundRobin;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://127.0.0.1:" + std::to_string(frozen->port) + ",127.0.0.1:" +
                               std::to_string(other->port),
                           options));
  freeze(*frozen->process);
  testing::EchoLoad load(channel, 100000, 8);
  load.start_background();
  const bool ejected =
      testing::eventually([&] { return channel.stats().total.ejections >= 1; }, milliseconds(5000));
  load.stop_background();
  load.wait_all();
  frozen->process->send_signal(SIGCONT);
  ASSERT_TRUE(ejected);
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  // One call every 300 ms: connections go idle and are closed in between.
  const bool readmitted = testing::eventually(
      [&] {
        std::this_thread::sleep_for(milliseconds(280));
        echo_once(channel);
        return channel.stats().total.servers_ejected == 0;
      },
      milliseconds(5000));
  EXPECT_TRUE(readmitted) << channel.stats().to_string();
  EXPECT_GE(channel.stats().total.readmissions, 1u);
}

TEST(ChannelHealthTest, EjectionShareIsOfTheGroupsSubset) {
  std::vector<std::unique_ptr<ScriptedServer>> silent;
  std::string list = "list://";
  for (int i = 0; i < 10; ++i) {
    silent.push_back(std::make_unique<ScriptedServer>(ScriptedServer::Answer::kNothing,
                                                      /*answer_health_checks=*/false));
    if (i > 0)
      list += ',';
    list += silent.back()->address();
  }
  ChannelOptions options = one_group();
  options.subset_size = 2;
  options.client_id = 0;
  options.timeout_ms = 50;
  options.outlier_max_ejection_percent = 20;
  Channel channel;
  ASSERT_TRUE(channel.Init(list, options));
  testing::EchoLoad load(channel, 100000, 8);
  load.start_background();
  std::this_thread::sleep_for(milliseconds(1500));
  load.stop_background();
  load.wait_all();
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  const ChannelStats stats = channel.stats();
  EXPECT_EQ(stats.total.servers, 2);
  // 20% of a subset of two: one (at least one, never the last), not two.
  EXPECT_EQ(stats.total.servers_ejected, 1) << stats.to_string();
}

TEST(ChannelHealthTest, BackoffStartsOverAfterTheServerHasAnsweredAgain) {
  auto server = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(server.has_value());
  ChannelOptions options = one_group();
  options.timeout_ms = 5000;
  options.keepalive_time_ms = 100;
  options.keepalive_timeout_ms = 100;
  Channel channel;
  ASSERT_TRUE(channel.Init("list://127.0.0.1:" + std::to_string(server->port), options));
  ASSERT_EQ(echo_once(channel).code, 0);
  for (int incident = 0; incident < 5; ++incident) {
    freeze(*server->process);
    EXPECT_EQ(echo_once(channel).code, 1009);  // Found dead.
    server->process->send_signal(SIGCONT);
    const Clock::time_point thawed = Clock::now();
    int failed = 0;
    while (echo_once(channel).code != 0 && Clock::now() - thawed < milliseconds(10000)) {
      ++failed;
      std::this_thread::sleep_for(milliseconds(5));
    }
    const auto recovery = std::chrono::duration_cast<milliseconds>(Clock::now() - thawed);
    // One failure in a row each time: the first back-off (100 ms +-25%),
    // not one doubled by every earlier incident.
    EXPECT_LT(recovery, testing::scaled(milliseconds(600)))
        << "incident " << incident << ", " << failed << " calls failed meanwhile";
    // A healthy spell: the server answers again.
    for (int i = 0; i < 50; ++i) {
      ASSERT_EQ(echo_once(channel).code, 0);
      std::this_thread::sleep_for(milliseconds(4));
    }
  }
}

TEST(ChannelHealthTest, EveryHealthChangeReachesTheLogEvenWithinASecond) {
  auto frozen = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  auto other = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(frozen && other);
  const std::string frozen_address = "127.0.0.1:" + std::to_string(frozen->port);
  ChannelOptions options = one_group();
  options.timeout_ms = 100;
  options.outlier_base_ejection_time_ms = 200;
  options.load_balancer = LoadBalancer::kRoundRobin;
  testing::StderrCapture capture;
  {
    Channel channel;
    ASSERT_TRUE(channel.Init(
        "list://" + frozen_address + ",127.0.0.1:" + std::to_string(other->port), options));
    freeze(*frozen->process);
    testing::EchoLoad load(channel, 100000, 8);
    load.start_background();
    const bool ejected = testing::eventually(
        [&] { return channel.stats().total.ejections >= 1; }, milliseconds(5000));
    frozen->process->send_signal(SIGCONT);
    const bool readmitted = testing::eventually(
        [&] { return channel.stats().total.readmissions >= 1; }, milliseconds(5000));
    load.stop_background();
    load.wait_all();
    EXPECT_TRUE(ejected && readmitted);
    // Readmitted within a second of the ejection line: held, then written.
    std::this_thread::sleep_for(testing::scaled(milliseconds(1500)));
  }
  const std::string log = capture.stop();
  EXPECT_NE(log.find(frozen_address + " ejected for"), std::string::npos) << log;
  const size_t readmitted = log.rfind(frozen_address + " readmitted");
  EXPECT_NE(readmitted, std::string::npos) << log;
  // The last health line says the server's state now.
  EXPECT_GT(readmitted, log.rfind(frozen_address + " ejected for")) << log;
}

TEST(ChannelHealthTest, ServerLeftAloneByAListChangeIsReadmitted) {
  ScriptedServer silent(ScriptedServer::Answer::kNothing, /*answer_health_checks=*/false);
  EchoServer healthy;
  const std::string path = ::testing::TempDir() + "percore-shrinking-list";
  const auto write_list = [&](const std::string& text) {
    const std::string temporary = path + ".new";
    std::ofstream(temporary) << text;
    std::filesystem::rename(temporary, path);  // Seen whole, never half written.
  };
  write_list(silent.address() + "\n" + healthy.address() + "\n");
  ChannelOptions options = one_group();
  options.timeout_ms = 50;
  options.outlier_base_ejection_time_ms = 60000;
  options.outlier_max_ejection_percent = 50;
  options.load_balancer = LoadBalancer::kRoundRobin;
  Channel channel;
  ASSERT_TRUE(channel.Init("file://" + path, options));
  testing::EchoLoad load(channel, 100000, 4);
  load.start_background();
  const bool ejected = testing::eventually(
      [&] { return channel.stats().total.servers_ejected == 1; }, milliseconds(5000));
  load.stop_background();
  load.wait_all();
  ASSERT_TRUE(ejected);
  // Only the ejected server is left: it is the last, so back in rotation.
  write_list(silent.address() + "\n");
  EXPECT_TRUE(testing::eventually(
      [&] {
        const ChannelStats stats = channel.stats();
        return stats.total.servers == 1 && stats.total.servers_ejected == 0 &&
               stats.total.connections_ejected == 0;
      },
      milliseconds(5000)))
      << channel.stats().to_string();
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  std::filesystem::remove(path);
}

// --- stats ---

TEST(ChannelHealthTest, StatsCountCallsByCodeAndConnectionsByState) {
  EchoServer server;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  Channel channel;
  EXPECT_TRUE(channel.stats().groups.empty());
  ASSERT_TRUE(channel.Init("list://" + server.address(), options));
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(echo_once(channel).code, 0);
  example::EchoService_Stub stub(&channel);
  Controller timed_out;
  timed_out.set_timeout_ms(0);
  example::EchoRequest request;
  example::EchoResponse response;
  stub.Echo(&timed_out, &request, &response, nullptr);
  ASSERT_EQ(timed_out.ErrorCode(), 1008);

  // Each group learns the server list on its own thread: a group that took
  // none of the calls may connect a moment later.
  testing::eventually([&] { return channel.stats().total.connections_ready == 2; },
                      milliseconds(5000));
  const ChannelStats stats = channel.stats();
  ASSERT_EQ(stats.groups.size(), 2u);
  EXPECT_EQ(stats.total.calls_started, 11u);
  EXPECT_EQ(stats.total.calls_ended, 11u);
  EXPECT_EQ(stats.total.ends_by_code.at(0), 10u);
  EXPECT_EQ(stats.total.ends_by_code.at(1008), 1u);
  // One connection per group to the one server.
  EXPECT_EQ(stats.total.servers, 2);
  EXPECT_EQ(stats.total.connections_ready, 2);
  EXPECT_EQ(stats.total.connects, 2u);
  EXPECT_EQ(stats.total.retries, 0u);
  EXPECT_NE(stats.to_string().find("ends_by_code 1008 1"), std::string::npos) << stats.to_string();
}

}  // namespace
}  // namespace percore
