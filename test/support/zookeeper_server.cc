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
#include <sstream>
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

// A port that was free on 127.0.0.1 a moment ago; 0 on failure.
int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0)
    port = ntohs(address.sin_port);
  ::close(fd);
  return port;
}

// Sends a four-letter word and returns everything the server answers until
// it closes the connection or `timeout` passes (while it starts, ZooKeeper
// 3.8 may answer and then fail to close the socket); empty when nothing
// listens.
std::string four_letter_word(int port, const char* word, milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return {};
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      ::send(fd, word, std::strlen(word), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(std::strlen(word))) {
    const auto deadline = steady_clock::now() + timeout;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now());
      if (left.count() <= 0)
        break;
      pollfd poll_fd{fd, POLLIN, 0};
      const int ready = ::poll(&poll_fd, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR)
        continue;
      if (ready <= 0)
        break;
      char chunk[4096];
      const ssize_t bytes = ::read(fd, chunk, sizeof(chunk));
      if (bytes < 0 && errno == EINTR)
        continue;
      if (bytes <= 0)
        break;
      answer.append(chunk, static_cast<size_t>(bytes));
    }
  }
  ::close(fd);
  return answer;
}

std::string make_temp_directory(std::string* error) {
  const char* tmpdir = std::getenv("TMPDIR");
  std::string pattern = (tmpdir != nullptr && *tmpdir != '\0' ? std::string(tmpdir) : "/tmp") +
                        "/percore-zookeeper-XXXXXX";
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

bool write_config(const std::string& directory, int port, std::string* error) {
  std::ofstream config(directory + "/zoo.cfg");
  config << "# A standalone ZooKeeper for one test: loopback only, fast, quiet.\n"
         << "tickTime=200\n"
         << "initLimit=10\n"
         << "syncLimit=5\n"
         << "dataDir=" << directory << "/data\n"
         << "clientPort=" << port << "\n"
         << "clientPortAddress=127.0.0.1\n"
         << "maxClientCnxns=0\n"
         << "minSessionTimeout=400\n"
         << "maxSessionTimeout=20000\n"
         << "4lw.commands.whitelist=*\n"
         // No Jetty admin server (it would take port 8080).
         << "admin.enableServer=false\n"
         << "standaloneEnabled=true\n"
         << "reconfigEnabled=false\n"
         << "autopurge.purgeInterval=0\n"
         // Unknown keys become zookeeper.* system properties: no fsync per
         // transaction (a process kill still keeps the data, only a machine
         // crash would lose it) and 1 MiB log files instead of 64 MiB.
         << "forceSync=no\n"
         << "preAllocSize=1024\n";
  config.close();
  if (!config) {
    set_error(error, "cannot write " + directory + "/zoo.cfg");
    return false;
  }
  return true;
}

}  // namespace

std::unique_ptr<ZooKeeperServer> ZooKeeperServer::start(std::string* error, int port) {
  if (::access(kZkServer, X_OK) != 0) {
    set_error(error, std::string(kZkServer) +
                         " not found: install Debian's zookeeper package (scripts/bootstrap)");
    return nullptr;
  }
  // A free port may be taken by someone else before ZooKeeper binds it; then
  // ZooKeeper exits at once and another port is tried.
  const int attempts = port == 0 ? 3 : 1;
  std::string last_error;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    const int chosen = port != 0 ? port : free_loopback_port();
    if (chosen == 0) {
      set_error(error, std::string("no free loopback port: ") + std::strerror(errno));
      return nullptr;
    }
    const std::string directory = make_temp_directory(error);
    if (directory.empty())
      return nullptr;
    std::unique_ptr<ZooKeeperServer> server(new ZooKeeperServer(directory, chosen));
    if (!write_config(directory, chosen, error))
      return nullptr;
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

ZooKeeperServer::~ZooKeeperServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(directory_, ignored);
}

std::string ZooKeeperServer::hosts() const {
  return "127.0.0.1:" + std::to_string(port_);
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
  std::vector<std::string> argv = {"/bin/sh",
                                   "-c",
                                   script,
                                   "zookeeper-server",
                                   directory_,
                                   jvm_flags,
                                   directory_ + "/zookeeper.out"};
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
  // `conf` prints "dataDir=<dataDir>/version-2".
  const std::string own_data_dir = "dataDir=" + directory_ + "/data/";
  for (;;) {
    if (const std::optional<int> status = process_->wait_exit(milliseconds(0))) {
      process_.reset();
      std::ostringstream text;
      text << "ZooKeeper on " << hosts() << " exited before it was ready (";
      if (WIFEXITED(*status))
        text << "exit status " << WEXITSTATUS(*status);
      else if (WIFSIGNALED(*status))
        text << "signal " << WTERMSIG(*status);
      text << "); zookeeper.out ends with:\n" << log_tail();
      set_error(error, text.str());
      return false;
    }
    if (four_letter_word(port_, "ruok", kProbeTimeout) == "imok" &&
        four_letter_word(port_, "srvr", kProbeTimeout).find("Mode: standalone") !=
            std::string::npos) {
      if (four_letter_word(port_, "conf", kProbeTimeout).find(own_data_dir) != std::string::npos)
        return true;
      // Another server answers on this port: ours will fail to bind.
    }
    if (steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(kPollInterval);
  }
  set_error(error, "ZooKeeper on " + hosts() + " was not ready within " +
                       std::to_string(timeout.count()) + " ms; zookeeper.out ends with:\n" +
                       log_tail());
  return false;
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
