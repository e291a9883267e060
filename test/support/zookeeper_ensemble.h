#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "test/support/zookeeper_server.h"

namespace percore::testing {

// A real ZooKeeper ensemble for tests: `members` ZooKeeperServers on
// loopback ports, each with its own temporary directory (zoo.cfg naming
// every member, data/myid, zookeeper.out). Members can be killed, stopped
// and restarted one by one through member(); a restarted member rejoins
// with the same configuration and data.
//
// No process is left behind: the destructor stops every member by pid and
// removes the directories, and each JVM gets SIGKILL if the thread that
// started it dies, as for ZooKeeperServer; so start the ensemble, and
// restart members, from the test's main thread.
//
// Owns: the member servers. Threads: one at a time.
class ZooKeeperEnsemble {
 public:
  // Starts `members` servers and waits until they serve: one leader, the
  // others followers (60 s, scaled by the test slack). Null with *error
  // (including the tails of the members' logs) on failure.
  static std::unique_ptr<ZooKeeperEnsemble> start(std::string* error, size_t members = 3);
  // The same with member i at placements[i] (one per member), each on
  // ZooKeeper's usual ports (2181 for clients): members on test hosts.
  static std::unique_ptr<ZooKeeperEnsemble> start_on(
      const std::vector<ZooKeeperPlacement>& placements, std::string* error);
  ~ZooKeeperEnsemble();
  ZooKeeperEnsemble(const ZooKeeperEnsemble&) = delete;
  ZooKeeperEnsemble& operator=(const ZooKeeperEnsemble&) = delete;

  size_t size() const { return members_.size(); }
  // "ADDRESS1:P1,ADDRESS2:P2,...": every member's client port, for
  // zookeeper_init and zk:// URIs.
  std::string hosts() const;
  // Member `index` (0-based; its myid is index + 1).
  ZooKeeperServer& member(size_t index) { return *members_.at(index); }
  const ZooKeeperServer& member(size_t index) const { return *members_.at(index); }

  // The running member whose `srvr` says `Mode: leader`; none while the
  // members elect one.
  std::optional<size_t> leader() const;
  // True once the running members serve again as one quorum: a majority of
  // all members runs, one is the leader, the others follow, within
  // `timeout`. False with *error (modes and log tails) otherwise, at once
  // when too few members run or one has exited.
  bool wait_serving(std::chrono::milliseconds timeout, std::string* error);

 private:
  static std::unique_ptr<ZooKeeperEnsemble> start_with(
      size_t members, const std::vector<ZooKeeperPlacement>& placements, std::string* error);
  explicit ZooKeeperEnsemble(std::vector<std::unique_ptr<ZooKeeperServer>> members)
      : members_(std::move(members)) {}

  // Every member's mode and the tail of its log, for failure messages.
  std::string report(size_t lines) const;

  std::vector<std::unique_ptr<ZooKeeperServer>> members_;
};

}  // namespace percore::testing
