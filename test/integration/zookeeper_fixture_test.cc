// The ZooKeeper test fixture: a real server (Debian's package) that a real
// client session uses, that stops and comes back on the same port with its
// data and sessions, reports why it could not start, and leaves no process
// behind; and a real three-member ensemble that elects a new leader when
// its leader dies, keeps serving without a follower, and takes killed
// members back.

#define THREADED
#include <zookeeper/zookeeper.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "test/support/eventually.h"
#include "test/support/slack.h"
#include "test/support/zookeeper_ensemble.h"
#include "test/support/zookeeper_server.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using testing::eventually;
using testing::scaled;
using testing::ZooKeeperEnsemble;
using testing::ZooKeeperServer;

constexpr int kSessionTimeoutMs = 10000;

// One ZooKeeper C client session whose watcher records the session state.
class Session {
 public:
  explicit Session(const std::string& hosts) {
    handle_ = zookeeper_init(hosts.c_str(), &Session::watcher, kSessionTimeoutMs, nullptr, this, 0);
  }
  ~Session() {
    if (handle_ != nullptr)
      zookeeper_close(handle_);
  }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  zhandle_t* handle() const { return handle_; }
  int64_t session_id() const { return zoo_client_id(handle_)->client_id; }

  // True once the watcher has reported `state`, within `timeout`.
  bool wait_for_state(int state, milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return state_ == state; });
  }

 private:
  // Runs on the library's completion thread: records and wakes, never blocks.
  static void watcher(zhandle_t*, int type, int state, const char*, void* context) {
    if (type != ZOO_SESSION_EVENT)
      return;
    auto* self = static_cast<Session*>(context);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->state_ = state;
    self->changed_.notify_all();
  }

  zhandle_t* handle_ = nullptr;
  std::mutex mutex_;
  std::condition_variable changed_;
  int state_ = 0;
};

std::string read_node(zhandle_t* handle, const char* path) {
  char buffer[64];
  int length = sizeof(buffer);
  const int result = zoo_get(handle, path, 0, buffer, &length, nullptr);
  if (result != ZOK)
    return std::string("error ") + zerror(result);
  return std::string(buffer, static_cast<size_t>(length < 0 ? 0 : length));
}

// The session that owns the ephemeral node at `path`; 0 if there is none.
int64_t ephemeral_owner(zhandle_t* handle, const char* path) {
  Stat stat{};
  return zoo_exists(handle, path, 0, &stat) == ZOK ? stat.ephemeralOwner : 0;
}

bool process_exists(pid_t pid) {
  return ::kill(pid, 0) == 0 || errno != ESRCH;
}

class ZooKeeperFixtureTest : public ::testing::Test {
 protected:
  void SetUp() override { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); }
};

// Waits for `session` and creates `root` (PERSISTENT, "hello") and
// `root`/ephemeral (EPHEMERAL): the nodes each test then sees survive.
void connect_and_create_nodes(Session& session, const std::string& root) {
  ASSERT_NE(session.handle(), nullptr);
  ASSERT_TRUE(session.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(10000))));
  ASSERT_EQ(zoo_create(session.handle(), root.c_str(), "hello", 5, &ZOO_OPEN_ACL_UNSAFE,
                       ZOO_PERSISTENT, nullptr, 0),
            ZOK);
  const std::string ephemeral = root + "/ephemeral";
  ASSERT_EQ(zoo_create(session.handle(), ephemeral.c_str(), "", 0, &ZOO_OPEN_ACL_UNSAFE,
                       ZOO_EPHEMERAL, nullptr, 0),
            ZOK);
}

TEST_F(ZooKeeperFixtureTest, SessionSurvivesAStopAndRestartOnTheSamePort) {
  std::string error;
  auto server = ZooKeeperServer::start(&error);
  ASSERT_NE(server, nullptr) << error;
  const int port = server->port();
  EXPECT_GT(port, 0);
  EXPECT_EQ(server->hosts(), "127.0.0.1:" + std::to_string(port));
  const pid_t first_pid = server->pid();
  EXPECT_TRUE(process_exists(first_pid));

  Session session(server->hosts());
  ASSERT_NO_FATAL_FAILURE(connect_and_create_nodes(session, "/fixture"));
  EXPECT_EQ(read_node(session.handle(), "/fixture"), "hello");
  const int64_t session_id = session.session_id();

  server->stop();
  EXPECT_FALSE(server->running());
  EXPECT_FALSE(process_exists(first_pid));
  EXPECT_TRUE(session.wait_for_state(ZOO_CONNECTING_STATE, scaled(milliseconds(10000))));

  ASSERT_TRUE(server->restart(&error)) << error;
  EXPECT_EQ(server->port(), port);
  EXPECT_NE(server->pid(), first_pid);
  // The same session comes back (well within its timeout) and finds the
  // node, and its ephemeral node, in the kept data directory.
  ASSERT_TRUE(session.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(kSessionTimeoutMs))));
  EXPECT_EQ(session.session_id(), session_id);
  EXPECT_EQ(read_node(session.handle(), "/fixture"), "hello");
  EXPECT_EQ(zoo_exists(session.handle(), "/fixture/ephemeral", 0, nullptr), ZOK);

  const pid_t second_pid = server->pid();
  const std::string directory = server->directory();
  EXPECT_TRUE(std::filesystem::exists(directory + "/zoo.cfg"));
  server.reset();
  EXPECT_FALSE(process_exists(second_pid));
  EXPECT_FALSE(std::filesystem::exists(directory));
}

