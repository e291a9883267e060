#include "test/support/child_process.h"

#include "test/support/wait_readable.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace percore::testing {

std::unique_ptr<ChildProcess> ChildProcess::start(const std::vector<std::string>& argv,
                                                  std::string* error,
                                                  const std::string& stderr_path) {
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    if (error != nullptr)
      *error = std::string("pipe: ") + std::strerror(errno);
    return nullptr;
  }
  std::vector<char*> arguments;
  for (const std::string& argument : argv)
    arguments.push_back(const_cast<char*>(argument.c_str()));
  arguments.push_back(nullptr);

  int stderr_fd = -1;
  if (!stderr_path.empty()) {
    stderr_fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (stderr_fd < 0) {
      if (error != nullptr)
        *error = "cannot open " + stderr_path + ": " + std::strerror(errno);
      ::close(pipe_fds[0]);
      ::close(pipe_fds[1]);
      return nullptr;
    }
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    if (error != nullptr)
      *error = std::string("fork: ") + std::strerror(errno);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    return nullptr;
  }
  if (pid == 0) {
    ::dup2(pipe_fds[1], STDOUT_FILENO);
    if (stderr_fd >= 0)
      ::dup2(stderr_fd, STDERR_FILENO);
    ::execv(arguments[0], arguments.data());
    std::_Exit(127);
  }
  ::close(pipe_fds[1]);
  if (stderr_fd >= 0)
    ::close(stderr_fd);
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid, pipe_fds[0]));
}

ChildProcess::~ChildProcess() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ::close(stdout_fd_);
}

std::optional<std::string> ChildProcess::wait_for_line(const std::string& text,
                                                       std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t line_end;
    while ((line_end = stdout_buffer_.find('\n')) != std::string::npos) {
      std::string line = stdout_buffer_.substr(0, line_end);
      stdout_buffer_.erase(0, line_end + 1);
      if (line.find(text) != std::string::npos)
        return line;
    }
    if (!wait_readable(stdout_fd_, deadline))
      return std::nullopt;
    char chunk[1024];
    const ssize_t bytes = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (bytes < 0 && errno == EINTR)
      continue;
    if (bytes <= 0)
      return std::nullopt;  // The child closed stdout (exited).
    stdout_buffer_.append(chunk, static_cast<size_t>(bytes));
  }
}

void ChildProcess::send_signal(int signal_number) {
  if (!reaped_)
    ::kill(pid_, signal_number);
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t reaped = ::waitpid(pid_, &status, WNOHANG);
    if (reaped == pid_) {
      reaped_ = true;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::string built_program(const std::string& relative_path) {
  const char* binary_dir = std::getenv("PERCORE_BINARY_DIR");
  return std::string(binary_dir != nullptr ? binary_dir : ".") + "/" + relative_path;
}

std::optional<ServerProcess> start_server_process(const std::vector<std::string>& extra_arguments,
                                                  const std::vector<std::string>& wrapper,
                                                  const std::string& stderr_path) {
  std::vector<std::string> argv = wrapper;
  for (const std::string& argument :
       {built_program("examples/percore-server"), std::string("--listen"),
        std::string("127.0.0.1:0")})
    argv.push_back(argument);
  argv.insert(argv.end(), extra_arguments.begin(), extra_arguments.end());
  std::string error;
  ServerProcess server;
  server.process = ChildProcess::start(argv, &error, stderr_path);
  if (server.process == nullptr)
    return std::nullopt;
  const std::optional<std::string> ready =
      server.process->wait_for_line("percore-server ready on", std::chrono::seconds(10));
  if (!ready)
    return std::nullopt;
  // "percore-server ready on 127.0.0.1:PORT pid N"
  const size_t colon = ready->find(':');
  server.port = std::atoi(ready->c_str() + colon + 1);
  return server;
}

std::string command_output(const std::string& command) {
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr)
    return output;
  char buffer[4096];
  size_t got;
  while ((got = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    output.append(buffer, got);
  pclose(pipe);
  return output;
}

long resident_kib(pid_t pid) {
  std::FILE* status = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
  if (status == nullptr)
    return -1;
  long kib = -1;
  char line[256];
  while (std::fgets(line, sizeof(line), status) != nullptr) {
    if (std::sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  }
  std::fclose(status);
  return kib;
}

}  // namespace percore::testing
