#include "echo_service.h"

#include <deque>
#include <mutex>

#include <percore/base/log.h>
#include <percore/server_io/server_controller.h>

namespace percore::examples {
namespace {

// Streams closed by the echo handler, a line a second at most.
LogRateLimiter& echo_close_log() {
  static LogRateLimiter limiter;
  return limiter;
}

// Echoes every message of a stream back on it, in order. What the window
// does not take at once waits here (up to kMaxBacklogBytes) and goes on
// on_writable; a peer that writes but never reads its echoes past that bound
// has its stream closed, and so does one that said it takes no messages
// (writable false). So a stream costs the server at most its window (2 MiB)
// plus this backlog plus one message. The bound is well past both windows
// (the peer's input and this side's output) so that a peer that does read,
// only later than it writes (a burst of large messages), is echoed whole.
class StreamEchoHandler final : public StreamHandler {
 public:
  static constexpr size_t kMaxBacklogBytes = 8u << 20;

  void on_received_messages(Stream& stream, std::span<std::string> messages) override {
    std::lock_guard lock(mutex_);
    for (std::string& message : messages) {
      backlog_bytes_ += message.size();
      backlog_.push_back(std::move(message));
    }
    drain(stream);
    if (backlog_bytes_ > kMaxBacklogBytes) {
      echo_close_log().log(LogLevel::kWarning, [&] {
        return "stream echo: the peer does not read its echoes; closing stream " +
               std::to_string(stream.id());
      });
      backlog_.clear();
      backlog_bytes_ = 0;
      stream.Close();
    }
  }
  void on_writable(Stream& stream) override {
    std::lock_guard lock(mutex_);
    drain(stream);
  }
  void on_closed(Stream&, StreamEndReason) override {}

 private:
  void drain(Stream& stream) {
    while (!backlog_.empty()) {
      const size_t bytes = backlog_.front().size();
      const StreamWriteStatus status = stream.Write(std::move(backlog_.front()));
      if (status == StreamWriteStatus::kFull)
        return;  // Write leaves the message alone when it says kFull.
      if (status != StreamWriteStatus::kOk) {
        // Ended, or a peer that takes no messages: nothing can be echoed.
        if (status == StreamWriteStatus::kPeerNotWritable) {
          echo_close_log().log(LogLevel::kWarning, [&] {
            return "stream echo: the peer takes no messages (writable false); closing stream " +
                   std::to_string(stream.id());
          });
        }
        backlog_.clear();
        backlog_bytes_ = 0;
        stream.Close();
        return;
      }
      backlog_.pop_front();
      backlog_bytes_ -= bytes;
    }
  }

  std::mutex mutex_;
  std::deque<std::string> backlog_;
  size_t backlog_bytes_ = 0;
};

}  // namespace

void EchoServiceImpl::Echo(google::protobuf::RpcController* controller,
                           const example::EchoRequest* request, example::EchoResponse* response,
                           google::protobuf::Closure* done) {
  auto* server_controller = static_cast<ServerController*>(controller);
  if (server_controller->has_remote_stream()) {
    // As brpc's streaming echo server: the stream attached to the call is
    // accepted, and here every message on it is echoed back.
    StreamOptions options;
    options.handler = std::make_shared<StreamEchoHandler>();
    std::shared_ptr<Stream> stream;
    server_controller->AcceptStream(options, &stream);
  }
  response->set_message(request->message());
  // A move, not a copy: the request attachment is not needed any more.
  server_controller->response_attachment() = std::move(server_controller->request_attachment());
  done->Run();
}

}  // namespace percore::examples
