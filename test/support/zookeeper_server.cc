#include "test/support/zookeeper_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "test/support/slack.h"

namespace percore::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr const char* kZkServer = "/usr/share/zookeeper/bin/zkServer.sh";
// Debian's zookeeper.jar names slf4j-api but no binding, so the server logs
// nothing at all (not even why it failed to start) unless one is added.
// Debian's zkEnv.sh sets CLASSPATH unconditionally; a second -cp in JVMFLAGS
// comes later on the java command line and wins.
constexpr const char* kClassPath = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar";
constexpr const char* kSlf4jSimple = "/usr/share/java/slf4j-simple.jar";
constexpr const char* kSetpriv = "/usr/bin/setpriv";
constexpr milliseconds kReadyTimeout{30000};
constexpr milliseconds kStopTimeout{5000};
constexpr milliseconds kPollInterval{50};
constexpr milliseconds kProbeTimeout{1000};

void set_error(std::string* error, const std::string& text) {
  if (error != nullptr)
    *error = text;
}

// `count` distinct ports that were free on 127.0.0.1 a moment ago (all
// sockets stay bound until the last is chosen, so none comes twice); empty
// on failure.
std::vector<int> free_loopback_ports(size_t count) {
  std::vector<int> fds;
  std::vector<int> ports;
  while (ports.size() < count) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
      break;
    fds.push_back(fd);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      break;
    ports.push_back(ntohs(address.sin_port));
  }
  const int saved_errno = errno;
  for (const int fd : fds)
    ::close(fd);
  errno = saved_errno;
  if (ports.size() < count)
    ports.clear();
  return ports;
}

// Sends a four-letter word and returns everything the server answers until
// it closes the connection or `timeout` passes (while it starts, ZooKeeper
// 3.8 may answer and then fail to close the socket); empty when nothing
// listens. The connect is bounded too: on a listener that never accepts (a
// stranger on the port) a full backlog drops SYNs, and a blocking connect
// would retry them for two minutes.
std::string four_letter_word(const std::string& host, int port, const char* word,
                             milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return {};
  const auto deadline = steady_clock::now() + timeout;
  // Waits for `events` until the deadline; false on timeout or error.
  const auto wait_for = [&](short events) {
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0)
        return false;
      pollfd poll_fd{fd, events, 0};
      const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR)
        continue;
      return ready > 0;
    }
  };
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (::inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    ::close(fd);
    return {};
  }
  address.sin_port = htons(static_cast<uint16_t>(port));
  bool connected = ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  if (!connected && errno == EINPROGRESS && wait_for(POLLOUT)) {
    int socket_error = 0;
    socklen_t length = sizeof(socket_error);
    connected =
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &socket_error, &length) == 0 && socket_error == 0;
  }
  std::string answer;
  // Four bytes always fit in a new socket's send buffer.
  if (connected && ::send(fd, word, std::strlen(word), MSG_NOSIGNAL) ==
                       static_cast<ssize_t>(std::strlen(word))) {
    while (wait_for(POLLIN)) {
      char chunk[4096];
      const ssize_t bytes = ::read(fd, chunk, sizeof(chunk));
      if (bytes < 0 && (errno == EINTR || errno == EAGAIN))
        continue;
      if (bytes <= 0)
        break;
      answer.append(chunk, static_cast<size_t>(bytes));
    }
  }
  ::close(fd);
  return answer;
}

std::string temp_root() {
  const char* tmpdir = std::getenv("TMPDIR");
  return tmpdir != nullptr && *tmpdir != '\0' ? std::string(tmpdir) : "/tmp";
}

// Directories "percore-zookeeper-<pid>-*" of test processes that are gone
// (killed before their destructors ran) are removed.
void remove_stale_directories() {
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(temp_root(), error)) {
    const std::string name = entry.path().filename().string();
    const std::string prefix = "percore-zookeeper-";
    if (name.rfind(prefix, 0) != 0)
      continue;
    const std::string pid =
        name.substr(prefix.size(), name.find('-', prefix.size()) - prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos)
      continue;
    if (::kill(static_cast<pid_t>(std::atol(pid.c_str())), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      std::filesystem::remove_all(entry.path(), ignored);
    }
  }
}

