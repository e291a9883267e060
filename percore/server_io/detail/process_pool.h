#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/peer_message.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/server_io/detail/asio.h>
#include <percore/server_io/detail/zygote.h>

namespace percore::detail {

class ServerCall;
struct MethodEntry;
struct ServerCore;

// Runs kProcessPool methods in worker processes forked from a zygote
// (Zygote), so that a handler that crashes, loops or exhausts its memory
// takes down one worker, not the server. One thread of its own (an
// io_context) owns every worker: it hands a call to an idle worker as a
// baidu_std frame over the worker's socket (WorkerProcess serves it), reads
// the answer back into the call and completes it, and replaces workers:
//
//   worker states (transition() keeps the counts):
//     kStarting --ready byte--> kIdle --call--> kBusy --answer--> kIdle
//     kBusy --answer that accepted the call's stream--> kStreaming
//       --the stream ends (either side, the connection, Stop)--> kKilled
//       (replaced: threads its handler left running go with it)
//     kBusy --max_run_ms or deadline: SIGKILL, call answered 1008--> kKilled
//     any --exit reported by the zygote and its socket closed (or one of
//       them and 200 ms)--> kDead (a busy call is answered 2001 "worker
//       process died: SIGSEGV"); a replacement is spawned, at once, or with
//       back-off (10 ms doubling to 1 s) while workers die before they
//       are ready, or idle within 1 s of it without a call ("crash at
//       start"; a crash while running a call is the call's); while no worker is alive and
//       the back-off runs, calls are answered 2001 at once.
//
// Calls wait in a bounded queue (ServerOptions::process_queue_capacity
// beyond the workers free at the moment; past it 2004). A queued call whose deadline passes is answered 1008
// without running (a timer at the earliest queued deadline); while it runs,
// a timer at its deadline, or max_run_ms after its worker has the request,
// kills the worker.
//
// Streams (a handler in a worker accepted the call's stream): the stream's
// end, window and handler live in the worker; on the client's connection a
// relay (StreamCore::make_relay) under the id the pool offered the worker
// (StreamSettings.extra_stream_ids[0] of the internal request) passes the
// client's frames to the worker and the worker's to the client, unchanged:
// flow control is the worker's and the client's, end to end, so the pool
// and the connection hold at most a window of each. A streaming worker takes
// no other call until its stream ends, and is then replaced (SIGKILL and a
// respawn: a handler thread that ignores the end cannot outlive it); a
// worker that dies mid-stream resets it (the client's end: kResetByPeer); a
// relay that ends on the server's side (connection broken, Stop) resets the
// worker's end. A client that writes past the worker's window (window + one
// message waiting here) has its stream reset (stream_window_overruns).
//
// Owns: the zygote, the workers' sockets and pidfds, the queued calls until
// they are answered, its thread. Threads: start_zygote(), start() and
// shutdown() on the control thread; try_submit() from any thread; the
// gauges from any thread; everything else on the pool's thread (checked).
class ProcessPool {
 public:
  explicit ProcessPool(ServerCore& core);
  ~ProcessPool();
  ProcessPool(const ProcessPool&) = delete;
  ProcessPool& operator=(const ProcessPool&) = delete;

  // Forks the zygote: Server::Start(), before any thread of the server exists.
  bool start_zygote(std::string* error);
  // Starts the pool's thread and asks for the workers.
  void start();
  // Queues `call` (tracked by its I/O thread); false when
  // process_queue_capacity calls already wait, or the pool has shut down.
  bool try_submit(ServerCall* call);
  // Stop has begun (control thread): each stream in a worker is closed, as
  // its connection would close it at the end of Stop's wait, so that calls
  // queued behind streaming workers run within the wait instead of waiting
  // it out.
  void close_streams_for_stop();
  // Answers queued and running calls 2003, kills every worker, stops and
  // reaps the zygote (which reaps the workers), joins the thread. Idempotent.
  void shutdown();

  // Gauges and counters, any thread.
  size_t queued() const { return queued_.load(std::memory_order_relaxed); }
  size_t workers_alive() const { return alive_.load(std::memory_order_relaxed); }
  uint64_t respawns() const { return respawns_.load(std::memory_order_relaxed); }
  uint64_t crashes() const { return crashes_.load(std::memory_order_relaxed); }
  uint64_t kills() const { return kills_.load(std::memory_order_relaxed); }
  int target_workers() const { return target_workers_; }

