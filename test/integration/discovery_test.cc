// Discovery against a real ZooKeeper server (Debian's package, started by the
// fixture on a free loopback port): registration in Curator's layout, hot
// plug under load, ZooKeeper outages, session expiry, ACLs, subsetting and
// file:// lists.

#define THREADED
#include <zookeeper/zookeeper.h>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <percore/client_proxy/channel.h>
#include <percore/discovery/zookeeper_client.h>
#include <percore/discovery/zookeeper_naming_source.h>
#include "examples/echo_service.h"
#include <percore/proto/echo.pb.h>
#include <percore/server_io/server.h>
#include "test/integration/discovery_fixture.h"
#include "test/support/child_process.h"
#include "test/support/echo_load.h"
#include "test/support/eventually.h"
#include "test/support/raw_zookeeper.h"
#include "test/support/slack.h"
#include "test/support/zookeeper_server.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using testing::eventually;
using testing::RawZooKeeper;

TEST_F(DiscoveryTest, RegisteredInstanceHasCuratorsExactLayoutAndGoesAwayOnStop) {
  auto server = start_registered_server();
  ASSERT_TRUE(server.has_value());
  RawZooKeeper reader(zookeeper_->hosts());
  ASSERT_TRUE(reader.connected());
  for (const char* service : {"example.EchoService", "prime.PrimeService"}) {
    const std::string service_path = std::string(kBase) + "/" + service;
    const std::vector<std::string> ids = reader.children(service_path);
    ASSERT_EQ(ids.size(), 1u) << service;
    Stat stat;
    const std::optional<std::string> data = reader.data(service_path + "/" + ids[0], &stat);
    ASSERT_TRUE(data.has_value());
    EXPECT_NE(stat.ephemeralOwner, 0) << "instance nodes are EPHEMERAL";
    const nlohmann::json instance = nlohmann::json::parse(*data);
    std::set<std::string> keys;
    for (const auto& [key, value] : instance.items())
      keys.insert(key);
    EXPECT_EQ(keys, (std::set<std::string>{"name", "id", "address", "port", "sslPort", "payload",
                                           "registrationTimeUTC", "serviceType", "uriSpec"}));
    EXPECT_EQ(instance["name"], service);
    EXPECT_EQ(instance["id"], ids[0]);
    EXPECT_EQ(instance["address"], "127.0.0.1");
    EXPECT_TRUE(instance["port"].is_number_integer());
    EXPECT_EQ(instance["port"], server->port);
    EXPECT_TRUE(instance["sslPort"].is_null());
    EXPECT_TRUE(instance["payload"].is_null());
    EXPECT_TRUE(instance["uriSpec"].is_null());
    EXPECT_TRUE(instance["registrationTimeUTC"].is_number_integer());
    EXPECT_EQ(instance["serviceType"], "DYNAMIC");
  }

  server->process->send_signal(SIGTERM);
  // Deregistered first: the node goes before the process exits.
  EXPECT_TRUE(eventually([&] { return echo_instances().empty(); }, milliseconds(3000)));
  const std::optional<int> status =
      server->process->wait_exit(testing::scaled(milliseconds(10000)));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(DiscoveryTest, ChannelInitFailsClearlyWhenZooKeeperIsUnreachable) {
  const std::string hosts = zookeeper_->hosts();
  zookeeper_->stop();
  Channel channel;
  ChannelOptions options;
  options.naming_timeout_ms = 1000;
  std::string error;
  const auto start = Clock::now();
  EXPECT_FALSE(channel.Init("zk://" + hosts + kBase + "/" + kEchoService, options, &error));
  EXPECT_NE(error.find("ZooKeeper unreachable"), std::string::npos) << error;
  EXPECT_LT(Clock::now() - start, testing::scaled(milliseconds(3000)));
}

TEST_F(DiscoveryTest, NoInstancesYetGives112UntilOneRegisters) {
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  std::string error;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message("anyone?");
  example::EchoResponse response;
  Controller early;
  stub.Echo(&early, &request, &response, nullptr);
  EXPECT_EQ(early.ErrorCode(), 112) << early.ErrorText();

  auto server = start_registered_server();
  ASSERT_TRUE(server.has_value());
  EXPECT_TRUE(eventually(
      [&] {
        Controller controller;
        stub.Echo(&controller, &request, &response, nullptr);
        return !controller.Failed();
      },
      milliseconds(3000)));
  EXPECT_EQ(response.message(), "anyone?");
}

TEST_F(DiscoveryTest, HotPlugUnderLoad) {
  auto first = start_registered_server();
  ASSERT_TRUE(first.has_value());
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  options.timeout_ms = static_cast<int>(testing::scaled(milliseconds(3000)).count());
  std::string error;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;
  testing::EchoLoad load(channel, 4000000, 64);
  load.start_background();
  ASSERT_TRUE(load.wait_issued(5000));

  // A second server joins: it gets calls within 2 s.
  auto second = start_registered_server();
  ASSERT_TRUE(second.has_value());
  const auto joined_at = Clock::now();
  std::optional<Clock::time_point> second_used;
  ASSERT_TRUE(eventually(
      [&] {
        second_used = load.first_answer_from(address_of(*second), joined_at);
        return second_used.has_value();
      },
      milliseconds(2000)))
      << "the new server got no call within 2 s";

  // The first leaves gracefully: no call fails.
  const size_t before_leave = load.issued();
  first->process->send_signal(SIGTERM);
  ASSERT_TRUE(first->process->wait_exit(testing::scaled(milliseconds(10000))).has_value());
  ASSERT_TRUE(load.wait_issued(load.issued() + 5000));
  {
    const auto outcomes = load.outcomes();
    for (size_t i = 0; i < outcomes.size(); ++i) {
      if (outcomes[i].code >= 0) {
        ASSERT_EQ(outcomes[i].code, 0) << "call " << i << " (" << before_leave
                                       << " before the leave) from " << outcomes[i].remote_side;
      }
    }
  }

  // A third joins, then the second dies hard: only its calls in flight fail.
  auto third = start_registered_server();
  ASSERT_TRUE(third.has_value());
  const auto third_joined = Clock::now();
  ASSERT_TRUE(eventually(
      [&] { return load.first_answer_from(address_of(*third), third_joined).has_value(); },
      milliseconds(2000)));
  second->process->send_signal(SIGKILL);
  ASSERT_TRUE(second->process->wait_exit(milliseconds(5000)).has_value());
  const auto killed_at = Clock::now();
  ASSERT_TRUE(load.wait_issued(load.issued() + 5000));
  load.stop_background();
  load.wait_all();

  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  EXPECT_GE(load.issued(), 20000u);
  for (const testing::CallOutcome& outcome : load.outcomes()) {
    EXPECT_TRUE(outcome.code == 0 || outcome.code == 1009) << outcome.code;
    if (outcome.code == 1009) {
      EXPECT_EQ(outcome.remote_side, address_of(*second));
    }
  }
  // ZooKeeper drops the dead server's instance once its session times out.
  EXPECT_TRUE(eventually([&] { return echo_instances().size() == 1; }, milliseconds(6000)));
  EXPECT_GT(Clock::now() - killed_at, milliseconds(0));
}

TEST_F(DiscoveryTest, ZooKeeperOutageKeepsTheLastListAndRecovers) {
  auto first = start_registered_server();
  ASSERT_TRUE(first.has_value());
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  std::string error;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;
  testing::EchoLoad load(channel, 4000000, 16);
  load.start_background();
  ASSERT_TRUE(load.wait_issued(2000));

  zookeeper_->stop();
  const size_t at_outage = load.issued();
  ASSERT_TRUE(load.wait_issued(at_outage + 3000));  // Still served.
  std::this_thread::sleep_for(milliseconds(500));

  ASSERT_TRUE(zookeeper_->restart(&error)) << error;
  // Watches work again: a server started now is discovered.
  auto second = start_registered_server();
  ASSERT_TRUE(second.has_value());
  const auto joined_at = Clock::now();
  EXPECT_TRUE(
      eventually([&] { return load.first_answer_from(address_of(*second), joined_at).has_value(); },
                 milliseconds(8000)));
  load.stop_background();
  load.wait_all();
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  for (const testing::CallOutcome& outcome : load.outcomes()) {
    ASSERT_EQ(outcome.code, 0) << "no call fails through a ZooKeeper outage";
  }
}

// Past the session timeout both the server and the client give their
// sessions up and open new ones; the server's instance node then still
// belongs to the old session, and is replaced. Watchers must never see the
// service without it (a delete, then a create, left an empty list for a
// moment: calls failed with 112).
TEST_F(DiscoveryTest, AnOutageLongerThanTheSessionTimeoutNeverEmptiesTheList) {
  auto server = start_registered_server();
  ASSERT_TRUE(server.has_value());
  ZooKeeperUri uri{zookeeper_->hosts(), std::string(kBase) + "/" + kEchoService};
  ZooKeeperOptions source_options;
  source_options.session_timeout_ms = 2000;
  ZooKeeperNamingSource source(uri, source_options);
  std::mutex mutex;
  std::vector<size_t> list_sizes;
  std::string error;
  ASSERT_TRUE(source.start(
      [&](const std::vector<ServerAddress>& servers) {
        std::lock_guard lock(mutex);
        list_sizes.push_back(servers.size());
      },
      &error))
      << error;
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.zookeeper_session_timeout_ms = 2000;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;
  testing::EchoLoad load(channel, 4000000, 8);
  load.start_background(std::chrono::microseconds(200));
  ASSERT_TRUE(load.wait_issued(1000));

  const std::string service_path = std::string(kBase) + "/" + kEchoService;
  auto reader = std::make_unique<RawZooKeeper>(zookeeper_->hosts());
  ASSERT_TRUE(reader->connected());
  auto instance_owner = [&]() -> int64_t {
    const std::vector<std::string> ids = reader->children(service_path);
    Stat stat;
    if (ids.size() != 1 || !reader->data(service_path + "/" + ids[0], &stat).has_value())
      return 0;
    return stat.ephemeralOwner;
  };
  const int64_t old_owner = instance_owner();
  ASSERT_NE(old_owner, 0);

  zookeeper_->stop();
  // Both sides decide their sessions are lost after 2 s without an answer.
  std::this_thread::sleep_for(milliseconds(3500));
  ASSERT_TRUE(zookeeper_->restart(&error)) << error;
  const auto restarted_at = Clock::now();
  // The server's instance now belongs to a new session of the server.
  reader = std::make_unique<RawZooKeeper>(zookeeper_->hosts());
  ASSERT_TRUE(reader->connected());
  int64_t new_owner = 0;
  ASSERT_TRUE(eventually(
      [&] {
        new_owner = instance_owner();
        return new_owner != 0 && new_owner != old_owner &&
               source.client()->sessions_replaced() >= 1;
      },
      milliseconds(10000)));
  // The old session's own expiry (ZooKeeper restarts its clock) removes
  // nothing: the node is the new session's.
  std::this_thread::sleep_for(milliseconds(2500));
  const size_t at_end = load.issued();
  ASSERT_TRUE(load.wait_issued(at_end + 1000));
  load.stop_background();
  load.wait_all();
  EXPECT_GT(Clock::now() - restarted_at, milliseconds(2500));
  EXPECT_EQ(instance_owner(), new_owner);
  source.stop();
  {
    std::lock_guard lock(mutex);
    for (size_t i = 0; i < list_sizes.size(); ++i)
      EXPECT_EQ(list_sizes[i], 1u) << "list " << i << " of " << list_sizes.size();
  }
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  std::map<int, size_t> codes;
  for (const testing::CallOutcome& outcome : load.outcomes()) {
    if (outcome.code >= 0)
      ++codes[outcome.code];
  }
  for (const auto& [code, count] : codes)
    EXPECT_EQ(code, 0) << count << " calls ended with " << code;
}

// Reads "session_id_hex password_hex" written by percore-server.
std::optional<clientid_t> read_session_file(const std::string& path) {
  std::ifstream file(path);
  std::string id_hex;
  std::string password_hex;
  if (!(file >> id_hex >> password_hex) || password_hex.size() != 32)
    return std::nullopt;
  clientid_t session{};
  session.client_id = static_cast<int64_t>(std::stoull(id_hex, nullptr, 16));
  for (size_t i = 0; i < 16; ++i) {
    session.passwd[i] = static_cast<char>(std::stoi(password_hex.substr(i * 2, 2), nullptr, 16));
  }
  return session;
}

// Expires a session the way ZooKeeper's own tests do: a second handle with
// the same id and password connects, then closes (which ends the session).
void expire_session(const std::string& hosts, const clientid_t& session) {
  RawZooKeeper twin(hosts, &session);
  ASSERT_TRUE(twin.connected());
}

TEST_F(DiscoveryTest, SessionExpiryReRegistersTheServerAndReArmsTheClient) {
  char directory_template[] = "/tmp/percore-session-XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string session_file = std::string(directory_template) + "/session";
  auto server = start_registered_server({"--zk-session-file", session_file});
  ASSERT_TRUE(server.has_value());
  const std::optional<clientid_t> server_session = read_session_file(session_file);
  ASSERT_TRUE(server_session.has_value());

  // A client-side source, watching.
  ZooKeeperUri uri{zookeeper_->hosts(), std::string(kBase) + "/" + kEchoService};
  ZooKeeperOptions options;
  options.session_timeout_ms = 2000;
  ZooKeeperNamingSource source(uri, options);
  std::mutex mutex;
  std::vector<ServerAddress> latest;
  std::string error;
  ASSERT_TRUE(source.start(
      [&](const std::vector<ServerAddress>& servers) {
        std::lock_guard lock(mutex);
        latest = servers;
      },
      &error))
      << error;
  auto latest_size = [&] {
    std::lock_guard lock(mutex);
    return latest.size();
  };
  ASSERT_EQ(latest_size(), 1u);

  // Expire both sessions. The session's owner reconnects at once and may
  // take the session back before the twin's close arrives: try until it
  // sticks.
  const std::string service_path = std::string(kBase) + "/" + kEchoService;
  RawZooKeeper reader(zookeeper_->hosts());
  auto server_re_registered = [&] {
    const std::optional<clientid_t> now = read_session_file(session_file);
    if (!now || now->client_id == server_session->client_id)
      return false;
    const std::vector<std::string> ids = reader.children(service_path);
    if (ids.size() != 1)
      return false;
    Stat stat;
    // Verified in ZooKeeper: the instance belongs to the new session.
    return reader.data(service_path + "/" + ids[0], &stat).has_value() &&
           stat.ephemeralOwner == now->client_id;
  };
  bool server_renewed = false;
  for (int attempt = 0; attempt < 5 && !server_renewed; ++attempt) {
    expire_session(zookeeper_->hosts(), *server_session);
    server_renewed = eventually(server_re_registered, milliseconds(3000));
  }
  EXPECT_TRUE(server_renewed) << "the server did not re-register under a new session";

  const auto [client_session_id, client_password] = source.client()->session();
  clientid_t client_session{};
  client_session.client_id = client_session_id;
  std::copy(client_password.begin(), client_password.end(), client_session.passwd);
  bool client_renewed = false;
  for (int attempt = 0; attempt < 5 && !client_renewed; ++attempt) {
    expire_session(zookeeper_->hosts(), client_session);
    client_renewed =
        eventually([&] { return source.client()->sessions_replaced() == 1; }, milliseconds(3000));
  }
  EXPECT_TRUE(client_renewed) << "the client did not replace its expired session";
  EXPECT_NE(source.client()->session().first, client_session_id);
  // It watches again: a new server shows up.
  auto second = start_registered_server();
  ASSERT_TRUE(second.has_value());
  EXPECT_TRUE(eventually([&] { return latest_size() == 2; }, milliseconds(5000)));
  source.stop();
  std::remove(session_file.c_str());
  rmdir(directory_template);
}

TEST_F(DiscoveryTest, OnlyHoldersOfTheCredentialCanChangeInstances) {
  char directory_template[] = "/tmp/percore-credential-XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string credential_file = std::string(directory_template) + "/credential";
  std::ofstream(credential_file) << "percore:s3cret\n";
  auto server = start_registered_server({"--registry-credential-file", credential_file});
  ASSERT_TRUE(server.has_value());

  RawZooKeeper stranger(zookeeper_->hosts());
  ASSERT_TRUE(stranger.connected());
  const std::string service_path = std::string(kBase) + "/" + kEchoService;
  const std::vector<std::string> ids = stranger.children(service_path);
  ASSERT_EQ(ids.size(), 1u);
  const std::string instance_path = service_path + "/" + ids[0];
  // Reads need no credential.
  EXPECT_TRUE(stranger.data(instance_path).has_value());
  // Writes do: delete, overwrite, add.
  EXPECT_EQ(zoo_delete(stranger.handle(), instance_path.c_str(), -1), ZNOAUTH);
  EXPECT_EQ(zoo_set(stranger.handle(), instance_path.c_str(), "{}", 2, -1), ZNOAUTH);
  EXPECT_EQ(zoo_create(stranger.handle(), (service_path + "/intruder").c_str(), "{}", 2,
                       &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0),
            ZNOAUTH);
  EXPECT_EQ(stranger.children(service_path).size(), 1u);
  std::remove(credential_file.c_str());
  rmdir(directory_template);
}

// The registry's threat: a process that can reach ZooKeeper but lacks the
// credential registers a rogue address under a protected service (clients
// would send it calls), or removes a legitimate instance (clients would lose
// it). Both are refused (ZNOAUTH), by a real percore-server and by a raw
// ZooKeeper session with no or a wrong credential, and clients only ever
// call the legitimate server.
TEST_F(DiscoveryTest, ARogueProcessCanNeitherRegisterNorRemoveAnInstanceAndClientsNeverSeeIt) {
  char directory_template[] = "/tmp/percore-rogue-XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string directory = directory_template;
  std::ofstream(directory + "/credential") << "percore:s3cret\n";
  std::ofstream(directory + "/wrong") << "percore:guess\n";
  auto server = start_registered_server({"--registry-credential-file", directory + "/credential"});
  ASSERT_TRUE(server.has_value());
  const std::string legitimate = "127.0.0.1:" + std::to_string(server->port);
  const std::string service_path = std::string(kBase) + "/" + kEchoService;
  const std::vector<std::string> before = echo_instances();
  ASSERT_EQ(before.size(), 1u);

  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  std::string error;
  ASSERT_TRUE(channel.Init(echo_target(), options, &error)) << error;

  // Rogue servers: without a credential, and with a wrong one. Each exits
  // at once saying why, and leaves nothing behind.
  for (const std::vector<std::string>& credential :
       {std::vector<std::string>{}, {"--registry-credential-file", directory + "/wrong"}}) {
    std::vector<std::string> argv = {testing::built_program("examples/percore-server"),
                                     "--listen", "127.0.0.1:0", "--io-threads", "1",
                                     "--registry", registry()};
    argv.insert(argv.end(), credential.begin(), credential.end());
    const std::string log = directory + "/rogue.log";
    auto rogue = testing::ChildProcess::start(argv, &error, log);
    ASSERT_NE(rogue, nullptr) << error;
    const std::optional<int> status = rogue->wait_exit(testing::scaled(milliseconds(15000)));
    ASSERT_TRUE(status.has_value()) << "the rogue server did not give up";
    EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1) << *status;
    std::ifstream in(log);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find("cannot register"), std::string::npos) << text;
    EXPECT_NE(text.find("not authenticated"), std::string::npos) << text;
    EXPECT_EQ(echo_instances(), before);
  }

  // Raw sessions, without and with a wrong credential: add, delete, overwrite.
  testing::RawZooKeeper stranger(zookeeper_->hosts());
  testing::RawZooKeeper impostor(zookeeper_->hosts());
  ASSERT_TRUE(stranger.connected() && impostor.connected());
  ASSERT_EQ(zoo_add_auth(impostor.handle(), "digest", "percore:guess", 13, nullptr, nullptr), ZOK);
  const std::string instance_path = service_path + "/" + before[0];
  const std::string rogue_instance =
      R"({"name":"example.EchoService","id":"rogue","address":"127.0.0.1","port":1,)"
      R"("registrationTimeUTC":0,"serviceType":"DYNAMIC"})";
  for (testing::RawZooKeeper* session : {&stranger, &impostor}) {
    EXPECT_EQ(zoo_create(session->handle(), (service_path + "/rogue").c_str(),
                         rogue_instance.data(), static_cast<int>(rogue_instance.size()),
                         &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL, nullptr, 0),
              ZNOAUTH);
    EXPECT_EQ(zoo_delete(session->handle(), instance_path.c_str(), -1), ZNOAUTH);
    EXPECT_EQ(zoo_set(session->handle(), instance_path.c_str(), rogue_instance.data(),
                      static_cast<int>(rogue_instance.size()), -1),
              ZNOAUTH);
    // Nor can it loosen the ACLs.
    EXPECT_EQ(zoo_set_acl(session->handle(), service_path.c_str(), -1, &ZOO_OPEN_ACL_UNSAFE),
              ZNOAUTH);
  }
  EXPECT_EQ(echo_instances(), before);

  // Every call goes to the legitimate server.
  example::EchoService_Stub stub(&channel);
  for (int i = 0; i < 50; ++i) {
    Controller controller;
    example::EchoRequest request;
    request.set_message("call " + std::to_string(i));
    example::EchoResponse response;
    stub.Echo(&controller, &request, &response, nullptr);
    ASSERT_FALSE(controller.Failed()) << "call " << i << ": " << controller.ErrorText();
    EXPECT_EQ(controller.remote_side(), legitimate) << "call " << i;
  }
  std::remove((directory + "/credential").c_str());
  std::remove((directory + "/wrong").c_str());
  std::remove((directory + "/rogue.log").c_str());
  rmdir(directory_template);
}

