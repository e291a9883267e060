#include <percore/server_io/detail/zygote.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>

#include <sys/types.h>

namespace percore::detail {
namespace {

// One control message; the descriptors of `kSpawned` ride along as
// SCM_RIGHTS.
struct ControlMessage {
  uint32_t kind = 0;
  int32_t pid = 0;
  int32_t status = 0;
};
constexpr uint32_t kSpawnRequest = 1;
constexpr uint32_t kSpawned = 2;
constexpr uint32_t kSpawnFailed = 3;
constexpr uint32_t kExited = 4;

// The zygote's and the workers' descriptor for the control socket.
constexpr int kZygoteControlFd = 3;

int open_pidfd(pid_t pid) {
#if defined(SYS_pidfd_open)
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Blocking send from the zygote; a server that is gone ends the zygote.
void send_to_server(const ControlMessage& message, const int* fds, int fd_count) {
  iovec data{const_cast<ControlMessage*>(&message), sizeof(message)};
  msghdr header{};
  header.msg_iov = &data;
  header.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  if (fd_count > 0) {
    header.msg_control = control;
    header.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
    cmsghdr* rights = CMSG_FIRSTHDR(&header);
    rights->cmsg_level = SOL_SOCKET;
    rights->cmsg_type = SCM_RIGHTS;
    rights->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
    std::memcpy(CMSG_DATA(rights), fds, fd_count * sizeof(int));
  }
  while (::sendmsg(kZygoteControlFd, &header, MSG_NOSIGNAL) < 0) {
    if (errno != EINTR)
      return;  // The server is gone; the next poll sees the hang-up.
  }
}

[[noreturn]] void run_worker(int zygote_pid, int socket_fd, int signal_fd,
                             const Zygote::WorkerMain& worker_main, size_t memory_limit_bytes) {
  ::close(kZygoteControlFd);
  ::close(signal_fd);
  // Dies with the zygote (whose single thread forked it), so no worker
  // outlives a zygote that was killed.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != zygote_pid)
    ::_exit(0);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::signal(SIGCHLD, SIG_DFL);
  if (memory_limit_bytes > 0) {
    rlimit limit{memory_limit_bytes, memory_limit_bytes};
    ::setrlimit(RLIMIT_AS, &limit);
  }
  worker_main(socket_fd);
  ::_exit(0);
}

[[noreturn]] void run_zygote(int control_fd, const Zygote::WorkerMain& worker_main,
                             size_t memory_limit_bytes) {
  // Its own process group: a terminal's SIGINT goes to the server only.
  ::setpgid(0, 0);
  for (int number = 1; number < NSIG; ++number) {
    if (number != SIGKILL && number != SIGSTOP)
      ::signal(number, SIG_DFL);
  }
  ::signal(SIGPIPE, SIG_IGN);
  if (control_fd != kZygoteControlFd) {
    ::dup2(control_fd, kZygoteControlFd);
    ::close(control_fd);
  }
  // Nothing of the server's but stdio stays open here: a copy of a socket
  // would keep its connection open after the server closed it.
  ::close_range(kZygoteControlFd + 1, ~0U, 0);
  sigset_t child_signal;
  sigemptyset(&child_signal);
  sigaddset(&child_signal, SIGCHLD);
  ::sigprocmask(SIG_SETMASK, &child_signal, nullptr);
  const int signal_fd = ::signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);
  const pid_t self = ::getpid();
  std::set<pid_t> workers;

  auto reap = [&workers] {
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      workers.erase(pid);
      send_to_server(ControlMessage{kExited, pid, status}, nullptr, 0);
    }
  };

  for (;;) {
    pollfd watched[2] = {{kZygoteControlFd, POLLIN, 0}, {signal_fd, POLLIN, 0}};
    if (::poll(watched, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      break;
    }
    if ((watched[1].revents & POLLIN) != 0) {
      signalfd_siginfo info;
      while (::read(signal_fd, &info, sizeof(info)) > 0) {
      }
      reap();
    }
    if ((watched[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
      continue;
    ControlMessage request;
    const ssize_t received = ::recv(kZygoteControlFd, &request, sizeof(request), 0);
    if (received < 0 && errno == EINTR)
      continue;
    if (received <= 0)
      break;  // The server stopped or died.
    if (request.kind != kSpawnRequest)
      continue;
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
      send_to_server(ControlMessage{kSpawnFailed, 0, errno}, nullptr, 0);
      continue;
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pair[0]);
      run_worker(self, pair[1], signal_fd, worker_main, memory_limit_bytes);
    }
    ::close(pair[1]);
    if (pid < 0) {
      const int error = errno;
      ::close(pair[0]);
      send_to_server(ControlMessage{kSpawnFailed, 0, error}, nullptr, 0);
      continue;
    }
    workers.insert(pid);
    // Opened before the worker can be reaped, so it names this process.
    const int pidfd = open_pidfd(pid);
    const int fds[2] = {pair[0], pidfd};
    send_to_server(ControlMessage{kSpawned, pid, 0}, fds, pidfd >= 0 ? 2 : 1);
    ::close(pair[0]);
    if (pidfd >= 0)
      ::close(pidfd);
  }
  for (const pid_t pid : workers)
    ::kill(pid, SIGKILL);
  while (::waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
  }
  ::_exit(0);
}

}  // namespace

Zygote::~Zygote() {
  stop(std::chrono::seconds(2));
}

bool Zygote::start(WorkerMain worker_main, size_t memory_limit_bytes, std::string* error) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) {
    if (error != nullptr)
      *error = std::string("cannot create the zygote's control socket: ") + std::strerror(errno);
    return false;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(pair[0]);
    run_zygote(pair[1], worker_main, memory_limit_bytes);
  }
  ::close(pair[1]);
  if (pid < 0) {
    if (error != nullptr)
      *error = std::string("cannot fork the zygote: ") + std::strerror(errno);
    ::close(pair[0]);
    return false;
  }
  ::fcntl(pair[0], F_SETFL, ::fcntl(pair[0], F_GETFL) | O_NONBLOCK);
  pid_ = pid;
  control_fd_ = pair[0];
  return true;
}

