// Discovery follows every change of an instance, and no step waits on
// ZooKeeper longer than its own timeout: against a real ZooKeeper server.
//
// - An instance's data rewritten in place (Curator's updateService): a new
//   address or port, or "enabled": false (Curator 5), which takes it out of
//   rotation until it is true again or the field is removed.
// - Changes in any grouping: back to back, deleted and re-created under the
//   same id, many rewrites in a row.
// - A frozen ZooKeeper (SIGSTOP): a server's leave, a Channel's Init, the
//   CLI and a server's start each end within their documented bounds.
// - ZooKeeper back without its data: sessions are opened again and
//   everything registered again; the C client's log lines are rate-limited.
// - percore-cli on unusable and empty nodes.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <mutex>
#include <set>
#include <thread>

#include <percore/client_proxy/channel.h>
#include <percore/discovery/zookeeper_naming_source.h>
#include <percore/proto/echo.pb.h>
#include "test/integration/discovery_fixture.h"
#include "test/support/child_process.h"
#include "test/support/eventually.h"
#include "test/support/raw_zookeeper.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::eventually;
using testing::RawZooKeeper;
using testing::scaled;

// The echo instance node that registers `port`; empty if none.
std::string instance_path_of(RawZooKeeper& zookeeper, int port) {
  for (const std::string& id : zookeeper.children(kEchoPath)) {
    const std::string path = kEchoPath + "/" + id;
    const nlohmann::json instance = nlohmann::json::parse(zookeeper.data(path).value_or("{}"));
    if (instance.value("port", 0) == port)
      return path;
  }
  return {};
}

// Rewrites an instance node in place, as Curator's updateService does.
void update_instance(RawZooKeeper& zookeeper, const std::string& path,
                     const std::function<void(nlohmann::json&)>& change) {
  nlohmann::json instance = nlohmann::json::parse(zookeeper.data(path).value_or("{}"));
  change(instance);
  ASSERT_EQ(zookeeper.set(path, instance.dump()), ZOK) << path;
}

int servers_in_rotation(Channel& channel) {
  return channel.stats().total.servers;
}

// One echo call; its error code and who answered.
std::pair<int, std::string> echo_once(Channel& channel) {
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message("where");
  example::EchoResponse response;
  Controller controller;
  stub.Echo(&controller, &request, &response, nullptr);
  return {controller.ErrorCode(), controller.remote_side()};
}

std::unique_ptr<Channel> echo_channel(const std::string& target, int timeout_ms) {
  auto channel = std::make_unique<Channel>();
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.timeout_ms = timeout_ms;
  std::string error;
  EXPECT_TRUE(channel->Init(target, options, &error)) << error;
  return channel;
}

TEST_F(DiscoveryTest, DisabledInstanceLeavesTheRotationAndComesBack) {
  auto a = start_registered_server();
  auto b = start_registered_server();
  ASSERT_TRUE(a.has_value() && b.has_value());
  auto channel = echo_channel(echo_target(), 500);
  ASSERT_TRUE(eventually([&] { return servers_in_rotation(*channel) == 2; }, milliseconds(3000)));
  RawZooKeeper admin(zookeeper_->hosts());
  const std::string a_path = instance_path_of(admin, a->port);
  ASSERT_FALSE(a_path.empty());

  update_instance(admin, a_path, [](nlohmann::json& instance) { instance["enabled"] = false; });
  ASSERT_TRUE(eventually([&] { return servers_in_rotation(*channel) == 1; }, milliseconds(3000)))
      << "A is still in rotation after \"enabled\": false";
  {
    // Every call after the update goes to B: none waits on a frozen A.
    Frozen frozen_a(a->process->pid());
    int failed = 0;
    int to_b = 0;
    for (int call = 0; call < 199; ++call) {
      const auto [code, remote_side] = echo_once(*channel);
      failed += code != 0;
      to_b += remote_side == address_of(*b);
    }
    EXPECT_EQ(failed, 0);
    EXPECT_EQ(to_b, 199);
  }

  // "enabled": true brings A back; so does removing the field.
  update_instance(admin, a_path, [](nlohmann::json& instance) { instance["enabled"] = true; });
  ASSERT_TRUE(eventually([&] { return servers_in_rotation(*channel) == 2; }, milliseconds(3000)));
  EXPECT_TRUE(eventually([&] { return echo_once(*channel).second == address_of(*a); },
                         milliseconds(3000)));
  update_instance(admin, a_path, [](nlohmann::json& instance) { instance["enabled"] = false; });
  ASSERT_TRUE(eventually([&] { return servers_in_rotation(*channel) == 1; }, milliseconds(3000)));
  update_instance(admin, a_path, [](nlohmann::json& instance) { instance.erase("enabled"); });
  ASSERT_TRUE(eventually([&] { return servers_in_rotation(*channel) == 2; }, milliseconds(3000)));
  EXPECT_TRUE(eventually([&] { return echo_once(*channel).second == address_of(*a); },
                         milliseconds(3000)));
}

