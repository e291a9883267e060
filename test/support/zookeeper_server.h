#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "test/support/child_process.h"

namespace percore::testing {

class ZooKeeperEnsemble;

// Where a ZooKeeper server runs: the address it serves on and the argv
// prefix that starts it there (e.g. TestNetwork::wrapper(host) for a test
// host). Default: loopback, started directly.
struct ZooKeeperPlacement {
  std::string address = "127.0.0.1";
  std::vector<std::string> wrapper;
};

// A real ZooKeeper server (Debian's `zookeeper` package) for tests, on a
// loopback port, with its configuration, data and log in a temporary
// directory of its own. Alone (start()), or one member of a
// ZooKeeperEnsemble, which creates its members.
//
// Started with `zkServer.sh start-foreground`; the server's stdout and stderr
// go to `zookeeper.out` in that directory (never to a pipe that could fill
// up). Ready means: `ruok` answers `imok`, `srvr` says `Mode: standalone`
// (`Mode: leader` or `Mode: follower` for an ensemble member), and `conf`
// names this server's data directory (so a stranger that took the port is
// never mistaken for it).
//
// The configuration is made for fast tests: tickTime=200, sessions of
// 400 ms to 20 s, no fsync, no admin server, no JMX, all four-letter words.
//
// No process is left behind: the destructor stops the server by pid and
// removes the directory; the JVM also gets SIGKILL if the thread that
// started it dies (a crashed test), so start it from a thread that lives as
// long as the server, e.g. the test's main thread.
//
// Owns: the JVM process and the temporary directory. Threads: one at a time.
class ZooKeeperServer {
 public:
  // Starts a server on `port`, or on a free loopback port when 0, and waits
  // until it is ready (30 s, scaled by the test slack). Null with *error
  // (including the tail of the server's log) on failure.
  static std::unique_ptr<ZooKeeperServer> start(std::string* error, int port = 0);
  ~ZooKeeperServer();
  ZooKeeperServer(const ZooKeeperServer&) = delete;
  ZooKeeperServer& operator=(const ZooKeeperServer&) = delete;

  int port() const { return port_; }
  // "ADDRESS:PORT" (127.0.0.1 unless placed on a test host), for
  // zookeeper_init and zk:// URIs.
  std::string hosts() const;
  // The JVM's pid while it runs; the last one after stop() or kill_hard().
  pid_t pid() const { return pid_; }
  // The temporary directory: zoo.cfg, data/, zookeeper.out.
  const std::string& directory() const { return directory_; }

  // What `srvr` says after "Mode: " ("standalone", "leader", "follower");
  // empty while the server does not serve (stopped, starting, electing).
  std::string mode() const;

  // SIGTERM, up to 5 s, then SIGKILL. Keeps the data directory, so that
  // restart() brings back the same nodes and sessions.
  void stop();
  // SIGKILL at once (a crash); keeps the data directory.
  void kill_hard();
  // Starts again on the same port with the same data and waits until ready
  // (30 s, scaled). An ensemble member is ready once it has joined a quorum,
  // so the other running members must make one with it.
  bool restart(std::string* error);
  bool running() const { return process_ != nullptr; }

  // The last `lines` lines of the server's log, for failure messages.
  std::string log_tail(size_t lines = 40) const;

 private:
  friend class ZooKeeperEnsemble;

  ZooKeeperServer(std::string directory, ZooKeeperPlacement placement, int port,
                  bool ensemble_member)
      : directory_(std::move(directory)),
        placement_(std::move(placement)),
        port_(port),
        ensemble_member_(ensemble_member) {}

  // `members` servers configured as one ensemble, not launched yet: they
  // only become ready together. On free loopback ports without
  // `placements`; else member i at placements[i] on ports 2181, 2888 and
  // 3888. Empty with *error on failure.
  static std::vector<std::unique_ptr<ZooKeeperServer>> create_ensemble(
      size_t members, const std::vector<ZooKeeperPlacement>& placements, std::string* error);

  bool launch(std::string* error);
  bool wait_ready(std::chrono::milliseconds timeout, std::string* error);
  // The mode when this server is ready (see the class comment), else empty.
  std::string ready_mode() const;
  // True once the JVM has exited, which it then reaps; *how says why
  // ("exit status 3"). False while it runs or when it was not started.
  bool exited(std::string* how);

  std::string directory_;
  ZooKeeperPlacement placement_;
  int port_;
  // Ready as a leader or follower rather than standalone.
  bool ensemble_member_;
  pid_t pid_ = -1;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace percore::testing
