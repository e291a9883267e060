#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace percore::testing {

// Test hosts on one machine: a network namespace per host, joined by veth
// pairs to a bridge that lives in a namespace of its own (the switch). Each
// host has loopback up and one address, 10.250.0.N/24 (N = 1, 2, ... in the
// order the hosts are named). Nothing is added to the machine's own
// namespace, so two networks at once (two tests) never meet, may use the
// same addresses, and no test traffic ever leaves them.
//
// Namespaces are named "pcnet<pid>-<host>" (pid: the test process), so that
// create() can delete those a crashed test left behind (their pid is gone).
// The destructor deletes this network's namespaces, even when the test
// failed; stop the processes started in them first (a namespace lives on
// until its last process exits).
//
// Faults are iptables rules that DROP arriving packets inside the hosts'
// namespaces, so packets vanish (no RST, no ICMP, no error to the sender);
// the kernel has no netem.
//
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN), `ip` (iproute2) and, for
// faults, `iptables`. Owns: the namespaces. Threads: one at a time.
class TestNetwork {
 public:
  // Builds the network; null with *error (the command that failed and what
  // it said) when this machine cannot, e.g. when not root.
  static std::unique_ptr<TestNetwork> create(const std::vector<std::string>& hosts,
                                             std::string* error);
  // Empty when create() can work here; else why not (for a test's skip
  // message).
  static std::string unavailable_reason();
  // Deletes namespaces "pcnet<pid>-*" whose process is gone.
  static void remove_stale();
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  // "10.250.0.N" of `host` (which must have been named to create()).
  const std::string& address(const std::string& host) const;
  const std::string& namespace_name(const std::string& host) const;
  // Put before a program's argv to run it on `host`: {"<ip>", "netns",
  // "exec", "<namespace>"}. `ip netns exec` execs the program, so the child
  // keeps its pid (signals reach the program itself).
  std::vector<std::string> wrapper(const std::string& host) const;
  // Moves the calling thread into `host`'s namespace; threads it starts
  // afterwards are there too (sockets belong to the namespace of the thread
  // that opens them). Call before starting other threads.
  bool enter(const std::string& host, std::string* error);

  // Nothing reaches `host` from the others, nor the others from it (its
  // loopback still works): a partition. Each side sees silence: no FIN, no
  // RST, no error.
  bool partition(const std::string& host, std::string* error);
  // Nothing passes between `host` and `peer`; both still reach the others.
  bool cut(const std::string& host, const std::string& peer, std::string* error);
  // Removes the rules of every partition(host) and cut(host, ...).
  bool heal(const std::string& host, std::string* error);

 private:
  struct Host {
    std::string namespace_name;
    std::string address;
  };
  TestNetwork(std::string prefix, std::map<std::string, Host> hosts)
      : prefix_(std::move(prefix)), hosts_(std::move(hosts)) {}
  bool build(const std::vector<std::string>& order, std::string* error);
  const Host& host(const std::string& name) const;
  // Runs iptables (waiting for the machine-wide xtables lock) in `host`.
  bool iptables(const std::string& host, const std::vector<std::string>& arguments,
                std::string* error);
  // Appends `rule` (iptables arguments after -A) in `where`, on behalf of
  // the fault of host `fault`, which heal(fault) removes.
  bool add_rule(const std::string& fault, const std::string& where,
                const std::vector<std::string>& rule, std::string* error);
  struct Rule {
    std::string fault;
    std::string where;
    std::vector<std::string> rule;
  };

  std::string prefix_;  // "pcnet<pid>-"
  std::map<std::string, Host> hosts_;
  std::string switch_namespace_;
  std::vector<std::string> created_;  // Namespaces to delete.
  std::vector<Rule> rules_;           // In force.
};

// Puts the calling thread on a test host for the scope's life, then back in
// the namespace it was in (threads started meanwhile stay on the host).
// Threads: the one that made it.
class OnTestHost {
 public:
  OnTestHost(TestNetwork& network, const std::string& host);
  ~OnTestHost();
  OnTestHost(const OnTestHost&) = delete;
  OnTestHost& operator=(const OnTestHost&) = delete;
  // Empty when the thread is on the host; else why not.
  const std::string& error() const { return error_; }

 private:
  int previous_ = -1;  // The thread's namespace before.
  std::string error_;
};

// Runs argv (argv[0] a path) to its end; true if it exited 0. *output gets
// its stdout and stderr together.
bool run_command(const std::vector<std::string>& argv, std::string* output);

}  // namespace percore::testing
