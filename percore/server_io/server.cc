#include <percore/server_io/server.h>

#include <fcntl.h>
#include <google/protobuf/service.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <future>
#include <thread>

#include <percore/base/detail/tls_context.h>
#include <percore/base/log.h>
#include <percore/proto/detail/assert.h>
#include <percore/server_io/detail/acceptor.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/process_pool.h>
#include <percore/server_io/detail/server_core.h>

#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>
#include <percore/server_io/detail/server_core.h>
#include <percore/server_io/detail/worker_pool.h>

namespace percore {
namespace {

// Replies must fit an error answer; see ServerOptions::max_body_bytes.
constexpr size_t kMinimumMaxBodyBytes = 4096;

int default_thread_count(int requested) {
  if (requested > 0)
    return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ServerOptions sanitized(ServerOptions options) {
  options.io_threads = default_thread_count(options.io_threads);
  options.workers = default_thread_count(options.workers);
  options.worker_queue_capacity = std::max<size_t>(1, options.worker_queue_capacity);
  // Each worker is a process and two descriptors of the server's.
  options.process_workers = std::min(256, default_thread_count(options.process_workers));
  options.process_queue_capacity = std::max<size_t>(1, options.process_queue_capacity);
  options.max_body_bytes = std::max(kMinimumMaxBodyBytes, options.max_body_bytes);
  options.max_inflight_per_connection = std::max(1, options.max_inflight_per_connection);
  options.max_unwritten_bytes_per_connection =
      std::max(options.max_body_bytes, options.max_unwritten_bytes_per_connection);
  options.max_connections = std::max(0, options.max_connections);
  options.idle_timeout_ms = std::max(0, options.idle_timeout_ms);
  options.partial_frame_timeout_ms = std::max(0, options.partial_frame_timeout_ms);
  options.close_linger_ms = std::max(1, options.close_linger_ms);
  options.socket_send_buffer_bytes = std::max(0, options.socket_send_buffer_bytes);
  options.socket_receive_buffer_bytes = std::max(0, options.socket_receive_buffer_bytes);
  options.max_http_header_bytes =
      std::clamp<size_t>(options.max_http_header_bytes, 1024, size_t{1} << 20);
  return options;
}

// Runs `task` on each I/O thread and waits for all of them.
template <typename Task>
void run_on_each(std::vector<std::unique_ptr<detail::IoThread>>& io_threads, Task task) {
  std::vector<std::future<void>> done;
  for (auto& io_thread : io_threads) {
    auto finished = std::make_shared<std::promise<void>>();
    done.push_back(finished->get_future());
    boost::asio::post(io_thread->context(), [&io_thread, task, finished] {
      task(*io_thread);
      finished->set_value();
    });
  }
  for (auto& future : done)
    future.wait();
}

// SIGINT / SIGTERM for RunUntilAskedToQuit: the handler records the signal
// and writes a byte to a self-pipe, both async-signal-safe, whichever thread
// it runs on. Process-wide, installed once, never removed.
std::atomic<int> quit_signal{0};
int quit_pipe[2] = {-1, -1};
static_assert(std::atomic<int>::is_always_lock_free, "used from a signal handler");

extern "C" void on_quit_signal(int number) {
  const int saved_errno = errno;
  int expected = 0;
  quit_signal.compare_exchange_strong(expected, number);
  const char byte = 1;
  [[maybe_unused]] const ssize_t written = ::write(quit_pipe[1], &byte, 1);
  errno = saved_errno;
}

sigset_t quit_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

void install_quit_handlers() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    if (::pipe2(quit_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
      std::string message = "percore: cannot create the signal pipe: ";
      message += std::strerror(errno);
      log(LogLevel::kError, message);
      return;
    }
    struct sigaction action {};
    action.sa_handler = on_quit_signal;
    sigemptyset(&action.sa_mask);
    // Other threads' interrupted system calls restart (where they can).
    action.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGTERM, &action, nullptr);
  });
}

}  // namespace

Server::Server(ServerOptions options)
    : core_(std::make_unique<detail::ServerCore>(sanitized(std::move(options)))) {}