TEST_F(ZooKeeperFixtureTest, KeepsTheDataAcrossAHardKill) {
  std::string error;
  auto server = ZooKeeperServer::start(&error);
  ASSERT_NE(server, nullptr) << error;
  {
    Session session(server->hosts());
    ASSERT_TRUE(session.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(10000))));
    ASSERT_EQ(zoo_create(session.handle(), "/kept", "data", 4, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT,
                         nullptr, 0),
              ZOK);
  }
  const pid_t killed = server->pid();
  server->kill_hard();
  EXPECT_FALSE(process_exists(killed));

  ASSERT_TRUE(server->restart(&error)) << error;
  Session session(server->hosts());
  ASSERT_TRUE(session.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(10000))));
  EXPECT_EQ(read_node(session.handle(), "/kept"), "data");
}

TEST_F(ZooKeeperFixtureTest, TwoServersGetTheirOwnPortsAndDirectories) {
  std::string error;
  auto first = ZooKeeperServer::start(&error);
  ASSERT_NE(first, nullptr) << error;
  auto second = ZooKeeperServer::start(&error);
  ASSERT_NE(second, nullptr) << error;
  EXPECT_NE(first->port(), second->port());
  EXPECT_NE(first->directory(), second->directory());
  EXPECT_NE(first->pid(), second->pid());
}

