#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <percore/base/detail/gate.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/proto/rpc_meta.pb.h>
#include <percore/server_io/detail/asio.h>
#include <percore/server_io/detail/server_socket.h>
#include <percore/server_io/detail/server_call.h>
#include <percore/server_io/server_stats.h>

namespace percore::detail {

class HttpConnection;
class ServerConnection;
class WebSocketSession;
class CarrierGate;
class StreamCore;
struct ServerCore;
struct MethodEntry;

// One I/O thread of the server: an io_context run by one std::thread, the
// connections assigned to it, and the calls those connections dispatched.
// A sweep timer, armed while the thread has connections, applies their
// timeouts (ServerConnection::check_timeouts) every
// ServerCore::sweep_interval().
//
// Owns: its thread, io_context, connections (by id), in-flight calls, the
// read-block pool its connections' decoders share, and the sweep timer.
// Threads: adopt() and finish_call() from any thread (they post); start() and
// join() from the control thread; every other method on this I/O thread only
// (checked with assert_in_loop_thread()).
class IoThread {
 public:
  IoThread(ServerCore& core, int index);
  ~IoThread();
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;

  void start();
  // Lets run() return once no work is left, and joins. Control thread.
  void join();

  boost::asio::io_context& context() { return context_; }
  ServerCore& core() const { return core_; }
  bool in_loop_thread() const { return std::this_thread::get_id() == thread_id_.load(); }
  void assert_in_loop_thread() const;

  // Any thread: takes over an accepted socket (created on this context).
  void adopt(boost::asio::ip::tcp::socket socket);
  // Any thread: a handler finished (done->Run()).
  void finish_call(ServerCall* call);

  // --- I/O thread only ---
  // A call object for `method`, from this thread's pool when it has one.
  ServerCall* acquire_call(MethodEntry& method, uint64_t connection_id, int64_t correlation_id,
                           ServerCall::Clock::time_point received_at);
  // Gives a finished (or never dispatched) call back to the pool.
  void recycle(ServerCall* call);
  // Registers a dispatched call in the in-flight list.
  void track(ServerCall* call);
  // Tracks a parsed call and runs it: inline, or on the worker pool (2004 at
  // once when its queue is full). The call is owned by the in-flight list.
  void run_call(ServerCall* call);
  // Counts an answer (the method's counters and the server's) and its
  // latency from `received_at`.
  void count_answer(MethodEntry* method, int32_t code, ServerCall::Clock::time_point received_at);
  // A connection that turned out to speak HTTP: serves it under the same id,
  // starting with the bytes already read.
  void adopt_http(uint64_t connection_id, ServerSocket socket,
                  const std::string& peer, std::string_view received);
  void remove_http_connection(uint64_t connection_id);
  // An HTTP connection upgraded to a WebSocket (GET /ws/...): the session
  // takes its place under the same id and starts.
  void add_web_socket(std::shared_ptr<WebSocketSession> session);
  void remove_web_socket(uint64_t connection_id);
  // Encodes an answer into the connection's output and counts it (the
  // connection writes it at the end of the current event). A non-OK code
  // sends `text` (cut to 1 KiB) and no message. An OK answer with a
  // `compress_type` other than kNone sends `compressed_response` (the
  // response, serialized and compressed by ServerCall::Run()) as its message
  // and writes compress_type in the meta. Returns the bytes encoded.
  // `response_of`: the call `response` belongs to, which lends it when it is
  // large enough to be referenced rather than copied (kReferenceMessagesFrom).
  //
  // A call whose request carried StreamSettings (`stream`, remote_id set) is
  // answered as brpc answers it (baidu_rpc_protocol.cpp, SendRpcResponse):
  // the whole answer frame travels as the data of a DATA frame to the
  // client's stream, from our accepted stream's id (or -1), and an OK
  // answer with an accepted stream carries our StreamSettings; the stream is
  // then added to the connection. An accepted stream of a failed call ends
  // kNotAccepted.
  struct StreamReply {
    int64_t remote_id = -1;
    bool remote_needs_feedback = false;
    std::shared_ptr<StreamCore> accepted;
    bool dispatched = false;  // A dispatched call's (counted by its connection).
    bool remote_writable = true;
  };
  size_t answer(ServerConnection& connection, int64_t correlation_id, MethodEntry* method,
                int32_t code, const std::string& text, const google::protobuf::Message* response,
                std::string&& attachment, ServerCall::Clock::time_point received_at,
                CompressType compress_type = CompressType::kNone,
                std::string_view compressed_response = {}, StreamReply* stream = nullptr,
                ServerCall* response_of = nullptr);
  // Open while this thread exists: stream carriers post through it.
  const std::shared_ptr<CarrierGate>& stream_gate() const { return stream_gate_; }
  // A stream of `connection_id` has frames queued (StreamCarrier::wake).
  void flush_stream(uint64_t connection_id, const std::shared_ptr<StreamCore>& stream);
  // Counts an answer that could not be sent (its connection is gone).
  void count_dropped(MethodEntry* method, int32_t code, ServerCall::Clock::time_point received_at);
  // Forgets a closed connection at the end of this loop pass.
  void remove_connection(uint64_t connection_id);
  // Stop(): answers every in-flight call 2003 and marks it abandoned.
  void abandon_in_flight_calls();
  // Stop(): every connection stops reading, answers what it read (2003 for
  // requests not yet dispatched), flushes and closes.
  void begin_close_connections(CloseReason reason);
  // Stop(), past the linger: resets every connection still open.
  void abort_connections();
  // The read buffers of this thread's decoders.
  ReadBlockPool& read_blocks() { return read_blocks_; }

 private:
  void complete_call(ServerCall* call);
  // Wraps the answer encoded in stream_reply_ in a DATA frame to the
  // client's stream, and adds (or ends) the accepted stream.
  void wrap_stream_reply(ServerConnection& connection, bool ok, StreamReply& stream);
  void untrack(ServerCall* call);
  void arm_sweep();
  void sweep();
  std::shared_ptr<ServerConnection> find_connection(uint64_t connection_id) const;
  std::shared_ptr<HttpConnection> find_http_connection(uint64_t connection_id) const;
  std::shared_ptr<WebSocketSession> find_web_socket(uint64_t connection_id) const;

  ServerCore& core_;
  const int index_;
  // Before context_: pending handlers destroyed with the context may hold
  // connections whose decoders use it.
  ReadBlockPool read_blocks_;
  boost::asio::io_context context_{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_guard_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};
  boost::asio::steady_timer sweep_timer_{context_};
  bool sweep_armed_ = false;
  bool joining_ = false;  // Set by join(): the sweep is not re-armed.

  std::unordered_map<uint64_t, std::shared_ptr<ServerConnection>> connections_;
  std::unordered_map<uint64_t, std::shared_ptr<HttpConnection>> http_connections_;
  std::unordered_map<uint64_t, std::shared_ptr<WebSocketSession>> web_sockets_;
  uint64_t next_connection_serial_ = 0;
  ServerCall* in_flight_head_ = nullptr;
  GatherBuffer stream_reply_;  // An answer to be wrapped in a DATA frame.
  const std::shared_ptr<CarrierGate> stream_gate_ = std::make_shared<CarrierGate>();
  // Finished calls by MethodEntry::index, ready for reuse.
  std::vector<std::vector<ServerCall*>> call_pool_;
  // Calls of this thread dispatched and not yet answered
  // (ServerCore::unanswered_calls_by_thread[index_]).
  Gate& unanswered_calls_;
};

}  // namespace percore::detail
