#pragma once

// The fixture of the discovery tests: a real ZooKeeper server (Debian's
// package) on a free loopback port, and percore-server processes that
// register in it.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test/support/child_process.h"
#include "test/support/raw_zookeeper.h"
#include "test/support/zookeeper_server.h"

namespace percore {

inline constexpr char kBase[] = "/percore/services";
inline constexpr char kEchoService[] = "example.EchoService";
inline const std::string kEchoPath = std::string(kBase) + "/" + kEchoService;

// "127.0.0.1:PORT" of a server process, as Controller::remote_side() says.
inline std::string address_of(const testing::ServerProcess& server) {
  return "127.0.0.1:" + std::to_string(server.port);
}

// SIGSTOP a process for the scope; SIGCONT when it ends (even on a failed
// assertion), so that the fixture can stop it.
class Frozen {
 public:
  explicit Frozen(pid_t pid) : pid_(pid) {
    ::kill(pid_, SIGSTOP);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // Every thread stopped.
  }
  ~Frozen() { thaw(); }
  void thaw() {
    if (pid_ > 0)
      ::kill(pid_, SIGCONT);
    pid_ = -1;
  }

 private:
  pid_t pid_;
};

class DiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
    std::string error;
    zookeeper_ = testing::ZooKeeperServer::start(&error);
    ASSERT_NE(zookeeper_, nullptr) << error;
  }

  std::string registry() const { return "zk://" + zookeeper_->hosts() + kBase; }
  std::string echo_target() const { return registry() + "/" + kEchoService; }

  std::optional<testing::ServerProcess> start_registered_server(
      std::vector<std::string> extra = {}) {
    std::vector<std::string> arguments = {"--io-threads",
                                          "1",
                                          "--workers",
                                          "1",
                                          "--registry",
                                          registry(),
                                          "--zk-session-timeout-ms",
                                          "2000",
                                          "--deregister-delay-ms",
                                          "300"};
    arguments.insert(arguments.end(), extra.begin(), extra.end());
    return testing::start_server_process(arguments);
  }

  // Instance ids under the echo service node.
  std::vector<std::string> echo_instances() {
    testing::RawZooKeeper reader(zookeeper_->hosts());
    return reader.children(std::string(kBase) + "/" + kEchoService);
  }

  std::unique_ptr<testing::ZooKeeperServer> zookeeper_;
};

}  // namespace percore
