// Discovery against a real 3-member ZooKeeper ensemble on loopback ports:
// its leader killed (kill -9) under load, then a follower. Registrations
// survive (their sessions move to another member), the client's list stays
// right and its watches keep working, and no call is lost or doubled.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include <percore/client_proxy/channel.h>
#include "test/integration/discovery_fixture.h"
#include "test/support/child_process.h"
#include "test/support/echo_load.h"
#include "test/support/eventually.h"
#include "test/support/raw_zookeeper.h"
#include "test/support/slack.h"
#include "test/support/zookeeper_ensemble.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;
using testing::eventually;
using testing::RawZooKeeper;
using testing::scaled;

class DiscoveryEnsembleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    std::string error;
    ensemble_ = testing::ZooKeeperEnsemble::start(&error);
    ASSERT_NE(ensemble_, nullptr) << error;
  }

  std::string registry() const { return "zk://" + ensemble_->hosts() + kBase; }

  std::optional<testing::ServerProcess> start_registered_server() {
    // A 6 s session outlives an election (well under 2 s with tickTime 200).
    return testing::start_server_process({"--io-threads", "1", "--workers", "1", "--registry",
                                          registry(), "--zk-session-timeout-ms", "6000",
                                          "--deregister-delay-ms", "300"});
  }

  // Echo instances now: node name -> owning session.
  std::map<std::string, int64_t> echo_registrations() {
    RawZooKeeper reader(ensemble_->hosts());
    std::map<std::string, int64_t> owners;
    for (const std::string& id : reader.children(kEchoPath)) {
      Stat stat{};
      if (reader.data(kEchoPath + "/" + id, &stat))
        owners[id] = stat.ephemeralOwner;
    }
    return owners;
  }

  bool kill_member(size_t index) {
    ensemble_->member(index).kill_hard();
    std::string error;
    const bool serving = ensemble_->wait_serving(scaled(milliseconds(30000)), &error);
    EXPECT_TRUE(serving) << error;
    return serving;
  }

  std::unique_ptr<testing::ZooKeeperEnsemble> ensemble_;
};

