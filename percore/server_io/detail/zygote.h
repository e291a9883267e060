#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>

namespace percore::detail {

// The "zygote": a small process forked by Server::Start() before the server
// has any thread, which forks the worker processes of kProcessPool methods
// on request. Forking the server itself later would be unsafe (only the
// forking thread survives in the child; locks other threads held stay
// locked), so every worker descends from this single-threaded copy of the
// server as it was at Start(): same binary, same registered services.
//
// The zygote keeps only stdio and its control socket (every other inherited
// descriptor is closed, so a copy of the server's sockets never keeps a
// connection open), runs in its own process group (a terminal's Ctrl-C
// reaches the server only, which then stops its workers in order), reaps
// its workers and reports each exit. When the control socket closes (the
// server stopped or died) it kills its workers, reaps them and exits.
//
// Control socket messages (SOCK_SEQPACKET, one struct per message):
//   server -> zygote: spawn
//   zygote -> server: spawned {pid} + SCM_RIGHTS [worker socket, pidfd]
//                     spawn failed {errno}; exited {pid, wait status}
//
// Owns: the zygote process (reaped by stop()) and the server's end of the
// control socket. Threads: start() and stop() on the control thread;
// request_worker() and receive() on the process pool's thread.
class Zygote {
 public:
  // Runs in a new worker with its end of the worker socket (blocking, and
  // closed on exec); the worker _exit()s when it returns.
  using WorkerMain = std::function<void(int socket_fd)>;

  Zygote() = default;
  ~Zygote();
  Zygote(const Zygote&) = delete;
  Zygote& operator=(const Zygote&) = delete;

  // Forks the zygote. `memory_limit_bytes` > 0 sets each worker's RLIMIT_AS.
  // False with the reason in *error (fork or socketpair failed).
  bool start(WorkerMain worker_main, size_t memory_limit_bytes, std::string* error);
  // The server's end of the control socket (non-blocking), for readiness.
  int control_fd() const { return control_fd_; }
  pid_t pid() const { return pid_; }

  // Asks for one more worker, without blocking; its `spawned` (or `spawn
  // failed`) message follows. kFull when the socket's buffer is full (the
  // caller keeps at most a few requests outstanding, so that the zygote's
  // answers never fill its side while nobody reads them).
  enum class SendResult { kSent, kFull, kGone };
  SendResult request_worker();
  // Reaps the zygote if it has exited (it was killed): no zombie remains.
  void reap_if_exited();

  struct Message {
    enum class Kind { kNone, kSpawned, kSpawnFailed, kExited, kGone };
    Kind kind = Kind::kNone;  // kNone: nothing to read now.
    pid_t pid = 0;
    int socket_fd = -1;  // kSpawned: the server's end of the worker socket.
    int pidfd = -1;      // kSpawned: -1 where the kernel has no pidfd_open.
    int status = 0;      // kExited: as waitpid() gives it; kSpawnFailed: errno.
  };
  // The next message, without blocking; kGone once the zygote has gone.
  Message receive();

  // Closes the control socket (the zygote kills and reaps its workers, then
  // exits) and reaps the zygote, killing it past `timeout`. Idempotent.
  void stop(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  int control_fd_ = -1;
};

// Sends `signal_number` to a worker: through its pidfd when it has one (never
// a recycled pid), else by pid. Any thread.
void signal_worker(pid_t pid, int pidfd, int signal_number);

// "SIGSEGV", "exit status 3", ...: how a process ended, from waitpid()'s status.
std::string describe_wait_status(int status);

}  // namespace percore::detail
