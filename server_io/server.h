#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proto/frame.h"
#include "server_io/server_controller.h"
#include "server_io/server_stats.h"

namespace google::protobuf {
class Service;
}

namespace percore {

namespace detail {
class Acceptor;
class IoThread;
class ServerCore;
}  // namespace detail

// Where a method's handler runs.
enum class ExecutionMode {
  // On the connection's I/O thread, as soon as the request is decoded: the
  // fewest wake-ups, for handlers that take microseconds and never block.
  kInline,
  // On the server's bounded worker pool: for compute-heavy or blocking
  // handlers, which must not stall network I/O.
  kWorkerPool,
};

struct ServiceOptions {
  // Mode of every method not listed in `method_modes`. Default: inline.
  ExecutionMode default_mode = ExecutionMode::kInline;
  // Per-method modes, keyed by method name (e.g. "IsPrime").
  std::map<std::string, ExecutionMode> method_modes;
};

struct ServerOptions {
  // I/O threads, each with its own io_context. Default 0: one per core.
  int io_threads = 0;
  // Worker threads for kWorkerPool methods. Default 0: one per core.
  int workers = 0;
  // Requests waiting for a worker, at most; past it a request is answered
  // 2004 (server limit reached) at once. Default 1024; at least 1.
  size_t worker_queue_capacity = 1024;
  // Largest body_size accepted in a request and sent in a reply. A bigger
  // request closes its connection; a bigger reply is answered 2001.
  // Default 64 MiB.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  // Requests in flight on one connection, at most; past it the connection is
  // not read until some finish (TCP then pushes back on the client).
  // Default 1024; at least 1.
  int max_inflight_per_connection = 1024;
};

// The server container: hosts protobuf Services on one TCP port.
// One acceptor hands accepted connections round-robin to the I/O threads;
// each connection lives on one I/O thread, which decodes its requests, runs
// inline handlers and writes its replies, many per gathered write.
//
// Owns: its I/O threads, worker pool, acceptor and connections, and the
// services passed by unique_ptr. Does not own services passed by pointer:
// they must outlive the Server.
// Threads: AddService before Start, from one thread; Start, Stop and the
// destructor from one control thread (not from a handler); stats() and port()
// from any thread.
class Server {
 public:
  explicit Server(ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Registers a service under its full name (e.g. "example.EchoService").
  // Returns false, with the reason in *error, if the name is taken or the
  // server has started.
  bool AddService(google::protobuf::Service* service, ServiceOptions options = {},
                  std::string* error = nullptr);
  bool AddService(std::unique_ptr<google::protobuf::Service> service, ServiceOptions options = {},
                  std::string* error = nullptr);

  // Listens on "host:port" (port 0 picks a free one; "[::1]:port" for IPv6)
  // and starts serving. Returns false, with the reason in *error, if the
  // address does not resolve or cannot be bound (e.g. already in use).
  bool Start(const std::string& listen_address, std::string* error = nullptr);

  // Graceful stop: stops accepting, answers new requests with 2003, waits up
  // to `grace` for calls in flight, answers those still running 2003 (their
  // late replies are dropped), flushes and closes every connection.
  // Idempotent.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // The bound port, once started.
  int port() const { return port_; }
  ServerStats stats() const;

 private:
  std::unique_ptr<detail::ServerCore> core_;
  std::vector<std::unique_ptr<detail::IoThread>> io_threads_;
  std::unique_ptr<detail::Acceptor> acceptor_;
  int port_ = 0;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace percore