TEST_F(DiscoveryEnsembleTest, LeaderAndFollowerDeathsLoseNoRegistrationAndNoCall) {
  auto first = start_registered_server();
  auto second = start_registered_server();
  ASSERT_TRUE(first.has_value() && second.has_value());
  const std::map<std::string, int64_t> registered = echo_registrations();
  ASSERT_EQ(registered.size(), 2u);

  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 2};
  options.timeout_ms = static_cast<int>(scaled(milliseconds(3000)).count());
  std::string error;
  ASSERT_TRUE(channel.Init(registry() + "/" + kEchoService, options, &error)) << error;
  ASSERT_TRUE(eventually([&] { return channel.stats().total.servers == 4; }, milliseconds(3000)))
      << "2 servers in each of 2 groups";

  // The list the client holds, sampled all along.
  std::atomic<bool> sampling{true};
  std::atomic<int> fewest{4};
  std::atomic<int> most{4};
  std::thread sampler([&] {
    while (sampling.load()) {
      const int servers = channel.stats().total.servers;
      fewest.store(std::min(fewest.load(), servers));
      most.store(std::max(most.load(), servers));
      std::this_thread::sleep_for(milliseconds(10));
    }
  });

  testing::EchoLoad load(channel, 4000000, 32);
  load.start_background();
  ASSERT_TRUE(load.wait_issued(3000));

  const std::optional<size_t> leader = ensemble_->leader();
  ASSERT_TRUE(leader.has_value());
  const auto killed_at = Clock::now();
  ASSERT_TRUE(kill_member(*leader));
  std::printf("a new leader serves %lld ms after the kill\n",
              static_cast<long long>(
                  std::chrono::duration_cast<milliseconds>(Clock::now() - killed_at).count()));
  ASSERT_TRUE(load.wait_issued(load.issued() + 5000));
  // The same nodes of the same sessions: they moved, nothing was re-created.
  EXPECT_EQ(echo_registrations(), registered);

  // The client's watches work after the fail-over: a server that joins is
  // found, and one that leaves is dropped (gracefully: no call fails).
  {
    auto third = start_registered_server();
    ASSERT_TRUE(third.has_value());
    EXPECT_TRUE(eventually([&] { return channel.stats().total.servers == 6; }, milliseconds(5000)));
    third->process->send_signal(SIGTERM);
    ASSERT_TRUE(third->process->wait_exit(scaled(milliseconds(10000))).has_value());
    EXPECT_TRUE(eventually([&] { return channel.stats().total.servers == 4; }, milliseconds(5000)));
  }
  fewest.store(4);
  most.store(4);

  // The old leader comes back as a follower; then a follower dies.
  ASSERT_TRUE(ensemble_->member(*leader).restart(&error)) << error;
  ASSERT_TRUE(ensemble_->wait_serving(scaled(milliseconds(30000)), &error)) << error;
  const std::optional<size_t> new_leader = ensemble_->leader();
  ASSERT_TRUE(new_leader.has_value());
  const size_t follower = (*new_leader + 1) % ensemble_->size();
  ASSERT_TRUE(kill_member(follower));
  ASSERT_TRUE(load.wait_issued(load.issued() + 5000));
  EXPECT_EQ(echo_registrations(), registered);

  load.stop_background();
  load.wait_all();
  sampling.store(false);
  sampler.join();
  EXPECT_EQ(fewest.load(), 4) << "the client's list lost a server";
  EXPECT_EQ(most.load(), 4);

  // No call lost or doubled: every call ended exactly once, and OK.
  EXPECT_EQ(load.ledger().violations(load.issued()), "");
  size_t failed = 0;
  for (const testing::CallOutcome& outcome : load.outcomes())
    failed += outcome.code != 0;
  EXPECT_EQ(failed, 0u);
  std::printf("%zu calls, %zu failed, 0 lost or doubled\n", load.issued(), failed);

  // The CLI reads the ensemble through a multi-host URI.
  auto cli = testing::ChildProcess::start(
      {testing::built_program("examples/percore-cli"), "list", registry()}, &error);
  ASSERT_NE(cli, nullptr) << error;
  EXPECT_TRUE(
      cli->wait_for_line("example.EchoService (2 instances)", scaled(milliseconds(5000))));
  const std::optional<std::string> line =
      cli->wait_for_line(address_of(*first), scaled(milliseconds(5000)));
  ASSERT_TRUE(line.has_value());
  EXPECT_NE(line->find("enabled"), std::string::npos) << *line;
  EXPECT_NE(line->find("registered 20"), std::string::npos) << *line;
  const std::optional<int> status = cli->wait_exit(scaled(milliseconds(5000)));
  ASSERT_TRUE(status.has_value());
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

// A member that accepts connections but never answers (frozen) while the
// others serve: every start-up still gets its session, within its timeout,
// though the C client alone would wait 2/3 of the session timeout on it.
TEST_F(DiscoveryEnsembleTest, AFrozenMemberFailsNoStartUp) {
  auto before = start_registered_server();
  ASSERT_TRUE(before.has_value());
  const std::optional<size_t> leader = ensemble_->leader();
  ASSERT_TRUE(leader.has_value());
  Frozen frozen(ensemble_->member((*leader + 1) % ensemble_->size()).pid());

  for (int attempt = 0; attempt < 4; ++attempt) {
    Channel channel;
    ChannelOptions options;
    options.naming_timeout_ms = 5000;
    std::string error;
    const auto start = Clock::now();
    ASSERT_TRUE(channel.Init(registry() + "/" + kEchoService, options, &error))
        << "attempt " << attempt << ": " << error;
    EXPECT_LT(Clock::now() - start, scaled(milliseconds(5000)));
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string error;
    auto cli = testing::ChildProcess::start(
        {testing::built_program("examples/percore-cli"), "list", registry()}, &error);
    ASSERT_NE(cli, nullptr) << error;
    EXPECT_TRUE(cli->wait_for_line("example.EchoService (1 instance)", scaled(milliseconds(6000))));
    const std::optional<int> status = cli->wait_exit(scaled(milliseconds(6000)));
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(WEXITSTATUS(*status), 0);
  }
  auto after = start_registered_server();
  ASSERT_TRUE(after.has_value()) << "a server could not register";
  EXPECT_TRUE(eventually([&] { return echo_registrations().size() == 2; }, milliseconds(3000)));
}

}  // namespace
}  // namespace percore
