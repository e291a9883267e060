#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <percore/base/authenticator.h>
#include <percore/base/tls_options.h>
#include <percore/proto/frame.h>
#include <percore/server_io/server_controller.h>
#include <percore/server_io/server_stats.h>

namespace google::protobuf {
class Service;
}

namespace percore {

namespace detail {
class Acceptor;
class IoThread;
class ProcessPool;
struct ServerCore;
}  // namespace detail

// Where a method's handler runs.
enum class ExecutionMode {
  // On the connection's I/O thread, as soon as the request is decoded: the
  // fewest wake-ups, for handlers that take microseconds and never block.
  kInline,
  // On the server's bounded worker pool: for compute-heavy or blocking
  // handlers, which must not stall network I/O.
  kWorkerPool,
  // In one of the server's worker processes (ServerOptions::process_workers),
  // forked from a zygote that Start() creates before the server has any
  // thread: a handler that crashes (its call is answered 2001 "worker process
  // died: SIGSEGV"), runs past max_run_ms or its call's deadline (SIGKILL,
  // 1008), or exhausts process_memory_limit_bytes (2001) loses one worker,
  // which is replaced; the server and every other call go on. The handler
  // sees the process as it was at Start(): same services, no server threads,
  // no connections (Channels made before Start() do not work there). Costs a
  // round trip over a Unix socket per call (docs/BENCHMARKS.md). A stream
  // the handler accepts lives in the worker (the server relays its frames);
  // the worker takes no other call until it ends, and resets it if it dies.
  kProcessPool,
};

// The message types of a stream method's messages when the stream travels
// over a WebSocket (GET /ws/<package.Service>/<Method>): full names of
// messages in the generated descriptor pool (compiled into the server).
struct StreamMessageTypes {
  // What the client writes, e.g. "prime.PrimeChunk". Empty: raw bytes.
  std::string input;
  // What the handler writes, e.g. "prime.PrimeStreamReply". Empty: raw bytes.
  std::string output;
};

struct ServiceOptions {
  // Mode of every method not listed in `method_modes`. Default: inline.
  ExecutionMode default_mode = ExecutionMode::kInline;
  // Per-method modes, keyed by method name (e.g. "IsPrime").
  std::map<std::string, ExecutionMode> method_modes;
  // kProcessPool methods only: the longest a handler may run, in ms, from the
  // moment its worker takes the call; past it the worker is killed (SIGKILL)
  // and the call answered 1008. The caller's deadline (timeout_ms) kills the
  // worker the same way; both stop at the answer (a stream the call opened
  // has its idle timeout). Default 0: no limit but the deadline. Per-method
  // values, keyed by method name, override the default.
  int default_max_run_ms = 0;
  std::map<std::string, int> method_max_run_ms;
  // Stream methods served to browsers over a WebSocket: the types of the
  // stream's messages, keyed by method name, e.g.
  //   method_stream_types["FindPrimes"] = {"prime.PrimeChunk", "prime.PrimeStreamReply"};
  // With a type, a WebSocket text message is that message as JSON (the same
  // mapping as HTTP bodies: unknown fields refused), converted to and from
  // the protobuf bytes the handler reads and writes; a binary message is
  // taken as the message's protobuf bytes, unchanged. A text message that
  // does not parse closes the WebSocket 1007 and resets the stream
  // (kResetByPeer). Without one (a method not listed, or an empty name),
  // messages pass unchanged: the handler's as a text frame when they are
  // valid UTF-8, binary otherwise. AddService fails for a method or a type
  // that does not exist. docs/PROTOCOL.md, "WebSocket streams".
  std::map<std::string, StreamMessageTypes> method_stream_types;
};

// Limits that bound what a server holds whatever its peers do; the worst
// case, as a formula of these, is in docs/ARCHITECTURE.md ("Memory bounds")
// and every limit is listed in docs/RELIABILITY.md.
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
  // Default 64 MiB; at least 4096.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
  // Requests in flight on one connection, at most; past it the connection is
  // not read until some finish (TCP then pushes back on the client).
  // Default 1024; at least 1.
  int max_inflight_per_connection = 1024;
  // Bytes of answers waiting to be written on one connection, at most; past
  // it the connection is neither read nor its buffered requests dispatched
  // until half of that has been written, so a client that sends and never
  // reads stops being read instead of growing the server. Answers of calls
  // already running are still queued (at most max_inflight_per_connection of
  // them). Default 64 MiB (brpc's socket_max_unwritten_bytes); at least
  // max_body_bytes.
  size_t max_unwritten_bytes_per_connection = size_t{64} << 20;
  // Streams open on one connection, at most (counting the calls in flight
  // that may accept one): past it a handler's AcceptStream returns false
  // and the client's stream ends kNotAccepted. With each stream's own
  // window this bounds what one connection's streams hold. Default 64; 0:
  // no streams on this server.
  int max_streams_per_connection = 64;
  // Open connections, at most, over all I/O threads. A connection accepted
  // past it is closed at once, counted (ServerStats::connections_refused) and
  // logged at most once a second. Default 0: no limit but the process's
  // descriptor limit (RLIMIT_NOFILE).
  int max_connections = 0;
  // A connection with no call in flight, nothing to write and no byte
  // received or sent for this long is closed (FIN; the peer reconnects when it
  // needs to). Default 0: never, as brpc's and gRPC's servers.
  int idle_timeout_ms = 0;
  // A connection that has sent part of a frame and then nothing for this
  // long is closed (slow senders, slowloris); the calls it sent before are
  // answered first. Default 10000; 0 turns it off.
  int partial_frame_timeout_ms = 10000;
  // A closing connection (any reason but a reset) first answers every request
  // it read, then has this long to write those answers and receive the peer's
  // end of stream; past it the connection is reset and what is unwritten is
  // dropped (counted in ServerStats::closes_without_flush). Default 1000;
  // at least 1.
  int close_linger_ms = 1000;
  // SO_SNDBUF / SO_RCVBUF of every accepted connection, in bytes, set on the
  // listening socket before listen() so that connections inherit them (and
  // the receive window is scaled to match). Linux doubles the value for its
  // own bookkeeping and raises it to its minimum (4608 / 2304 bytes), so 1
  // asks for the smallest buffers: every large write is then partial.
  // Default 0: the kernel's defaults and auto-tuning (as brpc and gRPC).
  int socket_send_buffer_bytes = 0;
  int socket_receive_buffer_bytes = 0;
  // HTTP/1.1 on the same port (a connection whose first bytes are a request
  // line): the largest request line + header fields accepted, in bytes; a
  // larger one is answered 431 and its connection closed. Bodies follow
  // max_body_bytes (413 past it); every other limit above applies too.
  // Default 16 KiB; clamped to [1 KiB, 1 MiB].
  size_t max_http_header_bytes = 16 * 1024;
  // Worker processes for kProcessPool methods (started only when a method
  // uses that mode). Default 0: one per core; at most 256 (each is a process
  // and holds two of the server's descriptors).
  int process_workers = 0;
  // Calls waiting for a worker process beyond the workers free at the
  // moment, at most; past it a call is answered 2004 at once. Default 1024;
  // at least 1.
  size_t process_queue_capacity = 1024;
  // Each worker process's address-space limit (RLIMIT_AS), in bytes; an
  // allocation past it fails (std::bad_alloc, answered 2001, and the worker
  // is replaced) or crashes the worker (2001). Default 0: none. Sanitizer
  // builds reserve terabytes of address space: leave it 0 there.
  size_t process_memory_limit_bytes = 0;
  // Runs in each new worker process before it takes calls (e.g. to open a
  // per-process resource or drop privileges). A worker that dies in it
  // "crashed at start": replacements then back off from 10 ms to 1 s, and
  // while no worker is alive, process-pool calls are answered 2001.
  std::function<void()> process_worker_start = nullptr;

