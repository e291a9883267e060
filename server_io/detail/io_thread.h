#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proto/rpc_meta.pb.h"
#include "server_io/detail/asio.h"
#include "server_io/detail/server_call.h"

namespace percore::detail {

class ServerConnection;
struct ServerCore;
struct MethodEntry;

// One I/O thread of the server: an io_context run by one std::thread, the
// connections assigned to it, and the calls those connections dispatched.
//
// Owns: its thread, io_context, connections (by id) and in-flight calls.
// Threads: adopt() and finish_call() from any thread (they post); every other
// method on this I/O thread only (checked with assert_in_loop_thread()).
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
  // Encodes an answer into the connection's output and counts it. A non-OK
  // code sends `text` and no message.
  void answer(ServerConnection& connection, int64_t correlation_id, MethodEntry* method,
              int32_t code, const std::string& text, const google::protobuf::Message* response,
              std::string&& attachment, ServerCall::Clock::time_point received_at);
  // Counts an answer that could not be sent (its connection is gone).
  void count_dropped(MethodEntry* method, int32_t code, ServerCall::Clock::time_point received_at);
  // Forgets a closed connection at the end of this loop pass.
  void remove_connection(uint64_t connection_id);
  // Stop(): answers every in-flight call 2003 and marks it abandoned.
  void abandon_in_flight_calls();
  // Stop(): closes every connection, once its queued answers are written
  // (`after_flush`) or at once.
  void close_connections(bool after_flush);
  size_t connection_count() const { return connections_.size(); }

 private:
  void complete_call(ServerCall* call);
  void untrack(ServerCall* call);
  std::shared_ptr<ServerConnection> find_connection(uint64_t connection_id) const;

  ServerCore& core_;
  const int index_;
  boost::asio::io_context context_{1};
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>
      work_guard_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};

  std::unordered_map<uint64_t, std::shared_ptr<ServerConnection>> connections_;
  uint64_t next_connection_serial_ = 0;
  ServerCall* in_flight_head_ = nullptr;
  wire::RpcMeta reply_meta_;  // Reused for every answer.
  // Finished calls by method, ready for reuse.
  std::unordered_map<const MethodEntry*, std::vector<ServerCall*>> call_pool_;
};

}  // namespace percore::detail