Server::~Server() {
  Stop();
  if (stop_event_fd_ >= 0)
    ::close(stop_event_fd_);
  // Workers first: their last done->Run() calls post to the I/O threads.
  if (core_->workers != nullptr)
    core_->workers->shutdown();
  if (core_->processes != nullptr)
    core_->processes->shutdown();
  for (auto& io_thread : io_threads_)
    io_thread->join();
}

bool Server::AddService(google::protobuf::Service* service, ServiceOptions options,
                        std::string* error) {
  if (started_) {
    if (error != nullptr)
      *error = "services must be added before Start()";
    return false;
  }
  return core_->services.add(service, options, error);
}

bool Server::AddService(std::unique_ptr<google::protobuf::Service> service, ServiceOptions options,
                        std::string* error) {
  if (!AddService(service.get(), std::move(options), error))
    return false;
  core_->services.adopt(std::move(service));
  return true;
}

bool Server::make_tls_context(std::string* error) {
  const ServerOptions& options = core_->options;
  if (!options.tls.has_value()) {
    if (options.tls_required) {
      if (error != nullptr)
        *error = "tls_required needs tls (a certificate and a private key)";
      return false;
    }
    return true;
  }
  std::string why;
  const std::shared_ptr<detail::TlsContext> made =
      detail::TlsContext::create(*options.tls, detail::TlsContext::Side::kServer, &why);
  if (made == nullptr) {
    if (error != nullptr)
      *error = "TLS: " + why;
    return false;
  }
  // Asio's context takes a reference of its own (it frees it).
  SSL_CTX_up_ref(made->native());
  core_->tls_context = std::make_unique<boost::asio::ssl::context>(made->native());
  return true;
}

bool Server::Start(const std::string& listen_address, std::string* error) {
  std::lock_guard lock(lifecycle_mutex_);
  if (started_) {
    if (error != nullptr)
      *error = "server already started";
    return false;
  }
  const ServerOptions& options = core_->options;
  if (!make_tls_context(error))
    return false;
  // The zygote first, while the server has no thread of its own.
  bool uses_processes = false;
  core_->services.for_each_method([&uses_processes](const detail::MethodEntry& method) {
    uses_processes = uses_processes || method.mode == ExecutionMode::kProcessPool;
  });
  if (uses_processes) {
    core_->processes = std::make_unique<detail::ProcessPool>(*core_);
    if (!core_->processes->start_zygote(error)) {
      core_->processes.reset();
      return false;
    }
  }
  for (int i = 0; i < options.io_threads; ++i) {
    io_threads_.push_back(std::make_unique<detail::IoThread>(*core_, i));
  }
  std::vector<detail::IoThread*> targets;
  for (auto& io_thread : io_threads_)
    targets.push_back(io_thread.get());
  acceptor_ = std::make_unique<detail::Acceptor>(io_threads_[0]->context(), targets, *core_);
  if (!acceptor_->open(listen_address, error)) {
    acceptor_.reset();
    io_threads_.clear();
    core_->processes.reset();
    return false;
  }
  port_ = acceptor_->port();
  core_->workers =
      std::make_unique<detail::WorkerPool>(options.workers, options.worker_queue_capacity);
  for (auto& io_thread : io_threads_)
    io_thread->start();
  if (core_->processes != nullptr)
    core_->processes->start();
  acceptor_->start();
  started_ = true;
  core_->running.store(true, std::memory_order_release);
  return true;
}

bool Server::AddConnection(int fd) {
  if (!core_->running.load(std::memory_order_acquire) ||
      core_->stopping.load(std::memory_order_acquire)) {
    ::close(fd);
    return false;
  }
  if (!core_->try_open_connection()) {
    core_->refused_connection_log.log(LogLevel::kWarning, [&] {
      return "refusing an added connection: max_connections (" +
             std::to_string(core_->options.max_connections) + ") reached";
    });
    ::close(fd);
    return false;
  }
  const size_t index =
      next_added_connection_.fetch_add(1, std::memory_order_relaxed) % io_threads_.size();
  detail::IoThread& io_thread = *io_threads_[index];
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  const bool v6 = ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0 &&
                  address.ss_family == AF_INET6;
  boost::asio::ip::tcp::socket socket(io_thread.context());
  boost::system::error_code error;
  socket.assign(v6 ? boost::asio::ip::tcp::v6() : boost::asio::ip::tcp::v4(), fd, error);
  if (error) {
    ::close(fd);
    core_->open_connections.leave();
    return false;
  }
  io_thread.adopt(std::move(socket));
  return true;
}

