// raw-echo-server: the ceiling no RPC layer can beat. A minimal epoll echo
// over plain length-prefixed frames (4-byte big-endian length + payload).
//
//   raw-echo-server --listen 127.0.0.1:PORT [--threads N]
//
// One acceptor thread hands connections round-robin to N epoll threads. On
// each readiness a thread makes one read into a large buffer, appends every
// complete frame to the connection's output buffer and writes the whole
// output with one write; a partial write is finished on EPOLLOUT, and the
// connection is not read again until its output is out (backpressure). No
// allocation per frame. Stops on SIGTERM or SIGINT.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr size_t kBufferBytes = 256 * 1024;

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "raw-echo-server: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "raw-echo-server: %s\n"
               "usage: raw-echo-server --listen HOST:PORT [--threads N]\n",
               message.c_str());
  std::exit(2);
}

struct Connection {
  explicit Connection(int fd_in) : fd(fd_in), in(kBufferBytes), out(kBufferBytes) {}
  ~Connection() { ::close(fd); }

  int fd;
  std::vector<char> in;  // bytes [0, in_len) received, not yet a complete frame
  size_t in_len = 0;
  std::vector<char> out;  // bytes [out_sent, out_len) still to write
  size_t out_len = 0;
  size_t out_sent = 0;
};

class Worker {
 public:
  Worker() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      die("pipe2");
    handoff_read_ = fds[0];
    handoff_write_ = fds[1];
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0)
      die("epoll_create1");
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.fd = handoff_read_;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, handoff_read_, &event) != 0)
      die("epoll_ctl");
    thread_ = std::thread([this] { run(); });
  }

  // From the acceptor: a connected socket for this thread, or -1 to stop.
  // A 4-byte write to a pipe is atomic.
  void hand_off(int fd) {
    if (::write(handoff_write_, &fd, sizeof fd) != sizeof fd)
      die("write to worker");
  }

  void join() { thread_.join(); }

 private:
  void run() {
    epoll_event events[64];
    for (;;) {
      const int ready = ::epoll_wait(epoll_, events, 64, -1);
      if (ready < 0) {
        if (errno == EINTR)
          continue;
        die("epoll_wait");
      }
      for (int i = 0; i < ready; ++i) {
        const int fd = events[i].data.fd;
        if (fd == handoff_read_) {
          if (!take_handoffs())
            return;
        } else if (!serve(*connections_[fd], events[i].events)) {
          connections_[fd].reset();  // closes the socket; epoll drops it
        }
      }
    }
  }

  // Registers new connections; false on the stop signal.
  bool take_handoffs() {
    int fds[64];
    const ssize_t n = ::read(handoff_read_, fds, sizeof fds);
    if (n <= 0)
      die("read from acceptor");
    for (ssize_t i = 0; i < n / static_cast<ssize_t>(sizeof(int)); ++i) {
      if (fds[i] < 0)
        return false;
      if (static_cast<size_t>(fds[i]) >= connections_.size())
        connections_.resize(fds[i] + 1);
      connections_[fds[i]] = std::make_unique<Connection>(fds[i]);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = fds[i];
      if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, fds[i], &event) != 0)
        die("epoll_ctl");
    }
    return true;
  }

  // One read pass or one write retry; false when the connection is done.
  static bool serve_read(Connection& c) {
    const ssize_t n = ::read(c.fd, c.in.data() + c.in_len, c.in.size() - c.in_len);
    if (n == 0)
      return false;
    if (n < 0)
      return errno == EAGAIN || errno == EINTR;
    c.in_len += n;
    // Echo every complete frame into the output buffer.
    size_t pos = 0;
    while (c.in_len - pos >= 4) {
      uint32_t be;
      std::memcpy(&be, c.in.data() + pos, 4);
      const size_t frame = 4 + static_cast<size_t>(ntohl(be));
      if (c.in_len - pos < frame) {
        if (frame > c.in.size())
          c.in.resize(frame);  // a frame larger than the buffer: grow once
        break;
      }
      if (c.out_len + frame > c.out.size())
        c.out.resize(c.out_len + frame);
      std::memcpy(c.out.data() + c.out_len, c.in.data() + pos, frame);
      c.out_len += frame;
      pos += frame;
    }
    // Keep the partial frame, if any, at the front.
    if (pos > 0 && pos < c.in_len)
      std::memmove(c.in.data(), c.in.data() + pos, c.in_len - pos);
    c.in_len -= pos;
    return true;
  }

  static bool write_out(Connection& c) {
    while (c.out_sent < c.out_len) {
      const ssize_t n = ::write(c.fd, c.out.data() + c.out_sent, c.out_len - c.out_sent);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        return errno == EAGAIN;
      }
      c.out_sent += n;
      break;  // one write per pass; whatever is left waits for EPOLLOUT
    }
    if (c.out_sent == c.out_len)
      c.out_sent = c.out_len = 0;
    return true;
  }

  bool serve(Connection& c, uint32_t events) {
    const bool was_writing = c.out_len > 0;
    if (was_writing) {
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        return true;
    } else if (!serve_read(c)) {
      return false;
    }
    if (!write_out(c))
      return false;
    const bool writing = c.out_len > 0;
    if (writing != was_writing) {
      // Wait for room to write, or read again once the output is out.
      epoll_event event{};
      event.events = writing ? EPOLLOUT : EPOLLIN;
      event.data.fd = c.fd;
      if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &event) != 0)
        die("epoll_ctl");
    }
    return true;
  }

  int handoff_read_ = -1;
  int handoff_write_ = -1;
  int epoll_ = -1;
  std::vector<std::unique_ptr<Connection>> connections_;  // by fd
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string listen;
  int threads = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc)
      usage("missing value for " + flag);
    const std::string value = argv[++i];
    if (flag == "--listen") {
      listen = value;
    } else if (flag == "--threads") {
      threads = std::atoi(value.c_str());
    } else {
      usage("unknown option " + flag);
    }
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos)
    usage("--listen HOST:PORT is required");
  if (threads < 1)
    usage("--threads must be at least 1");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
  if (::inet_pton(AF_INET, listen.substr(0, colon).c_str(), &address.sin_addr) != 1)
    usage("bad address " + listen);

  // Signals are taken by the acceptor's signalfd only; every thread inherits
  // this mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  const int signal_fd = ::signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0)
    die("signalfd");

  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0)
    die("socket");
  const int one = 1;
  ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0)
    die("bind");
  if (::listen(listener, 1024) != 0)
    die("listen");
  socklen_t length = sizeof address;
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);

  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < threads; ++i)
    workers.push_back(std::make_unique<Worker>());
  std::printf("raw-echo-server ready on %s:%u pid %d\n", listen.substr(0, colon).c_str(),
              ntohs(address.sin_port), static_cast<int>(::getpid()));
  std::fflush(stdout);

  pollfd fds[2] = {{listener, POLLIN, 0}, {signal_fd, POLLIN, 0}};
  size_t next = 0;
  for (;;) {
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR)
        continue;
      die("poll");
    }
    if (fds[1].revents)
      break;
    if (fds[0].revents) {
      const int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0)
        continue;  // e.g. the peer gave up already
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      workers[next++ % workers.size()]->hand_off(fd);
    }
  }
  for (auto& worker : workers)
    worker->hand_off(-1);
  for (auto& worker : workers)
    worker->join();
  return 0;
}
