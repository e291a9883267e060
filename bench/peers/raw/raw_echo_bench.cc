// raw-echo-bench: percore-bench's load, flags and report against
// raw-echo-server's plain frames (4-byte big-endian length + payload).
//
//   raw-echo-bench --target HOST:PORT (--concurrency C | --rate R) [--threads T]
//                  [--payload BYTES] [--duration S] [--warmup S]
//                  [--server-pid PID[,PID...]] [--json FILE]
//
// T load threads (default 2; in the closed loop no more than C), each with one
// connection and its own epoll loop. Replies come back in order, so each
// thread keeps a FIFO of send timestamps. Closed loop (--concurrency): C
// frames in flight in total; each read pass counts the replies it holds and
// sends as many new frames in one write. Open loop (--rate): each thread sends
// R/T frames per second at their intended times (all that are due in one
// write); latency counts from the intended time, so a stall is not hidden.
// The headline figure is requests per CPU-second: completed calls divided by
// the user + system CPU seconds of this process and of the --server-pid
// processes over the measured window. Errors use percore's numbers: 1009 for
// frames lost with a broken connection, 2002 for a malformed reply.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_report.h"
#include "bench/latency_histogram.h"

namespace {

using Clock = std::chrono::steady_clock;
using percore::bench::LatencyHistogram;

constexpr int kBrokenConnection = 1009;
constexpr int kBadResponse = 2002;
constexpr size_t kReadBufferBytes = 256 * 1024;

struct Options : percore::bench::CommonOptions {
  int threads = 2;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "raw-echo-bench: %s\n"
               "usage: raw-echo-bench --target HOST:PORT (--concurrency C | --rate R)\n"
               "       [--threads T] [--payload BYTES] [--duration S] [--warmup S]\n"
               "       [--server-pid PID[,PID...]] [--json FILE]\n",
               message.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options options;
  percore::bench::FlagSpec spec;
  spec.int_flags = {{"--threads", &options.threads}};
  spec.rejected = {"--timeout-ms"};  // A frame has no deadline.
  percore::bench::parse_flags(argc, argv, options, spec, usage);
  if ((options.concurrency > 0) == (options.rate > 0))
    usage("give one of --concurrency C or --rate R");
  if (options.threads < 1)
    usage("--threads must be at least 1");
  return options;
}

// A blocking connect, then TCP_NODELAY and non-blocking.
int connect_to(const std::string& target) {
  const size_t colon = target.rfind(':');
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (colon == std::string::npos ||
      ::inet_pton(AF_INET, target.substr(0, colon).c_str(), &address.sin_addr) != 1) {
    usage("--target must be IPV4:PORT, got " + target);
  }
  address.sin_port = htons(static_cast<uint16_t>(std::atoi(target.c_str() + colon + 1)));
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    std::fprintf(stderr, "raw-echo-bench: connect %s: %s\n", target.c_str(), std::strerror(errno));
    std::exit(1);
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Send timestamps of the frames in flight, oldest first. A power-of-two ring;
// it only grows (doubling) when the open loop outruns the server.
class TimestampFifo {
 public:
  explicit TimestampFifo(size_t capacity) : slots_(std::bit_ceil(std::max<size_t>(capacity, 1))) {}

  size_t size() const { return size_; }
  void push(Clock::time_point sent) {
    if (size_ == slots_.size())
      grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = sent;
    ++size_;
  }
  Clock::time_point pop() {
    const Clock::time_point sent = slots_[head_];
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
    return sent;
  }

 private:
  void grow() {
    std::vector<Clock::time_point> bigger(slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = slots_[(head_ + i) & (slots_.size() - 1)];
    slots_.swap(bigger);
    head_ = 0;
  }

  std::vector<Clock::time_point> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

struct Shared {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stopping{false};
};

// One load thread and its connection; its counters are read after join().
class LoadThread {
 public:
  // `share`: frames in flight (closed loop); `rate`: frames per second (open).
  LoadThread(const Options& options, Shared& shared, int share, double rate)
      : shared_(shared),
        share_(share),
        rate_(rate),
        fd_(connect_to(options.target)),
        frame_(4 + options.payload, 'x'),
        in_(std::max(kReadBufferBytes, 2 * frame_.size())),
        sent_(share > 0 ? share : 1024) {
    const uint32_t be = htonl(static_cast<uint32_t>(options.payload));
    std::memcpy(frame_.data(), &be, 4);
    out_.reserve(frame_.size() * std::max(share, 64));
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event event{};
    event.events = EPOLLIN;
    if (epoll_ < 0 || ::epoll_ctl(epoll_, EPOLL_CTL_ADD, fd_, &event) != 0) {
      std::perror("raw-echo-bench: epoll");
      std::exit(1);
    }
    thread_ = std::thread([this] { run(); });
  }
  ~LoadThread() {
    ::close(epoll_);
    ::close(fd_);
  }

  void join() { thread_.join(); }

  LatencyHistogram latency;
  uint64_t completed = 0;
  std::map<int, uint64_t> errors;

 private:
  void run() {
    const bool closed_loop = share_ > 0;
    const auto interval = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(closed_loop ? 0 : 1.0 / rate_));
    Clock::time_point next = Clock::now();
    Clock::time_point give_up = Clock::time_point::max();
    if (closed_loop) {
      for (int i = 0; i < share_; ++i)
        queue(next);
      if (!flush())
        return fail(kBrokenConnection, sent_.size());
    }
    for (;;) {
      Clock::time_point now = Clock::now();
      const bool stopping = shared_.stopping.load(std::memory_order_relaxed);
      if (stopping) {
        // Drain what is in flight, then leave.
        if (give_up == Clock::time_point::max())
          give_up = now + std::chrono::seconds(2);
        if (sent_.size() == 0 || now > give_up)
          return;
      } else if (!closed_loop && next <= now) {
        while (next <= now) {
          queue(next);
          next += interval;
        }
        if (!flush())
          return fail(kBrokenConnection, sent_.size());
      }
      // Wait for a reply, or until the next frame is due; at most 100 ms, so
      // that `stopping` is seen.
      long wait_ns = 100'000'000;
      if (!closed_loop && !stopping) {
        wait_ns = std::min<long>(
            wait_ns, std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count());
      }
      const timespec timeout{0, wait_ns};
      epoll_event event;
      const int ready = ::epoll_pwait2(epoll_, &event, 1, &timeout, nullptr);
      if (ready <= 0)
        continue;
      if ((event.events & EPOLLOUT) && !flush())
        return fail(kBrokenConnection, sent_.size());
      if (event.events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        const int replies = read_replies(now);
        if (replies < 0)
          return;
        if (closed_loop && !stopping && replies > 0) {
          for (int i = 0; i < replies; ++i)
            queue(now);
          if (!flush())
            return fail(kBrokenConnection, sent_.size());
        }
      }
    }
  }

  void queue(Clock::time_point sent) {
    out_.insert(out_.end(), frame_.begin(), frame_.end());
    sent_.push(sent);
  }

  // One write of everything queued; the rest waits for EPOLLOUT.
  bool flush() {
    if (out_sent_ < out_.size()) {
      const ssize_t n = ::write(fd_, out_.data() + out_sent_, out_.size() - out_sent_);
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        return false;
      if (n > 0)
        out_sent_ += n;
    }
    // Drop what is written: at once when it is all, else once it is half the
    // buffer (an overloaded open loop can queue megabytes).
    if (out_sent_ == out_.size() || out_sent_ > out_.size() / 2) {
      out_.erase(out_.begin(), out_.begin() + out_sent_);
      out_sent_ = 0;
    }
    const bool want_out = !out_.empty();
    if (want_out != want_out_) {
      want_out_ = want_out;
      epoll_event event{};
      event.events = want_out ? uint32_t{EPOLLIN | EPOLLOUT} : uint32_t{EPOLLIN};
      ::epoll_ctl(epoll_, EPOLL_CTL_MOD, fd_, &event);
    }
    return true;
  }

  // One read; counts and times each complete reply (`now` is set to the time
  // of the read). The number of replies, or -1 when the connection failed.
  int read_replies(Clock::time_point& now) {
    const ssize_t n = ::read(fd_, in_.data() + in_len_, in_.size() - in_len_);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return 0;
    if (n <= 0) {
      fail(kBrokenConnection, sent_.size());
      return -1;
    }
    in_len_ += n;
    now = Clock::now();
    const bool measuring = shared_.measuring.load(std::memory_order_relaxed);
    int replies = 0;
    size_t pos = 0;
    for (; in_len_ - pos >= frame_.size(); pos += frame_.size(), ++replies) {
      if (sent_.size() == 0 || std::memcmp(in_.data() + pos, frame_.data(), 4) != 0) {
        fail(kBadResponse, 1);
        return -1;
      }
      const Clock::time_point sent = sent_.pop();
      if (measuring) {
        latency.record(static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - sent).count()));
        ++completed;
      }
    }
    if (pos > 0 && pos < in_len_)
      std::memmove(in_.data(), in_.data() + pos, in_len_ - pos);
    in_len_ -= pos;
    return replies;
  }

  void fail(int code, uint64_t calls) {
    std::fprintf(stderr, "raw-echo-bench: %s\n",
                 code == kBadResponse ? "malformed reply" : "connection broken");
    errors[code] += calls;
  }

  Shared& shared_;
  const int share_;
  const double rate_;
  const int fd_;
  int epoll_ = -1;
  std::vector<char> frame_;  // the request: length + payload
  std::vector<char> in_;     // bytes [0, in_len_) received, not yet a whole reply
  size_t in_len_ = 0;
  std::vector<char> out_;  // bytes [out_sent_, size) queued, not yet written
  size_t out_sent_ = 0;
  bool want_out_ = false;
  TimestampFifo sent_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  const bool closed_loop = options.concurrency > 0;
  const int threads =
      closed_loop ? std::min(options.threads, options.concurrency) : options.threads;
  Shared shared;
  std::vector<std::unique_ptr<LoadThread>> load;
  for (int t = 0; t < threads; ++t) {
    const int share =
        closed_loop ? options.concurrency / threads + (t < options.concurrency % threads ? 1 : 0)
                    : 0;
    load.push_back(std::make_unique<LoadThread>(options, shared, share, options.rate / threads));
  }

  const percore::bench::Window window = percore::bench::measure_window(
      options.warmup_s, options.duration_s, options.server_pids, shared.measuring);

  shared.stopping = true;
  LatencyHistogram latency;
  percore::bench::BenchResult result;
  result.system = "raw";
  result.target = options.target;
  result.payload_bytes = options.payload;
  result.parallelism_column = "threads";
  result.parallelism_key = "threads";
  result.parallelism = threads;
  result.concurrency = options.concurrency;
  result.rate = options.rate;
  result.duration_s = window.elapsed_s;
  for (auto& thread : load) {
    thread->join();
    latency.merge_from(thread->latency);
    result.completed += thread->completed;
    for (const auto& [code, count] : thread->errors)
      result.errors[code] += count;
  }
  result.latency = &latency;
  result.client_cpu_s = window.client_cpu_s;
  result.server_cpu_s = window.server_cpu_s;
  result.error_name = [](int32_t code) {
    return std::string(code == kBadResponse ? "bad response" : "broken connection");
  };
  percore::bench::print_table(result);
  if (!options.json_path.empty())
    percore::bench::write_json(result, options.json_path);
  return result.error_total() == 0 ? 0 : 1;
}