TEST_F(DiscoveryTest, AnInstanceThatMovesIsFollowed) {
  auto a = start_registered_server();
  ASSERT_TRUE(a.has_value());
  // C is not registered: it only becomes known through A's rewritten node.
  auto c = testing::start_server_process({"--io-threads", "1", "--workers", "1"});
  ASSERT_TRUE(c.has_value());
  auto channel = echo_channel(echo_target(), 500);
  ASSERT_EQ(echo_once(*channel), std::make_pair(0, address_of(*a)));

  RawZooKeeper admin(zookeeper_->hosts());
  const std::string a_path = instance_path_of(admin, a->port);
  ASSERT_FALSE(a_path.empty());
  const int c_port = c->port;
  update_instance(admin, a_path, [&](nlohmann::json& instance) { instance["port"] = c_port; });
  ASSERT_TRUE(
      eventually([&] { return echo_once(*channel).second == address_of(*c); }, milliseconds(3000)))
      << "the client did not follow the instance to its new port";
  Frozen frozen_a(a->process->pid());
  for (int call = 0; call < 50; ++call)
    ASSERT_EQ(echo_once(*channel), std::make_pair(0, address_of(*c))) << "call " << call;
}

// A source's lists, as its listener got them.
class ListRecorder {
 public:
  NamingSource::Listener listener() {
    return [this](const std::vector<ServerAddress>& servers) {
      std::set<std::string> names;
      for (const ServerAddress& server : servers)
        names.insert(server.to_string());
      std::lock_guard lock(mutex_);
      latest_ = names;
    };
  }
  std::set<std::string> latest() {
    std::lock_guard lock(mutex_);
    return latest_;
  }

 private:
  std::mutex mutex_;
  std::set<std::string> latest_;
};

std::string curator_json(const std::string& id, int port, std::optional<bool> enabled) {
  nlohmann::json instance = {{"name", kEchoService},
                             {"id", id},
                             {"address", "127.0.0.1"},
                             {"port", port},
                             {"sslPort", nullptr},
                             {"payload", nullptr},
                             {"registrationTimeUTC", 1700000000000},
                             {"serviceType", "DYNAMIC"},
                             {"uriSpec", nullptr}};
  if (enabled)
    instance["enabled"] = *enabled;
  return instance.dump();
}

std::set<std::string> ports(std::initializer_list<int> list) {
  std::set<std::string> names;
  for (int port : list)
    names.insert("127.0.0.1:" + std::to_string(port));
  return names;
}

