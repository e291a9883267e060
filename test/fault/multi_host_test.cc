// percore across test hosts: network namespaces on this machine, each with
// its own address, joined by a bridge (TestNetwork). Faults are real: packets
// that vanish (iptables DROP), not closed sockets. Calls are counted per id.
// Root only: skipped otherwise, unless PERCORE_REQUIRE_NETNS=1 (CI as root),
// where a skip is a failure.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include "test/support/child_process.h"
#include "test/support/echo_load.h"
#include "test/support/slack.h"
#include "test/support/test_network.h"
#include "test/support/zookeeper_ensemble.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using testing::ChildProcess;
using testing::TestNetwork;
using Clock = std::chrono::steady_clock;

constexpr int kPort = 8000;

#define REQUIRE_TEST_HOSTS()                                       \
  do {                                                             \
    const std::string reason = TestNetwork::unavailable_reason();  \
    if (!reason.empty()) {                                         \
      const char* required = std::getenv("PERCORE_REQUIRE_NETNS"); \
      if (required != nullptr && std::string(required) == "1")     \
        FAIL() << "test hosts are required here, but " << reason;  \
      GTEST_SKIP() << "no test hosts: " << reason;                 \
    }                                                              \
  } while (false)

// Runs `body` with the calling thread on `host`: the Channels it makes
// (with private groups, whose threads Init starts) and their sockets are
// there. Processes are started from this thread (the main one), so that
// they die with it if the test crashes.
void on_host(TestNetwork& network, const std::string& host, const std::function<void()>& body) {
  testing::OnTestHost on(network, host);
  ASSERT_EQ(on.error(), "");
  body();
}

