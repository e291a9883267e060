#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace percore::testing {

// A child process started by a test, with its stdout on a pipe. The
// destructor kills it (SIGKILL, by pid) and reaps it, so no test leaves a
// process behind.
//
// Owns: the child and the pipe. Threads: one at a time.
class ChildProcess {
 public:
  // Starts argv[0] with the given arguments; null with *error on failure.
  // With `stderr_path`, the child's stderr goes to that file (truncated).
  static std::unique_ptr<ChildProcess> start(const std::vector<std::string>& argv,
                                             std::string* error,
                                             const std::string& stderr_path = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The first stdout line containing `text`, within `timeout`.
  std::optional<std::string> wait_for_line(const std::string& text,
                                           std::chrono::milliseconds timeout);
  void send_signal(int signal_number);
  // Waits up to `timeout` for the child to exit; its wait status, or nullopt.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);

 private:
  ChildProcess(pid_t pid, int stdout_fd) : pid_(pid), stdout_fd_(stdout_fd) {}

  pid_t pid_;
  int stdout_fd_;
  std::string stdout_buffer_;
  bool reaped_ = false;
};

// percore-server from this build, started on 127.0.0.1 with a free port.
struct ServerProcess {
  std::unique_ptr<ChildProcess> process;
  int port = 0;
};

// Path of a program built by this build tree, e.g. "examples/percore-server".
std::string built_program(const std::string& relative_path);

// Starts percore-server with extra arguments and waits for its ready line.
// Fails the calling test (nullopt) if it does not come within 10 s.
// `wrapper` goes before the program (e.g. {"/usr/bin/prlimit", "--nofile=64"});
// `stderr_path` as for ChildProcess::start.
std::optional<ServerProcess> start_server_process(const std::vector<std::string>& extra_arguments,
                                                  const std::vector<std::string>& wrapper = {},
                                                  const std::string& stderr_path = {});

// What `command` (run by /bin/sh) prints on stdout, once it has exited (its
// stderr too with "2>&1"); for short tool runs such as curl or openssl.
std::string command_output(const std::string& command);

// The resident set of a process in KiB (VmRSS in /proc/PID/status); -1 if
// unreadable.
long resident_kib(pid_t pid);

}  // namespace percore::testing