  // --- Call authentication (docs/SECURITY.md). ---
  // Set: every connection must prove who it is before it is served (brpc's
  // ServerOptions::auth). On baidu_std, the first request of a connection
  // carries the credential (RpcMeta.authentication_data), verified once by
  // `authenticator->VerifyCredential`; the AuthContext it fills is the
  // connection's, seen by every handler (ServerController::auth_context()).
  // A request that fails is answered 1004 (ERPCAUTH) "authentication
  // failed: <reason>", the requests read behind it on its connection are
  // answered 1004 too, and the connection is closed (CloseReason
  // kUnauthenticated); each failure is counted
  // (ServerStats::authentication_failures) and logged with the peer's
  // address, rate-limited, never with the credential. On HTTP, every request
  // carries "Authorization: Bearer <credential>" (RFC 6750); one that fails
  // is answered 401 with WWW-Authenticate and its connection closed.
  // Default: null, every peer is served.
  std::shared_ptr<const Authenticator> authenticator = nullptr;
  // With an authenticator: every request must carry the credential and each
  // is verified (not only a connection's first), for credentials that may
  // be revoked while a connection lives; clients set
  // ChannelOptions::credential_on_every_call. Default false (brpc's rule:
  // once per connection).
  bool authenticate_every_call = false;
  // With an authenticator: the built-in pages /status and /metrics are
  // served without a credential too (for a scraper inside a trusted
  // network). /health is always open (load balancers and orchestrators
  // probe it). Default false.
  bool open_builtin_pages = false;

