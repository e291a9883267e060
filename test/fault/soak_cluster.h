#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "test/support/child_process.h"
#include "test/support/test_network.h"
#include "test/support/zookeeper_ensemble.h"

namespace percore::testing {

// The soak's hosts on one TestNetwork: "client", servers "s1".."sN", and
// ZooKeeper members "zk1".."zkM" (an ensemble; one member is a standalone
// server in all but name). Each server host runs one percore-server on
// ADDRESS:8000, registered under zk://<ensemble>/percore/soak. The calling
// thread (the soak's control thread) is moved into the client host, so the
// Channels it makes, and the probes of ZooKeeper, run from there.
//
// Teardown, also on failure: the destructor stops every server and ZooKeeper
// member by pid, then deletes the namespaces.
//
// Owns: the network, the ensemble, the server processes and their logs.
// Threads: the control thread that created it; server_pid() any.
class SoakCluster {
 public:
  struct Options {
    int servers = 3;
    int zookeeper_members = 3;
    // The servers' ZooKeeper session timeout (a cut longer than it expires
    // the session).
    int server_session_timeout_ms = 2000;
    // The last server's SO_SNDBUF and SO_RCVBUF (percore-server's
    // --socket-send-buffer and --socket-receive-buffer; 0: the kernel's).
    // 1 is the kernel's minimum: every answer larger than about 4 KiB is
    // written in several partial writes.
    int last_send_buffer = 1;
    int last_receive_buffer = 16384;
    // Where the servers' stderr goes (one file per start).
    std::string log_directory;
  };

  static std::unique_ptr<SoakCluster> create(const Options& options, std::string* error);
  ~SoakCluster();
  SoakCluster(const SoakCluster&) = delete;
  SoakCluster& operator=(const SoakCluster&) = delete;

  TestNetwork& network() { return *network_; }
  ZooKeeperEnsemble& zookeeper() { return *zookeeper_; }
  // "zk://10.250.0.5:2181,.../percore/soak"
  std::string registry() const;
  std::vector<std::string> zookeeper_hosts() const;  // "zk1", ...

  size_t server_count() const { return servers_.size(); }
  const std::string& server_host(size_t index) const { return servers_.at(index).host; }
  // "ADDRESS:8000", as Controller::remote_side() says it.
  std::string server_address(size_t index) const;
  bool server_has_small_buffers(size_t index) const { return servers_.at(index).small_buffers; }
  // The running process's pid, or -1. Any thread (the RSS sampler's).
  pid_t server_pid(size_t index) const;

  // Starts server `index` and waits for its ready line (it is registered).
  bool start_server(size_t index, std::string* error);
  void signal_server(size_t index, int signal_number);
  // SIGKILL, reaped.
  void kill_server(size_t index);
  // SIGTERM; true once it exited 0 within `timeout` (a graceful stop).
  bool stop_server(size_t index, std::chrono::milliseconds timeout, std::string* error);
  bool server_running(size_t index) const { return servers_.at(index).process != nullptr; }
  // Servers that exited although no fault stopped them (a crash): one line
  // each ("s3 exited: signal 11 (SIGSEGV)"), and each is started again so
  // that the run goes on. Empty when every server runs.
  std::vector<std::string> restart_crashed_servers();

 private:
  struct Server {
    std::string host;
    bool small_buffers = false;
    int starts = 0;
    std::unique_ptr<ChildProcess> process;
  };
  explicit SoakCluster(Options options) : options_(std::move(options)) {}

  Options options_;
  // Declared first: destroyed last, after every process in it stopped.
  std::unique_ptr<TestNetwork> network_;
  std::unique_ptr<ZooKeeperEnsemble> zookeeper_;
  std::vector<Server> servers_;
  // Each server's pid (-1: not running), for other threads.
  mutable std::mutex pids_mutex_;
  std::vector<pid_t> pids_;
  void publish_pid(size_t index);
};

}  // namespace percore::testing