TEST_F(ZooKeeperFixtureTest, ReportsWhyItCouldNotStartWhenThePortIsTaken) {
  const int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(holder, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  ASSERT_EQ(::getsockname(holder, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int port = ntohs(address.sin_port);

  std::string error;
  const auto started = std::chrono::steady_clock::now();
  auto server = ZooKeeperServer::start(&error, port);
  EXPECT_EQ(server, nullptr);
  EXPECT_NE(error.find("exited before it was ready"), std::string::npos) << error;
  EXPECT_NE(error.find("Address already in use"), std::string::npos) << error;
  // It fails as soon as the JVM gives up, not at the 30 s deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - started, scaled(milliseconds(15000)));
  ::close(holder);
}

// The ensemble outlives the death of its leader and then of a follower; a
// client session outlives both, and killed members come back as followers.
TEST_F(ZooKeeperFixtureTest, EnsembleElectsANewLeaderKeepsTheSessionAndTakesMembersBack) {
  std::string error;
  auto ensemble = ZooKeeperEnsemble::start(&error);
  ASSERT_NE(ensemble, nullptr) << error;
  ASSERT_EQ(ensemble->size(), 3u);
  std::set<int> ports;
  std::set<pid_t> pids;
  std::set<std::string> directories;
  std::string expected_hosts;
  for (size_t index = 0; index < ensemble->size(); ++index) {
    const ZooKeeperServer& member = ensemble->member(index);
    ports.insert(member.port());
    pids.insert(member.pid());
    directories.insert(member.directory());
    if (index > 0)
      expected_hosts += ',';
    expected_hosts += member.hosts();
  }
  EXPECT_EQ(ports.size(), 3u);
  EXPECT_EQ(pids.size(), 3u);
  EXPECT_EQ(directories.size(), 3u);
  EXPECT_EQ(ensemble->hosts(), expected_hosts);
  const std::optional<size_t> first_leader = ensemble->leader();
  ASSERT_TRUE(first_leader.has_value());
  for (size_t index = 0; index < ensemble->size(); ++index) {
    if (index != *first_leader) {
      EXPECT_EQ(ensemble->member(index).mode(), "follower") << index;
    }
  }

  Session session(ensemble->hosts());
  ASSERT_NO_FATAL_FAILURE(connect_and_create_nodes(session, "/ensemble"));
  const int64_t session_id = session.session_id();

  // The leader crashes: the other two elect a new one.
  ZooKeeperServer& old_leader = ensemble->member(*first_leader);
  const pid_t old_leader_pid = old_leader.pid();
  old_leader.kill_hard();
  EXPECT_FALSE(process_exists(old_leader_pid));
  ASSERT_TRUE(ensemble->wait_serving(scaled(milliseconds(30000)), &error)) << error;
  const std::optional<size_t> second_leader = ensemble->leader();
  ASSERT_TRUE(second_leader.has_value());
  EXPECT_NE(*second_leader, *first_leader);

  // The session moves to a live member (a request on the broken connection
  // may fail first) and keeps its id and its ephemeral node, which a new
  // session sees too.
  EXPECT_TRUE(eventually([&] { return read_node(session.handle(), "/ensemble") == "hello"; },
                         milliseconds(10000)));
  EXPECT_EQ(session.session_id(), session_id);
  {
    Session reader(ensemble->hosts());
    ASSERT_TRUE(reader.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(10000))));
    EXPECT_NE(reader.session_id(), session_id);
    EXPECT_EQ(read_node(reader.handle(), "/ensemble"), "hello");
    EXPECT_EQ(ephemeral_owner(reader.handle(), "/ensemble/ephemeral"), session_id);
  }

  // The old leader comes back with its data and follows the new one.
  ASSERT_TRUE(old_leader.restart(&error)) << error;
  EXPECT_NE(old_leader.pid(), old_leader_pid);
  EXPECT_EQ(old_leader.mode(), "follower");
  EXPECT_EQ(ensemble->leader(), second_leader);

  // A follower that never crashed dies: the leader keeps its place and the
  // remaining two still serve reads and writes.
  size_t follower = 0;
  while (follower == *first_leader || follower == *second_leader)
    ++follower;
  ensemble->member(follower).kill_hard();
  ASSERT_TRUE(ensemble->wait_serving(scaled(milliseconds(30000)), &error)) << error;
  EXPECT_EQ(ensemble->leader(), second_leader);
  EXPECT_TRUE(eventually(
      [&] {
        return zoo_set(session.handle(), "/ensemble", "again", 5, -1) == ZOK &&
               read_node(session.handle(), "/ensemble") == "again";
      },
      milliseconds(10000)));
  {
    Session reader(ensemble->hosts());
    ASSERT_TRUE(reader.wait_for_state(ZOO_CONNECTED_STATE, scaled(milliseconds(10000))));
    EXPECT_EQ(read_node(reader.handle(), "/ensemble"), "again");
    EXPECT_EQ(ephemeral_owner(reader.handle(), "/ensemble/ephemeral"), session_id);
  }

  // It comes back as a follower too: all three serve again.
  ASSERT_TRUE(ensemble->member(follower).restart(&error)) << error;
  EXPECT_EQ(ensemble->member(follower).mode(), "follower");
  ASSERT_TRUE(ensemble->wait_serving(scaled(milliseconds(30000)), &error)) << error;
  EXPECT_EQ(ensemble->leader(), second_leader);
  EXPECT_EQ(session.session_id(), session_id);
  EXPECT_EQ(ephemeral_owner(session.handle(), "/ensemble/ephemeral"), session_id);

  // Without a majority, wait_serving says so at once instead of waiting.
  ensemble->member(*first_leader).kill_hard();
  ensemble->member(follower).kill_hard();
  const auto asked = std::chrono::steady_clock::now();
  EXPECT_FALSE(ensemble->wait_serving(scaled(milliseconds(30000)), &error));
  EXPECT_NE(error.find("no quorum"), std::string::npos) << error;
  EXPECT_LT(std::chrono::steady_clock::now() - asked, scaled(milliseconds(5000)));

  std::vector<pid_t> last_pids;
  for (size_t index = 0; index < ensemble->size(); ++index)
    last_pids.push_back(ensemble->member(index).pid());
  ensemble.reset();
  for (const pid_t pid : last_pids)
    EXPECT_FALSE(process_exists(pid)) << pid;
  for (const std::string& directory : directories)
    EXPECT_FALSE(std::filesystem::exists(directory)) << directory;
}

TEST_F(ZooKeeperFixtureTest, AnEnsembleNeedsAMember) {
  std::string error;
  EXPECT_EQ(ZooKeeperEnsemble::start(&error, 0), nullptr);
  EXPECT_NE(error.find("at least one member"), std::string::npos) << error;
}

}  // namespace
}  // namespace percore
