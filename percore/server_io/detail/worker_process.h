#pragma once

#include <cstddef>
#include <functional>

namespace percore::detail {

class ServiceTable;

// What runs inside one worker process of a kProcessPool method: it reads
// baidu_std request frames from its socket to the server, one at a time,
// runs the method's handler on its only thread (waiting for `done` when the
// handler hands it to a thread of its own) and writes the answer frame back.
// After `on_start` it writes one byte ('R') to say it is ready: a worker
// that dies before that byte "crashed at start" (the pool backs off).
//
// The internal request frame is a baidu_std request whose meta also carries
// the caller's address in user_fields["remote_side"] and the time left to
// the caller's deadline in timeout_ms; the answer is a baidu_std response
// (compressed as the handler asked, compress_type in its meta).
//
// An exception escaping a handler is answered 2001 as on a thread; a
// std::bad_alloc (RLIMIT_AS, ServerOptions::process_memory_limit_bytes) ends
// the worker at once with kOutOfMemoryExit (its heap may be unusable), and
// the pool answers the call 2001 and replaces the worker.
//
// Owns: nothing beyond the call. Threads: the worker's main thread; it
// never returns while the socket is open.
class WorkerProcess {
 public:
  // Serves `socket_fd` until the server closes it. Blocking.
  static void run(int socket_fd, const ServiceTable& services, size_t max_body_bytes,
                  const std::function<void()>& on_start);

  // Exit status of a worker whose handler ran out of memory.
  static constexpr int kOutOfMemoryExit = 86;

 private:
  static void serve(int socket_fd, const ServiceTable& services, size_t max_body_bytes,
                    const std::function<void()>& on_start);
};

}  // namespace percore::detail