void Server::assert_not_in_io_thread() const {
  for (const auto& io_thread : io_threads_)
    PERCORE_ASSERT(!io_thread->in_loop_thread());
}

void Server::Stop(std::chrono::milliseconds grace) {
  std::unique_lock lock(lifecycle_mutex_);
  if (!started_ || stopped_)
    return;
  assert_not_in_io_thread();
  stopped_ = true;
  if (stop_event_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = ::write(stop_event_fd_, &one, sizeof(one));
  }
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + grace;

  acceptor_->close();
  core_->stopping.store(true, std::memory_order_release);
  // A stream holds its worker process: calls queued behind it run only once
  // it ends.
  if (core_->processes != nullptr)
    core_->processes->close_streams_for_stop();
  for (const auto& gate : core_->unanswered_calls_by_thread)
    gate->close_and_wait_until(deadline);
  run_on_each(io_threads_, [](detail::IoThread& io_thread) {
    io_thread.abandon_in_flight_calls();
    io_thread.begin_close_connections(CloseReason::kServerStopped);
  });
  // Its calls were just answered 2003; this kills and reaps the workers and
  // the zygote, so no process of the server outlives Stop().
  if (core_->processes != nullptr)
    core_->processes->shutdown();

  // Each connection answers what it read, flushes and closes within
  // close_linger_ms (its I/O thread's sweep enforces that); this wait is only
  // a safety net over it.
  const Clock::time_point flush_deadline =
      Clock::now() + std::chrono::milliseconds(core_->options.close_linger_ms) +
      2 * core_->sweep_interval() + std::chrono::milliseconds(100);
  if (!core_->open_connections.close_and_wait_until(flush_deadline)) {
    run_on_each(io_threads_, [](detail::IoThread& io_thread) { io_thread.abort_connections(); });
  }
  lock.unlock();
  stop_done_.notify_all();
}

void Server::Wait() {
  std::unique_lock lock(lifecycle_mutex_);
  assert_not_in_io_thread();
  // Stop() holds the mutex throughout, so stopped_ seen here means done.
  stop_done_.wait(lock, [this] { return !started_ || stopped_; });
}

int Server::RunUntilAskedToQuit() {
  int stop_fd = -1;
  {
    std::lock_guard lock(lifecycle_mutex_);
    assert_not_in_io_thread();
    // Not running (never started, Start failed, or stopped): nothing to wait
    // for; blocking would leave a process that serves nothing.
    if (stopped_ || !started_)
      return 0;
    if (stop_event_fd_ < 0)
      stop_event_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    stop_fd = stop_event_fd_;
  }
  install_quit_handlers();
  // Take the signals in this thread even where main blocked them before
  // starting threads (then only this thread has them unblocked).
  const sigset_t signals = quit_signal_set();
  sigset_t previous_mask;
  pthread_sigmask(SIG_UNBLOCK, &signals, &previous_mask);
  int signal_number = 0;
  for (;;) {
    signal_number = quit_signal.load();
    if (signal_number != 0)
      break;
    pollfd watched[2] = {{quit_pipe[0], POLLIN, 0}, {stop_fd, POLLIN, 0}};
    const int ready = ::poll(watched, stop_fd >= 0 ? 2 : 1, -1);
    if (ready < 0 && errno != EINTR) {
      std::string message = "percore: RunUntilAskedToQuit cannot poll: ";
      message += std::strerror(errno);
      log(LogLevel::kError, message);
      break;
    }
    if (ready > 0 && (watched[0].revents & POLLIN) != 0) {
      char bytes[64];
      while (::read(quit_pipe[0], bytes, sizeof(bytes)) > 0) {
      }
    }
    if (ready > 0 && (watched[1].revents & POLLIN) != 0)
      break;  // Stop() began; the eventfd stays readable for later calls.
  }
  pthread_sigmask(SIG_SETMASK, &previous_mask, nullptr);
  return signal_number;
}

ServerStats Server::stats() const {
  return detail::snapshot_stats(*core_);
}

}  // namespace percore