std::string make_temp_directory(std::string* error) {
  static const bool swept = (remove_stale_directories(), true);
  (void)swept;
  std::string pattern =
      temp_root() + "/percore-zookeeper-" + std::to_string(::getpid()) + "-XXXXXX";
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    set_error(error, "mkdtemp " + pattern + ": " + std::strerror(errno));
    return {};
  }
  // ZooKeeper prints paths normalized (no "//"), and wait_ready() looks for
  // this one in its answer to `conf`.
  char resolved[PATH_MAX];
  if (::realpath(buffer.data(), resolved) == nullptr)
    return std::string(buffer.data());
  return std::string(resolved);
}

bool installed(std::string* error) {
  if (::access(kZkServer, X_OK) == 0)
    return true;
  set_error(error, std::string(kZkServer) +
                       " not found: install Debian's zookeeper package (scripts/bootstrap)");
  return false;
}

// The address and ports of one ensemble member, as every member's zoo.cfg names
// them.
struct MemberPorts {
  std::string address = "127.0.0.1";
  int client = 0;
  int quorum = 0;    // Followers connect to the leader here.
  int election = 0;  // Leader election.
};

// A standalone server when `ensemble` is empty; else member `id` (1-based,
// its myid) of `ensemble`.
bool write_config(const std::string& directory, const std::string& address, int port, int id,
                  const std::vector<MemberPorts>& ensemble, std::string* error) {
  std::ofstream config(directory + "/zoo.cfg");
  config << (ensemble.empty() ? "# A standalone ZooKeeper for one test"
                              : "# ZooKeeper ensemble member " + std::to_string(id) + " of " +
                                    std::to_string(ensemble.size()) + " for one test")
         << ": fast and quiet.\n"
         << "tickTime=200\n"
         // Ensemble members only: a killed peer is noticed at once (its
         // sockets close), so these limits need only ride out a loaded
         // machine: 5 s to join a leader, 2 s of silence.
         << "initLimit=25\n"
         << "syncLimit=10\n"
         << "dataDir=" << directory << "/data\n"
         << "clientPort=" << port << "\n"
         << "clientPortAddress=" << address << "\n"
         << "maxClientCnxns=0\n"
         << "minSessionTimeout=400\n"
         << "maxSessionTimeout=20000\n"
         << "4lw.commands.whitelist=*\n"
         // No Jetty admin server (it would take port 8080).
         << "admin.enableServer=false\n"
         // A member runs in quorum mode even in an ensemble of one.
         << "standaloneEnabled=" << (ensemble.empty() ? "true" : "false") << "\n"
         << "reconfigEnabled=false\n"
         << "autopurge.purgeInterval=0\n"
         // Unknown keys become zookeeper.* system properties: no fsync per
         // transaction (a process kill still keeps the data, only a machine
         // crash would lose it) and 1 MiB log files instead of 64 MiB.
         << "forceSync=no\n"
         << "preAllocSize=1024\n";
  for (size_t index = 0; index < ensemble.size(); ++index) {
    config << "server." << index + 1 << "=" << ensemble[index].address << ":"
           << ensemble[index].quorum << ":" << ensemble[index].election << "\n";
  }
  config.close();
  if (!config) {
    set_error(error, "cannot write " + directory + "/zoo.cfg");
    return false;
  }
  if (ensemble.empty())
    return true;
  std::error_code ignored;
  std::filesystem::create_directories(directory + "/data", ignored);
  std::ofstream myid(directory + "/data/myid");
  myid << id << "\n";
  myid.close();
  if (!myid) {
    set_error(error, "cannot write " + directory + "/data/myid");
    return false;
  }
  return true;
}

// A temporary directory with the server's configuration; empty with *error
// (and nothing left on disk) on failure.
std::string prepare_directory(const std::string& address, int port, int id,
                              const std::vector<MemberPorts>& ensemble, std::string* error) {
  const std::string directory = make_temp_directory(error);
  if (directory.empty() || write_config(directory, address, port, id, ensemble, error))
    return directory;
  std::error_code ignored;
  std::filesystem::remove_all(directory, ignored);
  return {};
}