Zygote::SendResult Zygote::request_worker() {
  if (control_fd_ < 0)
    return SendResult::kGone;
  const ControlMessage request{kSpawnRequest, 0, 0};
  for (;;) {
    if (::send(control_fd_, &request, sizeof(request), MSG_NOSIGNAL | MSG_DONTWAIT) ==
        sizeof(request))
      return SendResult::kSent;
    if (errno == EINTR)
      continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? SendResult::kFull : SendResult::kGone;
  }
}

void Zygote::reap_if_exited() {
  if (pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == pid_)
    pid_ = -1;
}

Zygote::Message Zygote::receive() {
  Message message;
  if (control_fd_ < 0) {
    message.kind = Message::Kind::kGone;
    return message;
  }
  ControlMessage data;
  iovec vector{&data, sizeof(data)};
  alignas(cmsghdr) char control[CMSG_SPACE(2 * sizeof(int))];
  msghdr header{};
  header.msg_iov = &vector;
  header.msg_iovlen = 1;
  header.msg_control = control;
  header.msg_controllen = sizeof(control);
  ssize_t received;
  do {
    received = ::recvmsg(control_fd_, &header, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
  } while (received < 0 && errno == EINTR);
  if (received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return message;
  if (received != static_cast<ssize_t>(sizeof(data))) {
    message.kind = Message::Kind::kGone;
    return message;
  }
  int fds[2] = {-1, -1};
  for (cmsghdr* part = CMSG_FIRSTHDR(&header); part != nullptr;
       part = CMSG_NXTHDR(&header, part)) {
    if (part->cmsg_level == SOL_SOCKET && part->cmsg_type == SCM_RIGHTS) {
      const size_t count = (part->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      std::memcpy(fds, CMSG_DATA(part), std::min<size_t>(count, 2) * sizeof(int));
    }
  }
  message.pid = data.pid;
  message.status = data.status;
  switch (data.kind) {
    case kSpawned:
      message.kind = Message::Kind::kSpawned;
      message.socket_fd = fds[0];
      message.pidfd = fds[1];
      if (message.socket_fd < 0) {
        // No descriptor came (it cannot happen unless descriptors ran out).
        message.kind = Message::Kind::kSpawnFailed;
        message.status = EMFILE;
        if (message.pidfd >= 0)
          ::close(message.pidfd);
        message.pidfd = -1;
      }
      break;
    case kSpawnFailed:
      message.kind = Message::Kind::kSpawnFailed;
      break;
    case kExited:
      message.kind = Message::Kind::kExited;
      break;
    default:
      for (const int fd : fds) {
        if (fd >= 0)
          ::close(fd);
      }
      break;
  }
  return message;
}

void Zygote::stop(std::chrono::milliseconds timeout) {
  if (control_fd_ >= 0) {
    ::close(control_fd_);
    control_fd_ = -1;
  }
  if (pid_ <= 0)
    return;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const pid_t reaped = ::waitpid(pid_, nullptr, WNOHANG);
    if (reaped == pid_ || (reaped < 0 && errno != EINTR))
      break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  pid_ = -1;
}

void signal_worker(pid_t pid, int pidfd, int signal_number) {
#if defined(SYS_pidfd_send_signal)
  if (pidfd >= 0 && ::syscall(SYS_pidfd_send_signal, pidfd, signal_number, nullptr, 0) == 0)
    return;
  if (pidfd >= 0 && errno == ESRCH)
    return;  // Already gone.
#else
  (void)pidfd;
#endif
  ::kill(pid, signal_number);
}

std::string describe_wait_status(int status) {
  if (WIFSIGNALED(status)) {
    const int number = WTERMSIG(status);
    const char* name = ::sigabbrev_np(number);
    std::string text = name != nullptr ? std::string("SIG") + name
                                       : std::string("signal ") + std::to_string(number);
    if (WCOREDUMP(status))
      text += " (core dumped)";
    return text;
  }
  if (WIFEXITED(status))
    return std::string("exit status ") + std::to_string(WEXITSTATUS(status));
  return std::string("wait status ") + std::to_string(status);
}

}  // namespace percore::detail
