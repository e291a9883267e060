#include "test/support/test_network.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

namespace percore::testing {
namespace {

constexpr const char* kNamePrefix = "pcnet";
constexpr const char* kSubnet = "10.250.0.";

std::string find_program(const std::vector<std::string>& candidates) {
  for (const std::string& candidate : candidates) {
    if (::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

std::string ip_program() {
  return find_program({"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"});
}

std::string iptables_program() {
  return find_program({"/usr/sbin/iptables", "/sbin/iptables"});
}

void set_error(std::string* error, const std::string& text) {
  if (error != nullptr)
    *error = text;
}

std::string joined(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& argument : argv)
    text += (text.empty() ? "" : " ") + argument;
  return text;
}

// Runs `program` with `arguments` after `prefix`; on failure *error names
// the command and what it said.
bool run_or_explain(std::vector<std::string> prefix, const std::string& program,
                    const std::vector<std::string>& arguments, std::string* error) {
  std::vector<std::string> argv = std::move(prefix);
  argv.push_back(program);
  argv.insert(argv.end(), arguments.begin(), arguments.end());
  std::string output;
  if (run_command(argv, &output))
    return true;
  set_error(error, "`" + joined(argv) + "` failed: " + output);
  return false;
}

bool ip(const std::vector<std::string>& arguments, std::string* error) {
  return run_or_explain({}, ip_program(), arguments, error);
}

}  // namespace

bool run_command(const std::vector<std::string>& argv, std::string* output) {
  output->clear();
  if (argv.empty() || argv[0].empty()) {
    *output = "no program";
    return false;
  }
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    *output = std::string("pipe: ") + std::strerror(errno);
    return false;
  }
  std::vector<char*> arguments;
  for (const std::string& argument : argv)
    arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    *output = std::string("fork: ") + std::strerror(errno);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return false;
  }
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    ::dup2(pipe_fds[1], STDERR_FILENO);
    const int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
      ::dup2(null_fd, STDIN_FILENO);
    ::execv(arguments[0], arguments.data());
    std::_Exit(127);
  }
  ::close(pipe_fds[1]);
  char chunk[4096];
  for (;;) {
    const ssize_t bytes = ::read(pipe_fds[0], chunk, sizeof(chunk));
    if (bytes > 0) {
      output->append(chunk, static_cast<size_t>(bytes));
    } else if (bytes < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(pipe_fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string TestNetwork::unavailable_reason() {
  if (::geteuid() != 0)
    return std::string("network namespaces need root (this test runs as uid ") +
           std::to_string(::geteuid()) + ")";
  if (ip_program().empty())
    return "no `ip` program (Debian package iproute2)";
  if (iptables_program().empty())
    return "no `iptables` program (Debian package iptables)";
  // Root may still lack the capabilities (in a container): try one.
  const std::string probe = std::string(kNamePrefix) + std::to_string(::getpid()) + "-probe";
  std::string output;
  if (!run_command({ip_program(), "netns", "add", probe}, &output))
    return "cannot create a network namespace here: " + output;
  run_command({ip_program(), "netns", "delete", probe}, &output);
  return {};
}

void TestNetwork::remove_stale() {
  const std::string program = ip_program();
  std::string listing;
  if (program.empty() || !run_command({program, "netns", "list"}, &listing))
    return;
  std::istringstream lines(listing);
  std::string line;
  while (std::getline(lines, line)) {
    // "pcnet1234-client (id: 3)"
    const std::string name = line.substr(0, line.find(' '));
    if (name.rfind(kNamePrefix, 0) != 0)
      continue;
    const std::string digits =
        name.substr(std::strlen(kNamePrefix), name.find('-') - std::strlen(kNamePrefix));
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const pid_t owner = static_cast<pid_t>(std::atol(digits.c_str()));
    if (::kill(owner, 0) != 0 && errno == ESRCH) {
      std::string ignored;
      run_command({program, "netns", "delete", name}, &ignored);
    }
  }
}

std::unique_ptr<TestNetwork> TestNetwork::create(const std::vector<std::string>& hosts,
                                                 std::string* error) {
  const std::string reason = unavailable_reason();
  if (!reason.empty()) {
    set_error(error, reason);
    return nullptr;
  }
  if (hosts.empty() || hosts.size() > 200) {
    set_error(error, "a test network has 1 to 200 hosts");
    return nullptr;
  }
  remove_stale();
  const std::string prefix = std::string(kNamePrefix) + std::to_string(::getpid()) + "-";
  std::map<std::string, Host> table;
  for (size_t index = 0; index < hosts.size(); ++index) {
    const std::string& name = hosts[index];
    if (name.empty() || name == "switch" || table.count(name) != 0 ||
        name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos) {
      set_error(error, std::string("bad or repeated host name \"") + name + "\"");
      return nullptr;
    }
    table[name] = Host{prefix + name, kSubnet + std::to_string(index + 1)};
  }
  std::unique_ptr<TestNetwork> network(new TestNetwork(prefix, std::move(table)));
  if (!network->build(hosts, error))
    return nullptr;  // The destructor deletes what was made.
  return network;
}

bool TestNetwork::build(const std::vector<std::string>& order, std::string* error) {
  switch_namespace_ = prefix_ + "switch";
  if (!ip({"netns", "add", switch_namespace_}, error))
    return false;
  created_.push_back(switch_namespace_);
  const std::string& sw = switch_namespace_;
  if (!ip({"-n", sw, "link", "add", "br0", "type", "bridge"}, error) ||
      !ip({"-n", sw, "link", "set", "br0", "up"}, error) ||
      !ip({"-n", sw, "link", "set", "lo", "up"}, error))
    return false;
  for (size_t index = 0; index < order.size(); ++index) {
    const Host& host = hosts_.at(order[index]);
    if (!ip({"netns", "add", host.namespace_name}, error))
      return false;
    created_.push_back(host.namespace_name);
    const std::string port = std::string("h") + std::to_string(index + 1);
    // Both ends are made where they belong: no interface ever appears in
    // the machine's own namespace.
    if (!ip({"link", "add", "eth0", "netns", host.namespace_name, "type", "veth", "peer", "name",
             port, "netns", sw},
            error) ||
        !ip({"-n", sw, "link", "set", port, "master", "br0", "up"}, error) ||
        !ip({"-n", host.namespace_name, "link", "set", "lo", "up"}, error) ||
        !ip({"-n", host.namespace_name, "addr", "add", host.address + "/24", "dev", "eth0"},
            error) ||
        !ip({"-n", host.namespace_name, "link", "set", "eth0", "up"}, error))
      return false;
  }
  return true;
}

TestNetwork::~TestNetwork() {
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    std::string ignored;
    ip({"netns", "delete", *it}, &ignored);
  }
}

const TestNetwork::Host& TestNetwork::host(const std::string& name) const {
  const auto found = hosts_.find(name);
  if (found == hosts_.end())
    throw std::invalid_argument(std::string("no test host \"") + name + "\"");
  return found->second;
}

const std::string& TestNetwork::address(const std::string& name) const {
  return host(name).address;
}

const std::string& TestNetwork::namespace_name(const std::string& name) const {
  return host(name).namespace_name;
}

std::vector<std::string> TestNetwork::wrapper(const std::string& name) const {
  return {ip_program(), "netns", "exec", host(name).namespace_name};
}

bool TestNetwork::enter(const std::string& name, std::string* error) {
  const std::string path = "/run/netns/" + host(name).namespace_name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    set_error(error, std::string("cannot open ") + path + ": " + std::strerror(errno));
    return false;
  }
  const bool entered = ::setns(fd, CLONE_NEWNET) == 0;
  const int saved_errno = errno;
  ::close(fd);
  if (!entered)
    set_error(error, std::string("setns into ") + path + ": " + std::strerror(saved_errno));
  return entered;
}

OnTestHost::OnTestHost(TestNetwork& network, const std::string& host) {
  previous_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (previous_ < 0) {
    error_ = std::string("cannot open this thread's network namespace: ") + std::strerror(errno);
    return;
  }
  network.enter(host, &error_);
}

OnTestHost::~OnTestHost() {
  if (previous_ >= 0) {
    ::setns(previous_, CLONE_NEWNET);
    ::close(previous_);
  }
}

bool TestNetwork::iptables(const std::string& name, const std::vector<std::string>& arguments,
                           std::string* error) {
  // -w: wait up to 10 s for the machine-wide xtables lock.
  std::vector<std::string> waiting = {"-w", "10"};
  waiting.insert(waiting.end(), arguments.begin(), arguments.end());
  return run_or_explain(wrapper(name), iptables_program(), waiting, error);
}

bool TestNetwork::add_rule(const std::string& fault, const std::string& where,
                           const std::vector<std::string>& rule, std::string* error) {
  std::vector<std::string> arguments = {"-A"};
  arguments.insert(arguments.end(), rule.begin(), rule.end());
  if (!iptables(where, arguments, error))
    return false;
  rules_.push_back(Rule{fault, where, rule});
  return true;
}

bool TestNetwork::partition(const std::string& name, std::string* error) {
  // Only arriving packets are dropped, each where it arrives: a dropped
  // outgoing packet would fail its sender's call at once (EPERM) instead of
  // vanishing.
  if (!add_rule(name, name, {"INPUT", "!", "-i", "lo", "-j", "DROP"}, error))
    return false;
  for (const auto& [other, ignored] : hosts_) {
    if (other != name &&
        !add_rule(name, other, {"INPUT", "-s", address(name), "-j", "DROP"}, error))
      return false;
  }
  return true;
}

bool TestNetwork::cut(const std::string& name, const std::string& peer, std::string* error) {
  return add_rule(name, name, {"INPUT", "-s", address(peer), "-j", "DROP"}, error) &&
         add_rule(name, peer, {"INPUT", "-s", address(name), "-j", "DROP"}, error);
}

bool TestNetwork::heal(const std::string& name, std::string* error) {
  bool healed = true;
  for (auto it = rules_.begin(); it != rules_.end();) {
    if (it->fault != name) {
      ++it;
      continue;
    }
    std::vector<std::string> arguments = {"-D"};
    arguments.insert(arguments.end(), it->rule.begin(), it->rule.end());
    healed = iptables(it->where, arguments, error) && healed;
    it = rules_.erase(it);
  }
  return healed;
}

}  // namespace percore::testing