 private:
  using Clock = std::chrono::steady_clock;
  enum class State { kStarting, kIdle, kBusy, kStreaming, kKilled, kDead };
  class StreamRelay;
  struct Worker {
    Worker(boost::asio::io_context& context, const FrameDecoderOptions& options)
        : socket(context), timer(context), decoder(options) {}
    pid_t pid = 0;
    int pidfd = -1;
    State state = State::kStarting;
    // A socket, not a descriptor: writes use MSG_NOSIGNAL, so a worker that
    // died under a write is an error here, never SIGPIPE for the server.
    boost::asio::local::stream_protocol::socket socket;
    boost::asio::steady_timer timer;
    FrameDecoder decoder;
    std::string output;          // Bytes being written (a request, stream frames).
    std::string write_queue;     // Bytes to write after them.
    bool writing = false;
    // The request of call `correlation_id` is in output or write_queue:
    // max_run_ms starts when it is written.
    bool request_unwritten = false;
    // kStreaming: the relay of the stream its call accepted.
    std::shared_ptr<StreamCore> relay;
    std::shared_ptr<StreamRelay> relay_target;
    // kBusy: the id offered for the call's stream (kInvalidStreamId: none).
    StreamId offered_stream_id = kInvalidStreamId;
    MethodEntry* streaming_method = nullptr;  // kStreaming: whose stream.
    uint64_t stream_window = 0;  // kStreaming: the worker's end's max_buf_size.
    ServerCall* call = nullptr;  // kBusy, kKilled: the call it runs.
    int64_t correlation_id = 0;  // Of the call it runs.
    uint64_t answered = 0;       // Calls it answered.
    Clock::time_point ready_at{};
    bool reading = false;
    // Death takes two events, in either order: the zygote's exit report
    // and the end of the worker's socket (after its last answer).
    bool exited = false;
    bool end_of_stream = false;
    int exit_status = 0;
  };
  using WorkerList = std::list<std::shared_ptr<Worker>>;

  void assert_in_pool_thread() const;
  void transition(Worker& worker, State next);
  void on_zygote_readable();
  void watch_zygote();
  void add_worker(const Zygote::Message& spawned);
  void on_worker_exited(pid_t pid, int status);
  void on_end_of_stream(const std::shared_ptr<Worker>& worker);
  void finish_exit(const std::shared_ptr<Worker>& worker);
  void read_worker(const std::shared_ptr<Worker>& worker);
  void on_worker_bytes(Worker& worker);
  void answer_from_worker(Worker& worker, const Frame& frame);
  // A stream frame the worker wrote: passed to its stream's client.
  void on_worker_stream_frame(Worker& worker, const StreamFrame& frame);
  // Appends `bytes` to what is written to the worker's socket.
  void write_to_worker(const std::shared_ptr<Worker>& worker, std::string_view bytes);
  void start_write(const std::shared_ptr<Worker>& worker);
  // The relay `target` ended for `reason` (StreamRelay, posted here).
  void on_relay_end(const std::shared_ptr<StreamRelay>& target, StreamEndReason reason);
  // A frame the client sent to a relayed stream (StreamRelay, posted here).
  void relay_to_worker(const std::shared_ptr<StreamRelay>& target, std::string frame);
  // The worker's stream is over: it takes calls again.
  void end_streaming(Worker& worker);
  WorkerList::iterator find_relay_worker(const std::shared_ptr<StreamRelay>& target);
  void dispatch();
  void begin_call(const std::shared_ptr<Worker>& worker, ServerCall* call);
  // Kills the worker past `limit` unless it answered call `correlation_id`.
  void arm_run_timer(const std::shared_ptr<Worker>& worker, Clock::time_point limit,
                     int64_t correlation_id);
  void arm_queue_timer(Clock::time_point deadline);
  void expire_queued_calls();
  void pump_spawns();
  void on_overrun(Worker& worker);
  void kill_worker(Worker& worker);
  void complete(ServerCall* call, int32_t code, std::string text);
  void spawn_replacement(bool crashed_at_start);
  void fail_queue_while_backing_off();
  void stop_in_thread();
  // Answers every worker's call `code` and `text`, kills the workers and
  // forgets them (stopping, or the zygote gone).
  void discard_workers(int32_t code, const std::string& text);
  WorkerList::iterator find_worker(pid_t pid);

  ServerCore& core_;
  const int target_workers_;
  Zygote zygote_;
  boost::asio::io_context context_{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_guard_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  std::unique_ptr<boost::asio::posix::stream_descriptor> zygote_events_;

  // Relays post the client's frames and their end here until shutdown().
  std::shared_ptr<CarrierGate> relay_gate_ = std::make_shared<CarrierGate>();
  // try_submit() and shutdown(): no call is posted once closed.
  std::mutex submit_mutex_;
  bool open_ = false;
  std::atomic<size_t> queued_{0};

  // --- pool thread ---
  WorkerList workers_;
  std::deque<ServerCall*> queue_;
  int spawns_pending_ = 0;  // Asked of the zygote, not yet answered.
  int spawns_wanted_ = 0;   // To ask for (pump_spawns()).
  int starts_failed_in_a_row_ = 0;
  int respawns_waiting_ = 0;  // Replacements held back by the back-off.
  bool backing_off_ = false;
  Clock::time_point backoff_until_{};
  boost::asio::steady_timer backoff_timer_{context_};
  // At the earliest deadline of the queued calls.
  boost::asio::steady_timer queue_timer_{context_};
  bool queue_timer_armed_ = false;
  Clock::time_point queue_timer_at_{};
  bool zygote_gone_ = false;
  bool stopping_ = false;
  // Stop has begun: a stream a worker accepts from now on is closed at once.
  bool closing_streams_ = false;
  PeerMessageParser response_parser_;

  std::atomic<size_t> alive_{0};
  std::atomic<size_t> busy_{0};
  std::atomic<uint64_t> respawns_{0};
  std::atomic<uint64_t> crashes_{0};
  std::atomic<uint64_t> kills_{0};
};

}  // namespace percore::detail