TEST_F(DiscoveryTest, CliListsRegisteredServicesAndInstances) {
  auto server = start_registered_server();
  ASSERT_TRUE(server.has_value());
  std::string error;
  auto cli = testing::ChildProcess::start(
      {testing::built_program("examples/percore-cli"), "list", registry()}, &error);
  ASSERT_NE(cli, nullptr) << error;
  const std::optional<std::string> echo_line =
      cli->wait_for_line("example.EchoService (1 instance)", testing::scaled(milliseconds(5000)));
  ASSERT_TRUE(echo_line.has_value());
  const std::optional<std::string> instance_line =
      cli->wait_for_line(address_of(*server), testing::scaled(milliseconds(5000)));
  EXPECT_TRUE(instance_line.has_value());
  const std::optional<int> status = cli->wait_exit(testing::scaled(milliseconds(5000)));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(DiscoveryTest, WildcardListenerMustAdvertiseAnAddress) {
  std::string error;
  auto server = testing::ChildProcess::start({testing::built_program("examples/percore-server"),
                                              "--listen", "0.0.0.0:0", "--registry", registry()},
                                             &error);
  ASSERT_NE(server, nullptr) << error;
  const std::optional<int> status = server->wait_exit(testing::scaled(milliseconds(5000)));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 2);
  EXPECT_TRUE(echo_instances().empty());

  // With --advertise it registers that address.
  auto advertised = start_registered_server({"--listen", "0.0.0.0:0", "--advertise", "127.0.0.1"});
  ASSERT_TRUE(advertised.has_value());
  RawZooKeeper reader(zookeeper_->hosts());
  const std::string service_path = std::string(kBase) + "/" + kEchoService;
  const std::vector<std::string> ids = reader.children(service_path);
  ASSERT_EQ(ids.size(), 1u);
  const nlohmann::json instance =
      nlohmann::json::parse(reader.data(service_path + "/" + ids[0]).value_or("{}"));
  EXPECT_EQ(instance["address"], "127.0.0.1");
}

}  // namespace
}  // namespace percore