std::string describe_exit(int status) {
  if (WIFEXITED(status))
    return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return "signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace

std::unique_ptr<ZooKeeperServer> ZooKeeperServer::start(std::string* error, int port) {
  if (!installed(error))
    return nullptr;
  // A free port may be taken by someone else before ZooKeeper binds it; then
  // ZooKeeper exits at once and another port is tried.
  const int attempts = port == 0 ? 3 : 1;
  std::string last_error;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const std::vector<int> free = port != 0 ? std::vector<int>{port} : free_loopback_ports(1);
    if (free.empty()) {
      set_error(error, std::string("no free loopback port: ") + std::strerror(errno));
      return nullptr;
    }
    const std::string directory = prepare_directory("127.0.0.1", free[0], 0, {}, error);
    if (directory.empty())
      return nullptr;
    std::unique_ptr<ZooKeeperServer> server(
        new ZooKeeperServer(directory, ZooKeeperPlacement{}, free[0], false));
    if (server->launch(&last_error) && server->wait_ready(scaled(kReadyTimeout), &last_error))
      return server;
    const bool exited_early = !server->running();
    server.reset();  // Stops what is left and removes the directory.
    if (!exited_early)
      break;
  }
  set_error(error, last_error);
  return nullptr;
}

std::vector<std::unique_ptr<ZooKeeperServer>> ZooKeeperServer::create_ensemble(
    size_t members, const std::vector<ZooKeeperPlacement>& placements, std::string* error) {
  if (members == 0) {
    set_error(error, "an ensemble needs at least one member");
    return {};
  }
  if (!placements.empty() && placements.size() != members) {
    set_error(error, "one placement per ensemble member");
    return {};
  }
  if (!installed(error))
    return {};
  std::vector<MemberPorts> ensemble(members);
  if (placements.empty()) {
    const std::vector<int> free = free_loopback_ports(3 * members);
    if (free.empty()) {
      set_error(error, std::string("no free loopback ports: ") + std::strerror(errno));
      return {};
    }
    for (size_t index = 0; index < members; ++index)
      ensemble[index] = {"127.0.0.1", free[3 * index], free[3 * index + 1], free[3 * index + 2]};
  } else {
    // Each member on a host of its own: ZooKeeper's usual ports are free.
    for (size_t index = 0; index < members; ++index)
      ensemble[index] = {placements[index].address, 2181, 2888, 3888};
  }
  std::vector<std::unique_ptr<ZooKeeperServer>> servers;
  for (size_t index = 0; index < members; ++index) {
    const MemberPorts& ports = ensemble[index];
    const std::string directory = prepare_directory(ports.address, ports.client,
                                                    static_cast<int>(index + 1), ensemble, error);
    if (directory.empty())
      return {};  // The members made so far remove their directories.
    servers.emplace_back(new ZooKeeperServer(
        directory, placements.empty() ? ZooKeeperPlacement{} : placements[index], ports.client,
        true));
  }
  return servers;
}

ZooKeeperServer::~ZooKeeperServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

std::string ZooKeeperServer::hosts() const {
  return placement_.address + ":" + std::to_string(port_);
}

bool ZooKeeperServer::launch(std::string* error) {
  std::string jvm_flags =
      "-Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto -XX:-UsePerfData"
      " -XX:HeapDumpPath=" +
      directory_ +
      // Debian's zkEnv.sh overwrites ZOO_LOG_DIR with /var/log/zookeeper, so
      // the log directory is set here (a later -D wins).
      " -Dzookeeper.log.dir=" + directory_ + " -Dzookeeper.jmx.log4j.disable=true";
  if (::access(kSlf4jSimple, R_OK) == 0) {
    jvm_flags += std::string(" -cp ") + kClassPath + ":" + kSlf4jSimple +
                 " -Dorg.slf4j.simpleLogger.showDateTime=true"
                 " -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS";
  }
  // The shell sends stdout and stderr to a file (a pipe nobody reads would
  // fill up and block the JVM) and execs, as zkServer.sh does, so that the
  // child's pid is the JVM's. JMXDISABLE=true: no JMX agent.
  const std::string script =
      "cd \"$1\" || exit 1\n"
      "unset SERVER_JVMFLAGS ZOO_NOEXEC ZOO_DATADIR_AUTOCREATE_DISABLE ZOOPIDFILE JMXPORT\n"
      "export JMXDISABLE=true JVMFLAGS=\"$2\"\n"
      "log=$3\n"
      "shift 3\n"
      "exec \"$@\" >>\"$log\" 2>&1 </dev/null\n";
  std::vector<std::string> argv = placement_.wrapper;
  argv.insert(argv.end(), {"/bin/sh", "-c", script, "zookeeper-server", directory_, jvm_flags,
                           directory_ + "/zookeeper.out"});
  // The JVM dies with the thread that started it, even if the test crashes.
  if (::access(kSetpriv, X_OK) == 0) {
    argv.push_back(kSetpriv);
    argv.push_back("--pdeathsig");
    argv.push_back("KILL");
  }
  argv.push_back(kZkServer);
  argv.push_back("start-foreground");
  argv.push_back(directory_ + "/zoo.cfg");

  std::string start_error;
  process_ = ChildProcess::start(argv, &start_error);
  if (process_ == nullptr) {
    set_error(error, "cannot start ZooKeeper: " + start_error);
    return false;
  }
  pid_ = process_->pid();
  return true;
}