// Changes as a Curator service (or an operator) makes them, each followed by
// the list it must lead to. Run twice: waiting for each list, then all back
// to back (ZooKeeper then groups the events as it likes) with only the last
// list checked.
TEST_F(DiscoveryTest, EveryChangeIsFollowedWhateverTheGroupingOfEvents) {
  RawZooKeeper admin(zookeeper_->hosts());
  ASSERT_TRUE(admin.connected());
  ASSERT_TRUE(admin.create_path(kEchoPath));  // As Curator creates it.

  struct Step {
    std::function<void()> change;
    std::set<std::string> expected;
  };
  const std::string one = kEchoPath + "/one";
  const std::string two = kEchoPath + "/two";
  auto steps = [&](int base) {
    return std::vector<Step>{
        {[&, base] { ASSERT_EQ(admin.create_ephemeral(one, curator_json("one", base, {})), ZOK); },
         ports({base})},
        {[&, base] { ASSERT_EQ(admin.set(one, curator_json("one", base, false)), ZOK); }, {}},
        {[&, base] { ASSERT_EQ(admin.set(one, curator_json("one", base + 1, true)), ZOK); },
         ports({base + 1})},
        {[&, base] {
           ASSERT_EQ(admin.create_ephemeral(two, curator_json("two", base + 2, false)), ZOK);
         },
         ports({base + 1})},
        // Deleted and created again under the same id, elsewhere.
        {[&, base] {
           ASSERT_EQ(admin.remove(one), ZOK);
           ASSERT_EQ(admin.create_ephemeral(one, curator_json("one", base + 3, {})), ZOK);
         },
         ports({base + 3})},
        {[&, base] { ASSERT_EQ(admin.set(two, curator_json("two", base + 2, true)), ZOK); },
         ports({base + 2, base + 3})},
        // Many rewrites in a row: the last one counts.
        {[&, base] {
           for (int i = 0; i < 20; ++i)
             ASSERT_EQ(admin.set(two, curator_json("two", base + 10 + i, i % 2 == 1)), ZOK);
         },
         ports({base + 3, base + 29})},
        {[&] {
           ASSERT_EQ(admin.remove(one), ZOK);
           ASSERT_EQ(admin.remove(two), ZOK);
         },
         {}},
    };
  };

  ZooKeeperUri uri{zookeeper_->hosts(), kEchoPath};
  ZooKeeperNamingSource source(uri, ZooKeeperOptions{});
  ListRecorder recorder;
  std::string error;
  ASSERT_TRUE(source.start(recorder.listener(), &error)) << error;
  EXPECT_EQ(recorder.latest(), std::set<std::string>{});

  int number = 0;
  for (const Step& step : steps(20000)) {
    step.change();
    EXPECT_TRUE(eventually([&] { return recorder.latest() == step.expected; }, milliseconds(3000)))
        << "step " << number << " waited one by one";
    ++number;
  }
  std::set<std::string> last;
  std::vector<Step> back_to_back = steps(40000);
  back_to_back.pop_back();  // End with instances present.
  for (const Step& step : back_to_back) {
    step.change();
    last = step.expected;
  }
  EXPECT_TRUE(eventually([&] { return recorder.latest() == last; }, milliseconds(3000)))
      << "back to back";
  // And it stays there: no late, older list overwrites it.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(recorder.latest(), last);
}

// The issue's case: two services, a 10 s session, ZooKeeper frozen, SIGTERM.
// The exit takes at most deregister timeout (2 s) + the session close (the C
// client's 3 s bound) + deregister delay + grace.
TEST_F(DiscoveryTest, LeavingIsBoundedWhenZooKeeperIsFrozen) {
  auto server = start_registered_server({"--zk-session-timeout-ms", "10000",
                                         "--deregister-delay-ms", "500", "--grace-ms", "2000"});
  ASSERT_TRUE(server.has_value());
  ASSERT_EQ(echo_instances().size(), 1u);
  Frozen frozen(zookeeper_->pid());
  const auto start = Clock::now();
  server->process->send_signal(SIGTERM);
  const std::optional<int> status = server->process->wait_exit(scaled(milliseconds(30000)));
  const auto took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  ASSERT_TRUE(status.has_value()) << "still running after 30 s";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  std::printf("exit with ZooKeeper frozen took %lld ms\n", static_cast<long long>(took.count()));
  EXPECT_LE(took, scaled(milliseconds(2000 + 3000 + 500 + 2000 + 500)));
  // The close reached ZooKeeper's socket: once it runs again, the nodes go
  // (well before the 10 s session would expire).
  frozen.thaw();
  EXPECT_TRUE(eventually([&] { return echo_instances().empty(); }, milliseconds(5000)));
}

