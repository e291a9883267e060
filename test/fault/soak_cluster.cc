#include "test/fault/soak_cluster.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <optional>

#include "test/support/slack.h"

namespace percore::testing {
namespace {

constexpr int kServerPort = 8000;
constexpr const char* kRegistryBase = "/percore/soak";

void set_error(std::string* error, const std::string& text) {
  if (error != nullptr)
    *error = text;
}

}  // namespace

std::unique_ptr<SoakCluster> SoakCluster::create(const Options& options, std::string* error) {
  std::unique_ptr<SoakCluster> cluster(new SoakCluster(options));
  std::vector<std::string> hosts = {"client"};
  for (int index = 1; index <= options.servers; ++index)
    hosts.push_back(std::string("s") + std::to_string(index));
  for (int index = 1; index <= options.zookeeper_members; ++index)
    hosts.push_back(std::string("zk") + std::to_string(index));
  cluster->network_ = TestNetwork::create(hosts, error);
  if (cluster->network_ == nullptr)
    return nullptr;
  // From here on this thread, and every thread it starts, is on the client
  // host.
  if (!cluster->network_->enter("client", error))
    return nullptr;

  std::vector<ZooKeeperPlacement> placements;
  for (const std::string& host : cluster->zookeeper_hosts())
    placements.push_back({cluster->network_->address(host), cluster->network_->wrapper(host)});
  std::string zookeeper_error;
  cluster->zookeeper_ = ZooKeeperEnsemble::start_on(placements, &zookeeper_error);
  if (cluster->zookeeper_ == nullptr) {
    set_error(error, std::string("ZooKeeper on the test hosts: ") + zookeeper_error);
    return nullptr;
  }
  for (int index = 1; index <= options.servers; ++index) {
    Server server;
    server.host = std::string("s") + std::to_string(index);
    server.small_buffers = index == options.servers &&
                           (options.last_send_buffer > 0 || options.last_receive_buffer > 0);
    cluster->servers_.push_back(std::move(server));
  }
  for (size_t index = 0; index < cluster->servers_.size(); ++index) {
    if (!cluster->start_server(index, error))
      return nullptr;
  }
  return cluster;
}

SoakCluster::~SoakCluster() {
  // Servers first (by pid, SIGKILL: ChildProcess's destructor), then
  // ZooKeeper, then the namespaces (members' destructors order).
  servers_.clear();
  zookeeper_.reset();
}

std::vector<std::string> SoakCluster::zookeeper_hosts() const {
  std::vector<std::string> hosts;
  for (int index = 1; index <= options_.zookeeper_members; ++index)
    hosts.push_back(std::string("zk") + std::to_string(index));
  return hosts;
}

std::string SoakCluster::registry() const {
  return "zk://" + zookeeper_->hosts() + kRegistryBase;
}

std::string SoakCluster::server_address(size_t index) const {
  return network_->address(servers_.at(index).host) + ":" + std::to_string(kServerPort);
}

pid_t SoakCluster::server_pid(size_t index) const {
  std::lock_guard lock(pids_mutex_);
  return index < pids_.size() ? pids_[index] : -1;
}

void SoakCluster::publish_pid(size_t index) {
  std::lock_guard lock(pids_mutex_);
  pids_.resize(servers_.size(), -1);
  const Server& server = servers_[index];
  pids_[index] = server.process == nullptr ? -1 : server.process->pid();
}

bool SoakCluster::start_server(size_t index, std::string* error) {
  Server& server = servers_.at(index);
  const std::string& address = network_->address(server.host);
  std::vector<std::string> argv = network_->wrapper(server.host);
  // The server dies with this thread, even if the soak crashes.
  if (::access("/usr/bin/setpriv", X_OK) == 0)
    argv.insert(argv.end(), {"/usr/bin/setpriv", "--pdeathsig", "KILL"});
  for (const std::string& argument : std::vector<std::string>{
           built_program("examples/percore-server"), "--listen",
           address + ":" + std::to_string(kServerPort), "--advertise", address, "--registry",
           registry(), "--io-threads", "1", "--workers", "2", "--zk-session-timeout-ms",
           std::to_string(options_.server_session_timeout_ms), "--deregister-delay-ms", "500",
           "--grace-ms", "2000"})
    argv.push_back(argument);
  if (server.small_buffers) {
    argv.insert(argv.end(),
                {"--socket-send-buffer", std::to_string(options_.last_send_buffer),
                 "--socket-receive-buffer", std::to_string(options_.last_receive_buffer)});
  }
  const std::string log =
      options_.log_directory + "/" + server.host + "." + std::to_string(++server.starts) + ".log";
  std::string start_error;
  server.process = ChildProcess::start(argv, &start_error, log);
  if (server.process == nullptr) {
    set_error(error, std::string("cannot start the server on ") + server.host + ": " + start_error);
    return false;
  }
  if (!server.process->wait_for_line("percore-server ready on", scaled(std::chrono::seconds(20)))) {
    server.process.reset();
    publish_pid(index);
    std::ifstream text(log);
    std::string line;
    std::string tail;
    while (std::getline(text, line))
      tail = tail.size() > 2000 ? line + "\n" : tail + line + "\n";
    set_error(error, std::string("the server on ") + server.host +
                         " did not say it was ready within 20 s; its log " + log + " ends with:\n" +
                         tail);
    return false;
  }
  // Only now: until it has exec'd, the child's resident set is the soak's.
  publish_pid(index);
  return true;
}

std::vector<std::string> SoakCluster::restart_crashed_servers() {
  std::vector<std::string> crashed;
  for (size_t index = 0; index < servers_.size(); ++index) {
    Server& server = servers_[index];
    const std::optional<int> status = server.process == nullptr
                                          ? std::optional<int>()
                                          : server.process->wait_exit(std::chrono::milliseconds(0));
    if (server.process != nullptr && !status)
      continue;  // Running.
    std::string how = "was not running";
    if (status) {
      how = WIFSIGNALED(*status)
                ? std::string("exited: signal ") + std::to_string(WTERMSIG(*status)) + " (" +
                      sigabbrev_np(WTERMSIG(*status)) + ")"
                : std::string("exited: status ") + std::to_string(WEXITSTATUS(*status));
    }
    server.process.reset();
    publish_pid(index);
    std::string error;
    if (!start_server(index, &error))
      how += "; starting it again failed: " + error;
    crashed.push_back(server.host + " " + how);
  }
  return crashed;
}

void SoakCluster::signal_server(size_t index, int signal_number) {
  Server& server = servers_.at(index);
  if (server.process != nullptr)
    server.process->send_signal(signal_number);
}

void SoakCluster::kill_server(size_t index) {
  servers_.at(index).process.reset();  // SIGKILL and reap.
  publish_pid(index);
}

bool SoakCluster::stop_server(size_t index, std::chrono::milliseconds timeout, std::string* error) {
  Server& server = servers_.at(index);
  if (server.process == nullptr)
    return true;
  server.process->send_signal(SIGTERM);
  const std::optional<int> status = server.process->wait_exit(timeout);
  server.process.reset();
  publish_pid(index);
  if (!status) {
    set_error(error, std::string("the server on ") + server.host + " did not exit within " +
                         std::to_string(timeout.count()) + " ms of SIGTERM");
    return false;
  }
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    set_error(error, std::string("the server on ") + server.host + " ended with wait status " +
                         std::to_string(*status) + " after SIGTERM");
    return false;
  }
  return true;
}

}  // namespace percore::testing