bool ZooKeeperServer::wait_ready(milliseconds timeout, std::string* error) {
  const auto deadline = steady_clock::now() + timeout;
  for (;;) {
    std::string how;
    if (exited(&how)) {
      set_error(error, "ZooKeeper on " + hosts() + " exited before it was ready (" + how +
                           "); zookeeper.out ends with:\n" + log_tail());
      return false;
    }
    if (!ready_mode().empty())
      return true;
    if (steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(kPollInterval);
  }
  set_error(error, "ZooKeeper on " + hosts() + " was not ready within " +
                       std::to_string(timeout.count()) + " ms; zookeeper.out ends with:\n" +
                       log_tail());
  return false;
}

std::string ZooKeeperServer::mode() const {
  const std::string answer = four_letter_word(placement_.address, port_, "srvr", kProbeTimeout);
  const std::string label = "Mode: ";
  const size_t start = answer.find(label);
  if (start == std::string::npos)
    return {};
  const size_t end = answer.find('\n', start);
  return answer.substr(start + label.size(),
                       end == std::string::npos ? std::string::npos : end - start - label.size());
}

std::string ZooKeeperServer::ready_mode() const {
  if (four_letter_word(placement_.address, port_, "ruok", kProbeTimeout) != "imok")
    return {};
  const std::string current = mode();
  const bool serves_as_configured =
      ensemble_member_ ? current == "leader" || current == "follower" : current == "standalone";
  if (!serves_as_configured)
    return {};
  // `conf` prints "dataDir=<dataDir>/version-2"; another server answering on
  // this port (ours will fail to bind) prints its own.
  const std::string own_data_dir = "dataDir=" + directory_ + "/data/";
  if (four_letter_word(placement_.address, port_, "conf", kProbeTimeout).find(own_data_dir) ==
      std::string::npos)
    return {};
  return current;
}

bool ZooKeeperServer::exited(std::string* how) {
  if (process_ == nullptr)
    return false;
  const std::optional<int> status = process_->wait_exit(milliseconds(0));
  if (!status)
    return false;
  process_.reset();
  if (how != nullptr)
    *how = describe_exit(*status);
  return true;
}

void ZooKeeperServer::stop() {
  if (process_ == nullptr)
    return;
  process_->send_signal(SIGTERM);
  if (!process_->wait_exit(kStopTimeout))
    process_->send_signal(SIGKILL);
  process_.reset();  // Reaps it (after SIGKILL if it is still there).
}

void ZooKeeperServer::kill_hard() {
  if (process_ == nullptr)
    return;
  process_->send_signal(SIGKILL);
  process_.reset();
}

bool ZooKeeperServer::restart(std::string* error) {
  stop();
  if (!launch(error))
    return false;
  if (wait_ready(scaled(kReadyTimeout), error))
    return true;
  stop();
  return false;
}

std::string ZooKeeperServer::log_tail(size_t lines) const {
  std::ifstream log(directory_ + "/zookeeper.out");
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(log, line)) {
    tail.push_back(line);
    if (tail.size() > lines)
      tail.pop_front();
  }
  std::string text;
  for (const std::string& kept : tail)
    text += kept + "\n";
  return text.empty() ? "(empty)\n" : text;
}

}  // namespace percore::testing