  // --- TLS (docs/SECURITY.md, "TLS"). ---
  // Set: connections whose first byte opens a TLS handshake record (0x16, a
  // ClientHello) are served inside TLS on the same port, as brpc does:
  // baidu_std and HTTP alike. Needs
  // certificate_file and private_key_file; verify_client asks for a client
  // certificate (mutual TLS) and refuses a client without a valid one, and
  // handlers read its subject (ServerController::peer_certificate_subject()).
  // TLS 1.2 or 1.3 (OpenSSL's defaults otherwise). Start() fails with the
  // file and OpenSSL's reason when a file cannot be used. Each TLS
  // connection holds up to about 100 KiB more (Asio's and OpenSSL's record
  // buffers; less while idle). A failed
  // handshake is counted (ServerStats::tls_handshake_failures) and logged,
  // rate-limited. Default: none, clear text only.
  std::optional<TlsOptions> tls{};
  // With tls: clear-text connections are refused (closed at their first
  // byte, counted in ServerStats::clear_text_refused). Default false: both,
  // unless tls->verify_client: a server that requires client certificates
  // refuses clear text, which has none.
  bool tls_required = false;
};

// The server container: hosts protobuf Services on one TCP port.
// One acceptor hands accepted connections round-robin to the I/O threads;
// each connection lives on one I/O thread, which decodes its requests, runs
// inline handlers and writes its replies, many per gathered write.
//
// Owns: its I/O threads, worker pool, acceptor and connections, and the
// services passed by unique_ptr. Does not own services passed by pointer:
// they must outlive the Server.
// Threads: AddService before Start, from one thread; Start and the
// destructor from one control thread (not from a handler); Stop from any
// thread but a handler's; RunUntilAskedToQuit and Wait as they say;
// stats(), port() and AddConnection() from any thread.
//
// A handler must run its `done` exactly once (percore::ClosureGuard does it
// on every path) and never delete it: it belongs to the server. A `done`
// never run leaves its call unanswered: the client waits for its deadline,
// the call holds one of its connection's max_inflight_per_connection places,
// and Stop() waits its whole grace, then answers it 2003. An exception that
// escapes a handler is caught and the call answered 2001 (counted in
// ServerStats::handler_exceptions); a handler that has handed `done` to
// another thread must not throw afterwards (the call would be answered
// twice).
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
  // Idempotent; a call while another thread stops the server returns once
  // that stop has completed. Any thread but a handler's (it would wait for
  // itself; checked on the I/O threads).
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Blocks until the process receives SIGINT or SIGTERM (brpc's
  // RunUntilAskedToQuit), then returns the signal's number, leaving the
  // server running so that the caller can deregister it, then Stop().
  // Returns 0 instead if Stop() is called first (by another thread), or at
  // once if the server is not running (never started, Start() failed).
  //
  // It installs, once per process, handlers for SIGINT and SIGTERM that only
  // record the signal (a self-pipe); they stay installed, so a signal while
  // Stop() runs no longer kills the process. A signal received before the
  // handlers are installed gets its default action (the process ends): to
  // also catch those, block SIGINT and SIGTERM (pthread_sigmask) in main
  // before any thread starts, before Start(); RunUntilAskedToQuit unblocks
  // them in its own thread only, so a pending one is taken at once and other
  // threads never see them. Once a signal was received, every call returns
  // at once (as brpc's IsAskedToQuit stays true).
  // Threads: the control thread (or any thread but a handler's), after
  // Start() succeeded, one thread at a time per process.
  int RunUntilAskedToQuit();

  // Blocks until Stop() has completed (gRPC's Server::Wait); returns at once
  // if the server never started or has stopped. Threads: any thread but a
  // handler's and the one that will call Stop(); the Server must outlive
  // the return (do not destroy it while another thread waits).
  void Wait();

  // Serves an already connected stream socket (a TCP connection accepted
  // elsewhere, or one end of a socketpair(AF_UNIX, SOCK_STREAM)) exactly as
  // an accepted one: same limits, counters and close rules. Takes ownership
  // of `fd` in every case. Returns false (and closes `fd`) if the server is
  // not running or max_connections is reached. Any thread.
  bool AddConnection(int fd);

  // The bound port, once started.
  int port() const { return port_; }
  ServerStats stats() const;

 private:
  // Asserts that the caller is not one of the server's I/O threads.
  void assert_not_in_io_thread() const;
  // ServerOptions::tls: makes the shared TLS context (false, with the file
  // and OpenSSL's reason in *error, when it cannot).
  bool make_tls_context(std::string* error);

  std::unique_ptr<detail::ServerCore> core_;
  std::vector<std::unique_ptr<detail::IoThread>> io_threads_;
  std::unique_ptr<detail::Acceptor> acceptor_;
  int port_ = 0;
  std::atomic<size_t> next_added_connection_{0};  // AddConnection's round robin.
  // started_ and stopped_ change under lifecycle_mutex_, held for all of
  // Start() and Stop(); stop_done_ signals Wait().
  mutable std::mutex lifecycle_mutex_;
  std::condition_variable stop_done_;
  bool started_ = false;
  bool stopped_ = false;
  // Written when Stop() begins, to end RunUntilAskedToQuit(); -1 until it
  // is first called (created then, under lifecycle_mutex_).
  int stop_event_fd_ = -1;
};

}  // namespace percore
