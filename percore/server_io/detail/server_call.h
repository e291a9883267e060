#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/stubs/callback.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <percore/server_io/server_controller.h>

namespace percore::wire {
class RpcRequestMeta;
}

namespace percore::detail {

class IoThread;
class StreamCore;
struct MethodEntry;

// One request being served: its messages, controller and routing back to the
// connection. It is the `done` closure handed to the handler.
//
// Owned by its I/O thread's in-flight list from dispatch until the I/O
// thread has seen done->Run(), then recycled into that thread's pool for its
// method (messages and controller keep their memory: no allocation per call
// once warm); refers to its connection by id, never by pointer, since the
// connection may close first.
// Threads: created and deleted on its I/O thread; execute() on the thread
// that runs the handler; Run() (done) from any thread.
class ServerCall final : public google::protobuf::Closure {
 public:
  using Clock = std::chrono::steady_clock;

  ServerCall(IoThread& io_thread, MethodEntry& method);

  // Starts a new call in this (new or recycled) object.
  void begin(uint64_t connection_id, int64_t correlation_id, Clock::time_point received_at);

  // Prepares the controller from the request's meta (log id, trace,
  // deadline); `message_bytes` is the request message's size on the wire.
  // `auth_context`: the connection's (null without an authenticator).
  void set_request_context(const std::string& remote_side,
                           std::shared_ptr<const AuthContext> auth_context,
                           const wire::RpcRequestMeta& meta, std::string_view attachment,
                           size_t message_bytes);
  // mTLS: the subject of the client's certificate (the connection's).
  void set_peer_certificate_subject(std::shared_ptr<const std::string> subject) {
    controller_.peer_certificate_subject_ = std::move(subject);
  }

  // The request carried StreamSettings: the client attached stream
  // `remote_id`. `supported`: the handler may accept it (the connection
  // has room for a stream). I/O thread, before the call runs.
  void set_remote_stream(int64_t remote_id, bool remote_needs_feedback, bool remote_writable,
                         bool supported);
  int64_t remote_stream_id() const { return controller_.remote_stream_id_; }
  bool remote_stream_supported() const { return controller_.streams_supported_; }
  // The process pool: the worker accepted the stream; `relay` carries it.
  // Pool thread, before Run().
  void set_accepted_stream(std::shared_ptr<StreamCore> relay) {
    controller_.accepted_stream_ = std::move(relay);
  }
  bool remote_stream_needs_feedback() const { return controller_.remote_needs_feedback_; }
  bool remote_stream_writable() const { return controller_.remote_writable_; }
  // The stream the handler accepted (null: none); I/O thread, after
  // done->Run().
  std::shared_ptr<StreamCore> take_accepted_stream() {
    return std::move(controller_.accepted_stream_);
  }

  // Parses the request message, decompressing it first when `type` says
  // so (to at most the server's max_body_bytes). False with the reason in
  // *error. On the thread that runs it (I/O thread or worker).
  bool parse_request(std::string_view bytes, CompressType type, std::string* error);
  // Keeps a copy of a compressed request message for execute() to
  // decompress and parse: a worker-pool method's decompression then runs on
  // its worker, not on the I/O thread. I/O thread, before track().
  void defer_request(std::string_view compressed, CompressType type);
  // A compressed request kept by defer_request() (kNone: none): a process
  // pool forwards it as it is, for its worker to decompress. The thread that
  // runs the call.
  CompressType deferred_request_type() const { return deferred_request_type_; }
  std::string_view deferred_request() const { return deferred_request_; }
  // The compressed response message Run() prepared (empty: none); I/O
  // thread, after done->Run().
  std::string_view compressed_response() const { return compressed_response_; }

  // Runs the handler, unless the call was abandoned by Stop() or its deadline
  // passed while it waited (then it is answered 1008 without running).
  void execute();

  // done->Run(): the handler has finished; hands the call back to its I/O
  // thread for the reply. Any thread, exactly once. A response the handler
  // asked to compress is serialized and compressed here, on the handler's
  // thread (a worker's, for a worker-pool method).
  void Run() override;

  IoThread& io_thread() const { return io_thread_; }
  uint64_t connection_id() const { return connection_id_; }
  int64_t correlation_id() const { return correlation_id_; }
  MethodEntry& method() const { return method_; }
  Clock::time_point received_at() const { return received_at_; }
  google::protobuf::Message* request() const { return request_.get(); }
  google::protobuf::Message* response() const { return response_.get(); }
  ServerController& controller() { return controller_; }
  // Hands the response over to an answer that references its large fields
  // instead of copying them, to be kept alive (and unchanged) until written;
  // response() is null afterwards, and the call is freed rather than pooled.
  // I/O thread, after done->Run().
  std::shared_ptr<const google::protobuf::Message> lend_response();
  google::protobuf::Closure* take_end_callback();

  // Calls whose request, attachment or answer were larger than this are
  // freed after use instead of pooled: a pooled call keeps the capacity of
  // its strings (Clear() does not free them).
  static constexpr size_t kMaxPooledBytes = 4096;
  // Whether the call held data too large to keep in the pool.
  bool held_large_data() const { return large_; }
  // The answer's size, or anything else the call's strings may have grown to.
  void note_answer_bytes(size_t bytes) { large_ = large_ || bytes > kMaxPooledBytes; }

  // Set by Stop() once the call has been answered 2003 on its behalf; its
  // handler's late reply is then dropped.
  std::atomic<bool> abandoned{false};
  // Set when its handler starts (on a worker thread, or in a worker
  // process); read by Stop() to tell a call that never ran (safe to retry).
  std::atomic<bool> handler_started{false};

  // Links of the I/O thread's in-flight list; that thread only.
  ServerCall* previous_in_flight = nullptr;
  ServerCall* next_in_flight = nullptr;

 private:
  // Set by Run(): a second Run of an answered call is a handler's bug.
  std::atomic<bool> done_ran_{false};
  IoThread& io_thread_;
  uint64_t connection_id_ = 0;
  int64_t correlation_id_ = 0;
  MethodEntry& method_;
  Clock::time_point received_at_;
  bool large_ = false;
  // A compressed request waiting for execute() (kNone: none).
  CompressType deferred_request_type_ = CompressType::kNone;
  std::string deferred_request_;
  std::string compressed_response_;
  std::unique_ptr<google::protobuf::Message> request_;
  std::unique_ptr<google::protobuf::Message> response_;
  ServerController controller_;
};

}  // namespace percore::detail