// Start-up steps against a frozen ZooKeeper: each fails within its timeout.
TEST_F(DiscoveryTest, StartingIsBoundedWhenZooKeeperIsFrozen) {
  Frozen frozen(zookeeper_->pid());
  std::string error;
  // The CLI and a registering server at once (each waits its 5 s connect
  // timeout), while a Channel's Init waits its naming timeout.
  auto cli = testing::ChildProcess::start(
      {testing::built_program("examples/percore-cli"), "list", registry()}, &error);
  ASSERT_NE(cli, nullptr) << error;
  auto server = testing::ChildProcess::start(
      {testing::built_program("examples/percore-server"), "--listen", "127.0.0.1:0",
       "--io-threads", "1", "--workers", "1", "--registry", registry()},
      &error);
  ASSERT_NE(server, nullptr) << error;
  const auto start = Clock::now();

  Channel channel;
  ChannelOptions options;
  options.naming_timeout_ms = 1000;
  EXPECT_FALSE(channel.Init(echo_target(), options, &error));
  EXPECT_NE(error.find("ZooKeeper unreachable"), std::string::npos) << error;
  EXPECT_LT(Clock::now() - start, scaled(milliseconds(2500)));

  for (auto* process : {cli.get(), server.get()}) {
    const std::optional<int> status = process->wait_exit(scaled(milliseconds(7000)));
    ASSERT_TRUE(status.has_value()) << "still waiting on ZooKeeper";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  }
  EXPECT_LT(Clock::now() - start, scaled(milliseconds(7000)));
}

std::string read_file(const std::string& path) {
  std::ifstream file(path);
  return std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
}

// Lines of `text` that hold `what` and not `but_not`.
size_t lines_with(const std::string& text, const std::string& what,
                  const std::string& but_not = "\x01") {
  size_t count = 0;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    count += line.find(what) != std::string::npos && line.find(but_not) == std::string::npos;
  return count;
}

// ZooKeeper killed and started again without its data (a lost disk, a
// restored backup): the C client is refused by every member and never hears
// that its session expired. After the session timeout without a member, the
// session is taken as expired: the server registers again, the client
// watches again. Meanwhile the C client's complaints reach the log at most
// once a second.
TEST_F(DiscoveryTest, ZooKeeperBackWithoutItsDataGetsEverythingRegisteredAgain) {
  char directory_template[] = "/tmp/percore-zkdata-XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string server_log = std::string(directory_template) + "/server.err";
  auto first = testing::start_server_process(
      {"--io-threads", "1", "--workers", "1", "--registry", registry(), "--zk-session-timeout-ms",
       "2000"},
      {}, server_log);
  ASSERT_TRUE(first.has_value());
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.zookeeper_session_timeout_ms = 2000;
  std::string error;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;
  ASSERT_EQ(echo_once(channel).first, 0);

  const auto outage_start = Clock::now();
  zookeeper_->kill_hard();
  std::filesystem::remove_all(zookeeper_->directory() + "/data/version-2");
  std::this_thread::sleep_for(milliseconds(1500));
  ASSERT_TRUE(zookeeper_->restart(&error)) << error;
  EXPECT_TRUE(eventually([&] { return echo_instances().size() == 1; }, milliseconds(10000)))
      << "the server did not register again";
  const auto outage_seconds =
      std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - outage_start).count();
  // The client watches the new ZooKeeper: a server registered now is found.
  auto second = start_registered_server();
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(eventually([&] { return servers_in_rotation(channel) == 2; }, milliseconds(10000)));
  EXPECT_EQ(echo_once(channel).first, 0);

  first->process->send_signal(SIGTERM);
  ASSERT_TRUE(first->process->wait_exit(scaled(milliseconds(10000))).has_value());
  const std::string log = read_file(server_log);
  EXPECT_EQ(lines_with(log, "ZOO_ERROR", "ZooKeeper C client:"), 0u)
      << "the C client wrote to stderr itself:\n" << log;
  EXPECT_LE(lines_with(log, "ZooKeeper C client:"), static_cast<size_t>(outage_seconds) + 2) << log;
  EXPECT_NE(log.find("the session has expired; opening a new one"), std::string::npos) << log;
  std::filesystem::remove_all(directory_template);
}

