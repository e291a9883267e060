// Subsetting and file:// lists with real servers over loopback (in-process
// percore Servers), no ZooKeeper needed.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include "examples/echo_service.h"
#include <percore/proto/echo.pb.h>
#include <percore/server_io/server.h>
#include "test/support/echo_server.h"
#include "test/support/eventually.h"
#include "test/support/slack.h"

namespace percore {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

using testing::eventually;

class EchoServers {
 public:
  explicit EchoServers(int count) {
    for (int i = 0; i < count; ++i)
      servers_.push_back(std::make_unique<testing::EchoServer>());
  }
  Server& at(int i) { return servers_[i]->server(); }
  std::string address(int i) const { return servers_[i]->address(); }
  std::string list() const {
    std::string list = "list://";
    for (size_t i = 0; i < servers_.size(); ++i) {
      if (i > 0)
        list += ',';
      list += address(i);
    }
    return list;
  }
  void stop(int i) { servers_[i].reset(); }
  int size() const { return static_cast<int>(servers_.size()); }
  // Connections each server has accepted.
  std::vector<uint64_t> connections() const {
    std::vector<uint64_t> counts;
    for (const auto& server : servers_) {
      counts.push_back(server ? server->server().stats().connections_accepted : 0);
    }
    return counts;
  }

 private:
  std::vector<std::unique_ptr<testing::EchoServer>> servers_;
};

std::string echo(Channel& channel, const std::string& text, Controller& controller) {
  example::EchoService_Stub stub(&channel);
  example::EchoRequest request;
  request.set_message(text);
  example::EchoResponse response;
  stub.Echo(&controller, &request, &response, nullptr);
  return response.message();
}

TEST(SubsettingTest, ThirtyGroupsOverNineServersGiveTenConnectionsEach) {
  EchoServers servers(9);
  // Three client processes (ids 0, 1, 2) of ten groups each.
  std::vector<std::unique_ptr<Channel>> clients;
  for (int client = 0; client < 3; ++client) {
    ChannelOptions options;
    options.private_groups = ClientRuntimeOptions{.groups = 10};
    options.subset_size = 3;
    options.client_id = client;
    clients.push_back(std::make_unique<Channel>());
    std::string error;
    ASSERT_TRUE(clients.back()->Init(servers.list(), options, &error)) << error;
  }
  ASSERT_TRUE(eventually(
      [&] {
        uint64_t total = 0;
        for (uint64_t count : servers.connections())
          total += count;
        return total >= 90;
      },
      milliseconds(5000)));
  std::this_thread::sleep_for(milliseconds(100));  // Nothing more comes.
  for (uint64_t count : servers.connections())
    EXPECT_EQ(count, 10u);
}

TEST(SubsettingTest, GroupWhoseSubsetIsDownFallsBackToAnyServer) {
  EchoServers servers(3);
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  options.subset_size = 1;
  options.client_id = 0;
  options.backoff_max_ms = 200;
  Channel channel;
  ASSERT_TRUE(channel.Init(servers.list(), options));
  Controller first;
  ASSERT_EQ(echo(channel, "hi", first), "hi") << first.ErrorText();
  // The one server of its subset.
  int subset = -1;
  for (int i = 0; i < servers.size(); ++i) {
    if (servers.address(i) == first.remote_side())
      subset = i;
  }
  ASSERT_GE(subset, 0);
  EXPECT_EQ(servers.connections()[subset], 1u);
  servers.stop(subset);

  // Calls still complete, on the other servers.
  int answered = 0;
  for (int i = 0; i < 20; ++i) {
    Controller controller;
    if (echo(channel, "still?", controller) == "still?") {
      ++answered;
      EXPECT_NE(controller.remote_side(), first.remote_side());
    } else {
      // The call in flight when the server went may fail; later ones may not.
      EXPECT_LT(i, 2) << controller.ErrorCode() << " " << controller.ErrorText();
    }
  }
  EXPECT_GE(answered, 18);
}

TEST(FileNamingTest, EditingTheFileAddsAndRemovesServers) {
  EchoServers servers(2);
  char directory_template[] = "/tmp/percore-file-XXXXXX";
  ASSERT_NE(mkdtemp(directory_template), nullptr);
  const std::string path = std::string(directory_template) + "/servers.txt";
  auto write_list = [&](const std::string& content) {
    const std::string temporary = path + ".tmp";
    std::ofstream(temporary) << content;
    std::rename(temporary.c_str(), path.c_str());
  };
  write_list("# the echo servers\n" + servers.address(0) + "\n");
  Channel channel;
  ChannelOptions options;
  options.private_groups = ClientRuntimeOptions{.groups = 1};
  ASSERT_TRUE(channel.Init("file://" + path, options));
  Controller first;
  ASSERT_EQ(echo(channel, "one", first), "one") << first.ErrorText();
  EXPECT_EQ(first.remote_side(), servers.address(0));

  write_list(servers.address(1) + "\n");
  EXPECT_TRUE(eventually(
      [&] {
        Controller controller;
        return echo(channel, "two", controller) == "two" &&
               controller.remote_side() == servers.address(1);
      },
      milliseconds(2000)));
  // The removed server is drained and gets nothing new.
  for (int i = 0; i < 10; ++i) {
    Controller controller;
    EXPECT_EQ(echo(channel, "more", controller), "more");
    EXPECT_EQ(controller.remote_side(), servers.address(1));
  }
  std::remove(path.c_str());
  rmdir(directory_template);
}

}  // namespace
}  // namespace percore