// percore-server on `host`, at ADDRESS:8000; stopped by pid (SIGKILL) when
// the pointer goes.
std::unique_ptr<ChildProcess> start_server(TestNetwork& network, const std::string& host,
                                           const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = network.wrapper(host);
  argv.insert(argv.end(), {"/usr/bin/setpriv", "--pdeathsig", "KILL",
                           testing::built_program("examples/percore-server"), "--listen",
                           network.address(host) + ":" + std::to_string(kPort), "--io-threads", "1",
                           "--workers", "1"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  std::string error;
  std::unique_ptr<ChildProcess> server = ChildProcess::start(argv, &error);
  EXPECT_NE(server, nullptr) << error;
  if (server != nullptr &&
      !server->wait_for_line("percore-server ready on", testing::scaled(milliseconds(20000)))) {
    ADD_FAILURE() << "percore-server on " << host << " did not start";
    return nullptr;
  }
  return server;
}

std::string at(TestNetwork& network, const std::string& host) {
  return network.address(host) + ":" + std::to_string(kPort);
}

ChannelOptions client_options() {
  ChannelOptions options;
  // Threads of the Channel's own, started by Init on the calling thread's
  // host (the process-wide runtime may have started anywhere).
  options.private_groups = ClientRuntimeOptions{};
  options.private_groups->groups = 1;
  options.timeout_ms = 1000;
  options.connect_timeout_ms = 300;
  options.keepalive_time_ms = 500;
  options.keepalive_timeout_ms = 500;
  options.max_retry = 2;
  return options;
}

// The names of this thread's namespace's interfaces, one a line.
std::string interfaces_here() {
  std::string listing;
  testing::run_command({"/usr/sbin/ip", "-o", "link", "show"}, &listing);
  std::string names;
  size_t line = 0;
  while (line < listing.size()) {
    const size_t end = listing.find('\n', line);
    const std::string text = listing.substr(line, end - line);
    const size_t first = text.find(": ");
    const size_t second = first == std::string::npos ? first : text.find(':', first + 2);
    if (second != std::string::npos)
      names += text.substr(first + 2, second - first - 2) + "\n";
    line = end == std::string::npos ? listing.size() : end + 1;
  }
  return names;
}

bool namespace_exists(const std::string& name) {
  std::string listing;
  testing::run_command({"/usr/sbin/ip", "netns", "list"}, &listing);
  return listing.find(name + " ") != std::string::npos ||
         listing.find(name + "\n") != std::string::npos;
}

TEST(TestNetworkTest, HostsReachOnlyEachOtherAndTheirNamespacesAreDeletedAfter) {
  REQUIRE_TEST_HOSTS();
  std::string error;
  std::vector<std::string> names;
  const std::string interfaces_before = interfaces_here();
  {
    std::unique_ptr<TestNetwork> network = TestNetwork::create({"client", "server"}, &error);
    ASSERT_NE(network, nullptr) << error;
    names = {network->namespace_name("client"), network->namespace_name("server")};
    for (const std::string& name : names)
      EXPECT_TRUE(namespace_exists(name)) << name;
    std::unique_ptr<ChildProcess> server = start_server(*network, "server");
    ASSERT_NE(server, nullptr);

    on_host(*network, "client", [&] {
      Channel channel;
      ASSERT_TRUE(channel.Init("list://" + at(*network, "server"), client_options(), &error))
          << error;
      example::EchoService_Stub stub(&channel);
      Controller controller;
      example::EchoRequest request;
      example::EchoResponse response;
      request.set_message("across hosts");
      stub.Echo(&controller, &request, &response, nullptr);
      EXPECT_EQ(controller.ErrorCode(), 0) << controller.ErrorText();
      EXPECT_EQ(response.message(), "across hosts");
      EXPECT_EQ(controller.remote_side(), at(*network, "server"));
    });

    // Test hosts know only their own subnet: nothing they send can leave it.
    on_host(*network, "client", [&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      ASSERT_GE(fd, 0);
      sockaddr_in outside{};
      outside.sin_family = AF_INET;
      outside.sin_port = htons(80);
      ASSERT_EQ(::inet_pton(AF_INET, "192.0.2.1", &outside.sin_addr), 1);
      const bool connected =
          ::connect(fd, reinterpret_cast<sockaddr*>(&outside), sizeof(outside)) == 0;
      const int connect_errno = errno;
      ::close(fd);
      EXPECT_FALSE(connected);
      EXPECT_EQ(connect_errno, ENETUNREACH) << std::strerror(connect_errno);
    });
    // And the machine's own namespace gained no interface.
    EXPECT_EQ(interfaces_here(), interfaces_before);
  }
  for (const std::string& name : names)
    EXPECT_FALSE(namespace_exists(name)) << name << " was left behind";
}

TEST(MultiHostTest, PartitionedServerStopsGettingCallsAndNoCallIsLost) {
  REQUIRE_TEST_HOSTS();
  std::string error;
  std::unique_ptr<TestNetwork> network = TestNetwork::create({"client", "s1", "s2"}, &error);
  ASSERT_NE(network, nullptr) << error;
  std::unique_ptr<ChildProcess> s1 = start_server(*network, "s1");
  std::unique_ptr<ChildProcess> s2 = start_server(*network, "s2");
  ASSERT_TRUE(s1 && s2);
  const std::string s1_address = at(*network, "s1");
  const std::string s2_address = at(*network, "s2");

  on_host(*network, "client", [&] {
    const ChannelOptions options = client_options();
    Channel channel;
    ASSERT_TRUE(channel.Init("list://" + s1_address + "," + s2_address, options, &error)) << error;
    // At most about 5,000 calls a second: the outcome table lasts 80 s.
    testing::EchoLoad load(channel, 400000, 16);
    load.start_background(std::chrono::microseconds(200));
    std::this_thread::sleep_for(milliseconds(1000));
    const Clock::time_point partitioned = Clock::now();
    ASSERT_TRUE(network->partition("s1", &error)) << error;
    const Clock::time_point in_force = Clock::now();  // Every rule is in.
    std::this_thread::sleep_for(testing::scaled(milliseconds(3000)));
    const Clock::time_point healed = Clock::now();
    ASSERT_TRUE(network->heal("s1", &error)) << error;
    // s1 was ejected: it is probed and readmitted after its ejection time.
    const auto readmitted = [&] { return load.first_answer_from(s1_address, healed).has_value(); };
    const Clock::time_point give_up = Clock::now() + testing::scaled(milliseconds(15000));
    while (!readmitted() && Clock::now() < give_up)
      std::this_thread::sleep_for(milliseconds(50));
    load.stop_background();
    load.wait_all();

    EXPECT_EQ(load.ledger().violations(load.issued()), "");
    const std::vector<testing::CallOutcome> outcomes = load.outcomes();
    // Dead-connection detection: keepalive time + timeout, and the sweep.
    // (Scaled for the sanitizer builds, whose threads run slower.)
    const auto detected = partitioned + testing::scaled(milliseconds(options.keepalive_time_ms +
                                                                     options.keepalive_timeout_ms +
                                                                     options.keepalive_time_ms));
    int failed_after_detection = 0;
    int answered_by_s1_while_cut = 0;
    for (const testing::CallOutcome& outcome : outcomes) {
      EXPECT_TRUE(outcome.code == 0 || outcome.code == 1008 || outcome.code == 1009)
          << outcome.code;
      const auto issued = outcome.ended_at - std::chrono::microseconds(outcome.latency_us);
      if (issued > detected && outcome.ended_at < healed && outcome.code != 0) {
        if (++failed_after_detection <= 5) {
          ADD_FAILURE() << "issued "
                        << std::chrono::duration_cast<milliseconds>(issued - partitioned).count()
                        << " ms into the partition, ended with " << outcome.code << " from '"
                        << outcome.remote_side << "' after " << outcome.latency_us / 1000 << " ms";
        }
      }
      if (outcome.code == 0 && outcome.remote_side == s1_address && issued > in_force &&
          outcome.ended_at < healed)
        ++answered_by_s1_while_cut;
    }
    EXPECT_EQ(failed_after_detection, 0) << testing::count_codes(outcomes).size();
    EXPECT_EQ(answered_by_s1_while_cut, 0);
    EXPECT_TRUE(readmitted()) << "s1 never answered again after the partition healed";
    const ChannelGroupStats stats = channel.stats().total;
    EXPECT_GE(stats.connections_dead + stats.ejections, 1u);
  });
  (void)s2;
}

TEST(MultiHostTest, ClientCutOffFromZooKeeperGoesOnWithTheLastList) {
  REQUIRE_TEST_HOSTS();
  std::string error;
  std::unique_ptr<TestNetwork> network = TestNetwork::create({"client", "s1", "s2", "zk"}, &error);
  ASSERT_NE(network, nullptr) << error;
  std::unique_ptr<testing::ZooKeeperEnsemble> zookeeper;
  // The ZooKeeper probes run from the client host.
  on_host(*network, "client", [&] {
    zookeeper = testing::ZooKeeperEnsemble::start_on(
        {{network->address("zk"), network->wrapper("zk")}}, &error);
  });
  ASSERT_NE(zookeeper, nullptr) << error;
  const std::string registry = "zk://" + zookeeper->hosts() + "/percore/multihost";
  const auto registered = [&](const std::string& host) {
    return std::vector<std::string>{"--registry", registry, "--advertise", network->address(host)};
  };
  std::unique_ptr<ChildProcess> s1 = start_server(*network, "s1", registered("s1"));
  ASSERT_NE(s1, nullptr);
  std::unique_ptr<ChildProcess> s2;

  on_host(*network, "client", [&] {
    ChannelOptions options = client_options();
    options.zookeeper_session_timeout_ms = 2000;
    Channel channel;
    ASSERT_TRUE(channel.Init(registry + "/example.EchoService", options, &error)) << error;
    testing::EchoLoad load(channel, 400000, 8);
    load.start_background(std::chrono::microseconds(200));
    std::this_thread::sleep_for(milliseconds(500));
    // Longer than the client's session: it expires meanwhile.
    ASSERT_TRUE(network->cut("client", "zk", &error)) << error;
    std::this_thread::sleep_for(testing::scaled(milliseconds(4000)));
    const size_t issued_while_cut = load.issued();
    ASSERT_TRUE(network->heal("client", &error)) << error;
    // A server that comes after the cut is seen: the watch works again.
    const Clock::time_point healed = Clock::now();
    s2 = start_server(*network, "s2", registered("s2"));
    ASSERT_NE(s2, nullptr);
    const Clock::time_point give_up = Clock::now() + testing::scaled(milliseconds(15000));
    while (!load.first_answer_from(at(*network, "s2"), healed) && Clock::now() < give_up)
      std::this_thread::sleep_for(milliseconds(50));
    load.stop_background();
    load.wait_all();

    EXPECT_EQ(load.ledger().violations(load.issued()), "");
    const std::vector<testing::CallOutcome> outcomes = load.outcomes();
    std::map<int32_t, int> codes = testing::count_codes(outcomes);
    EXPECT_EQ(codes.size(), 1u) << "a call failed: calls must go on with the last list";
    EXPECT_EQ(codes[0], static_cast<int>(outcomes.size()));
    EXPECT_GT(issued_while_cut, 100u);
    EXPECT_TRUE(load.first_answer_from(at(*network, "s2"), healed).has_value())
        << "a server registered after the cut healed was never called";
  });
  s1.reset();
  s2.reset();
  zookeeper.reset();
}

TEST(MultiHostTest, MinimumSocketBuffersCarryLargeMessagesWhole) {
  REQUIRE_TEST_HOSTS();
  std::string error;
  std::unique_ptr<TestNetwork> network = TestNetwork::create({"client", "server"}, &error);
  ASSERT_NE(network, nullptr) << error;
  // Every answer larger than a few KiB is written in many partial writes.
  std::unique_ptr<ChildProcess> server = start_server(
      *network, "server", {"--socket-send-buffer", "1", "--socket-receive-buffer", "1"});
  ASSERT_NE(server, nullptr);
  on_host(*network, "client", [&] {
    ChannelOptions options = client_options();
    options.timeout_ms = 20000;
    options.keepalive_time_ms = 0;
    Channel channel;
    ASSERT_TRUE(channel.Init("list://" + at(*network, "server"), options, &error)) << error;
    example::EchoService_Stub stub(&channel);
    for (int call = 0; call < 8; ++call) {
      Controller controller;
      example::EchoRequest request;
      example::EchoResponse response;
      std::string text(1 << 20, '\0');
      for (size_t i = 0; i < text.size(); ++i)
        text[i] = static_cast<char>('a' + (i * 7 + static_cast<size_t>(call)) % 26);
      request.set_message(text);
      stub.Echo(&controller, &request, &response, nullptr);
      ASSERT_EQ(controller.ErrorCode(), 0) << controller.ErrorText();
      EXPECT_TRUE(response.message() == text) << "call " << call << " came back altered";
    }
  });
}

}  // namespace
}  // namespace percore