// percore-cli on a service node whose instances are unusable says why,
// and on an empty node says that nothing is there.
TEST_F(DiscoveryTest, CliShowsUnreadableInstancesAndEmptyServices) {
  RawZooKeeper admin(zookeeper_->hosts());
  ASSERT_TRUE(admin.connected());
  ASSERT_TRUE(admin.create_path(kEchoPath));
  auto list = [&](const std::string& uri) {
    std::string error;
    auto cli = testing::ChildProcess::start(
        {testing::built_program("examples/percore-cli"), "list", uri}, &error);
    EXPECT_NE(cli, nullptr) << error;
    std::string output;
    while (auto line = cli->wait_for_line("", scaled(milliseconds(5000))))
      output += *line + "\n";
    const std::optional<int> status = cli->wait_exit(scaled(milliseconds(5000)));
    EXPECT_TRUE(status.has_value() && WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << output;
    return output;
  };
  EXPECT_NE(list(echo_target()).find("nothing registered under " + kEchoPath), std::string::npos);

  ASSERT_EQ(admin.create_ephemeral(kEchoPath + "/x1", "garbage"), ZOK);
  ASSERT_EQ(admin.create_ephemeral(kEchoPath + "/x2", curator_json("x2", 9, false)), ZOK);
  // 100,000 levels of payload once crashed every reader (stack overflow).
  const std::string deep = R"({"name":"example.EchoService","id":"x3","address":"127.0.0.1",)"
                           R"("port":7,"payload":)" +
                           std::string(100000, '[') + std::string(100000, ']') + "}";
  ASSERT_EQ(admin.create_ephemeral(kEchoPath + "/x3", deep), ZOK);
  ASSERT_EQ(admin.create_ephemeral(
                kEchoPath + "/x4",
                R"({"name":"example.EchoService","id":"x4","address":"127.0.0.1","sslPort":443})"),
            ZOK);
  const std::string service = list(echo_target());
  EXPECT_NE(service.find("example.EchoService (1 instance)"), std::string::npos) << service;
  EXPECT_NE(service.find("x1  unreadable: bad Curator service instance"), std::string::npos)
      << service;
  EXPECT_NE(service.find("127.0.0.1:9  DYNAMIC  disabled  registered 2023-11-14T22:13:20.000Z"),
            std::string::npos)
      << service;
  EXPECT_NE(service.find("x3  unreadable: bad Curator service instance: nests deeper than 64"),
            std::string::npos)
      << service;
  EXPECT_NE(service.find("x4  unusable: only an sslPort (443)"), std::string::npos) << service;
  // A client reading the same nodes skips them and lives on.
  ZooKeeperNamingSource source(ZooKeeperUri{zookeeper_->hosts(), kEchoPath}, ZooKeeperOptions{});
  ListRecorder recorder;
  std::string error;
  ASSERT_TRUE(source.start(recorder.listener(), &error)) << error;
  EXPECT_EQ(recorder.latest(), std::set<std::string>{});
  const std::string base = list(registry());
  EXPECT_NE(base.find("example.EchoService (1 instance)"), std::string::npos) << base;
}

}  // namespace
}  // namespace percore
