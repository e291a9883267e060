#include <percore/server_io/detail/worker_process.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>

#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/gather_buffer.h>
#include <percore/proto/detail/stream_core.h>
#include <percore/proto/error_code.h>
#include <percore/server_io/detail/service_table.h>
#include <percore/server_io/server_controller.h>

namespace percore::detail {
namespace {

bool write_all(int fd, GatherBuffer& output) {
  while (!output.empty()) {
    iovec vectors[64];
    const int count = output.fill_iovecs(vectors, 64);
    // MSG_NOSIGNAL: a server that is gone ends the worker by EPIPE here,
    // not by SIGPIPE.
    msghdr message{};
    message.msg_iov = vectors;
    message.msg_iovlen = static_cast<size_t>(count);
    const ssize_t written = ::sendmsg(fd, &message, MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    output.consume(static_cast<size_t>(written));
  }
  return true;
}

// `done` of a call in a worker: the handler may run it on a thread of its own.
class DoneSignal final : public google::protobuf::Closure {
 public:
  void Run() override {
    std::lock_guard lock(mutex_);
    ran_ = true;
    ran_changed_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    ran_changed_.wait(lock, [this] { return ran_; });
  }
  bool ran() {
    std::lock_guard lock(mutex_);
    return ran_;
  }
  void reset() { ran_ = false; }

 private:
  std::mutex mutex_;
  std::condition_variable ran_changed_;
  bool ran_ = false;
};

// Wakes the worker's loop (an eventfd) when its stream has frames to
// write: the handler may write from a thread of its own.
class WorkerStreamCarrier final : public StreamCarrier {
 public:
  explicit WorkerStreamCarrier(int event_fd) : event_fd_(event_fd) {}
  void wake(const std::shared_ptr<StreamCore>&) override {
    const uint64_t one = 1;
    while (::write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
  }

 private:
  const int event_fd_;  // Never closed: the process ends with it.
};

}  // namespace

// A friend of ServerController: fills the fields the server's I/O thread
// fills for a call on a thread.
struct WorkerCall {
  static std::shared_ptr<StreamCore> take_accepted_stream(ServerController& controller) {
    return std::move(controller.accepted_stream_);
  }
  static int64_t remote_stream_id(const ServerController& controller) {
    return controller.remote_stream_id_;
  }
  static bool remote_needs_feedback(const ServerController& controller) {
    return controller.remote_needs_feedback_;
  }
  static bool remote_writable(const ServerController& controller) {
    return controller.remote_writable_;
  }
  static void prepare(ServerController& controller, const Frame& frame, size_t max_body_bytes) {
    controller.Reset();
    // The client's stream, and the id the server relays this side's end
    // under (extra_stream_ids[0]); see ProcessPool.
    if (frame.meta.has_stream_settings() && frame.meta.stream_settings().stream_id() >= 0 &&
        frame.meta.stream_settings().extra_stream_ids_size() > 0) {
      const wire::StreamSettings& settings = frame.meta.stream_settings();
      controller.remote_stream_id_ = settings.stream_id();
      controller.remote_needs_feedback_ = settings.need_feedback();
      controller.remote_writable_ = !settings.has_writable() || settings.writable();
      controller.streams_supported_ = true;
      controller.max_stream_frame_bytes_ = max_body_bytes;
      controller.offered_stream_id_ = settings.extra_stream_ids(0);
    }
    const wire::RpcRequestMeta& meta = frame.meta.request();
    const auto remote = frame.meta.user_fields().find("remote_side");
    if (remote != frame.meta.user_fields().end())
      controller.remote_side_ = remote->second;
    const auto subject = frame.meta.user_fields().find("tls.peer_subject");
    if (subject != frame.meta.user_fields().end())
      controller.peer_certificate_subject_ = std::make_shared<const std::string>(subject->second);
    if (frame.meta.user_fields().contains("auth.user")) {
      // The connection's AuthContext, as the server verified it.
      const auto& fields = frame.meta.user_fields();
      auto auth = std::make_shared<AuthContext>();
      auth->user = fields.at("auth.user");
      auth->group = fields.contains("auth.group") ? fields.at("auth.group") : std::string();
      auth->roles = fields.contains("auth.roles") ? fields.at("auth.roles") : std::string();
      auth->starter = fields.contains("auth.starter") ? fields.at("auth.starter") : std::string();
      auth->is_service = fields.contains("auth.is_service") && fields.at("auth.is_service") == "1";
      controller.auth_context_ = std::move(auth);
    }
    controller.log_id_ = meta.log_id();
    controller.trace_id_ = meta.trace_id();
    controller.span_id_ = meta.span_id();
    controller.parent_span_id_ = meta.parent_span_id();
    if (meta.timeout_ms() > 0) {
      controller.deadline_ =
          ServerController::Clock::now() + std::chrono::milliseconds(meta.timeout_ms());
    }
    controller.request_compress_type_ = static_cast<CompressType>(frame.meta.compress_type());
    controller.request_attachment_.assign(frame.attachment.data(), frame.attachment.size());
  }
};

void WorkerProcess::run(int socket_fd, const ServiceTable& services, size_t max_body_bytes,
                        const std::function<void()>& on_start) {
  // Out of memory anywhere (a limit too small to read a request, say) ends
  // the worker as in a handler.
  try {
    serve(socket_fd, services, max_body_bytes, on_start);
  } catch (const std::bad_alloc&) {
    ::_exit(kOutOfMemoryExit);
  }
}

void WorkerProcess::serve(int socket_fd, const ServiceTable& services, size_t max_body_bytes,
                          const std::function<void()>& on_start) {
  if (on_start)
    on_start();

  // Allowance for the meta on top of the message (names, error text).
  FrameDecoderOptions decoder_options;
  decoder_options.max_body_bytes = max_body_bytes + 64 * 1024;
  decoder_options.accept_stream_frames = true;
  FrameDecoder decoder(decoder_options);
  Frame frame;
  StreamFrame stream_frame;
  // The stream the last call accepted, until it ends: the pool sends this
  // worker no other call meanwhile.
  std::shared_ptr<StreamCore> stream;
  bool stream_input = false;  // on_frame() took DATA not yet delivered.
  const int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0)
    return;
  const auto carrier = std::make_shared<WorkerStreamCarrier>(wake_fd);
  GatherBuffer output;
  ServerController controller;
  DoneSignal done;
  PeerMessageParser parser;
  struct Messages {
    std::unique_ptr<google::protobuf::Message> request;
    std::unique_ptr<google::protobuf::Message> response;
  };
  std::unordered_map<const MethodEntry*, Messages> messages;
  // The first read buffer before the ready byte: a worker that cannot even
  // hold it fails its start, not its first call.
  decoder.prepare(64 * 1024);
  const char ready = 'R';
  if (::write(socket_fd, &ready, 1) != 1)
    return;

  // Delivers the stream's input, writes its frames, forgets it once ended.
  // False when the socket failed.
  const auto flush_stream = [&]() -> bool {
    if (stream == nullptr)
      return true;
    if (stream_input) {
      stream_input = false;
      stream->deliver();
    }
    const std::optional<StreamEndReason> end = stream->take_outbox(output);
    if (!write_all(socket_fd, output))
      return false;
    if (end.has_value())
      stream->end(*end);
    if (stream->ended())
      stream.reset();
    return true;
  };

  for (;;) {
    const DecodeStatus status = decoder.next(frame, stream_frame);
    if (status == DecodeStatus::kStreamFrame) {
      // Frames for a stream that has ended here were in flight: dropped.
      if (stream != nullptr && stream_frame.stream_id() == stream->id()) {
        stream->on_frame(stream_frame);
        stream_input = true;
        if (stream->ended())
          stream.reset();  // CLOSE or RST: its handler was told.
      }
      continue;
    }
    if (status == DecodeStatus::kNeedMore) {
      if (!flush_stream())
        return;
      if (decoder.buffered_bytes() == 0)
        decoder.release();  // A large request's buffer is not kept.
      // With a stream open, its writes (from any thread) and its idle clock
      // wake the loop too.
      pollfd fds[2] = {{socket_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
      const int ready = ::poll(fds, stream != nullptr ? 2 : 1, stream != nullptr ? 100 : -1);
      if (ready < 0 && errno != EINTR)
        return;
      if (ready > 0 && (fds[1].revents & POLLIN) != 0) {
        uint64_t wakes = 0;
        [[maybe_unused]] const ssize_t drained = ::read(wake_fd, &wakes, sizeof(wakes));
      }
      if (stream != nullptr)
        stream->check_idle(StreamCore::Clock::now());
      if (ready <= 0 || (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
        continue;
      const std::span<char> space = decoder.prepare(64 * 1024);
      const ssize_t received = ::read(socket_fd, space.data(), space.size());
      if (received < 0 && errno == EINTR)
        continue;
      if (received <= 0) {
        if (stream != nullptr)
          stream->end(StreamEndReason::kConnectionBroken);
        return;  // The server closed its end.
      }
      decoder.commit(static_cast<size_t>(received));
      continue;
    }
    if (status != DecodeStatus::kFrame || !frame.is_request())
      return;  // Not from our server: end, and be replaced.
    if (stream != nullptr) {
      // The pool sends a call only once the stream ended on its side (a
      // CLOSE or RST it passed on is read before this call).
      stream->end(StreamEndReason::kConnectionBroken);
      stream.reset();
    }

    wire::RpcMeta answer_meta;
    answer_meta.set_correlation_id(frame.meta.correlation_id());
    answer_meta.mutable_response();  // Present even when empty (success).
    const MethodEntry* method = nullptr;
    if (const auto* methods = services.find_service(frame.meta.request().service_name()))
      method = ServiceTable::find_method(*methods, frame.meta.request().method_name());
    int32_t code = 0;
    std::string text;
    std::string response_bytes;
    std::string attachment;
    if (method == nullptr) {
      code = to_int(ErrorCode::kNoMethod);
      text = std::string("no such method in the worker process: ") +
             frame.meta.request().service_name() + "." + frame.meta.request().method_name();
    } else {
      Messages& slot = messages[method];
      if (!slot.request) {
        slot.request.reset(method->request_prototype->New());
        slot.response.reset(method->response_prototype->New());
      }
      slot.response->Clear();
      WorkerCall::prepare(controller, frame, max_body_bytes);
      std::string parse_error;
      const auto type = static_cast<CompressType>(frame.meta.compress_type());
      try {
        if (!parser.parse(frame.message, type, max_body_bytes, *slot.request, &parse_error)) {
          controller.SetFailed(ErrorCode::kBadRequest, std::string("request ") + parse_error);
        } else {
          done.reset();
          method->service->CallMethod(method->method, &controller, slot.request.get(),
                                      slot.response.get(), &done);
          done.wait();
        }
      } catch (const std::bad_alloc&) {
        // Its heap may be unusable: end without answering; the pool answers
        // the call 2001 when it sees this exit status, and replaces it. (An
        // answer first would race with the next call sent to it.)
        ::_exit(kOutOfMemoryExit);
      } catch (const std::exception& error) {
        if (!done.ran())
          controller.SetFailed(ErrorCode::kInternal,
                               std::string("the handler threw: ") + error.what());
      } catch (...) {
        if (!done.ran())
          controller.SetFailed(ErrorCode::kInternal,
                               "the handler threw an exception not derived from std::exception");
      }
      code = controller.ErrorCode();
      text = controller.ErrorText();
      if (code == 0 && !slot.response->IsInitialized()) {
        code = to_int(ErrorCode::kInternal);
        text = std::string("response misses required fields: ") +
               slot.response->InitializationErrorString();
      }
      if (code == 0) {
        const CompressType wanted = controller.response_compress_type();
        if (!serialize_compressed(*slot.response, wanted, response_bytes)) {
          code = to_int(ErrorCode::kBadResponse);
          text = std::string("failed to compress the response as ") +
                 std::string(compress_type_name(static_cast<int32_t>(wanted)));
        } else if (wanted != CompressType::kNone) {
          answer_meta.set_compress_type(static_cast<int32_t>(wanted));
        }
        attachment = std::move(controller.response_attachment());
      }
    }
    std::shared_ptr<StreamCore> accepted = WorkerCall::take_accepted_stream(controller);
    if (code == 0 && accepted != nullptr) {
      wire::StreamSettings* settings = answer_meta.mutable_stream_settings();
      settings->set_stream_id(accepted->id());
      settings->set_need_feedback(accepted->needs_feedback());
      settings->set_writable(true);
      // The pool bounds what it holds for this stream by it.
      (*answer_meta.mutable_user_fields())["stream_max_buf_size"] =
          std::to_string(accepted->max_buf_size());
    }
    if (code != 0) {
      answer_meta.clear_stream_settings();
      answer_meta.clear_compress_type();
      response_bytes.clear();
      attachment.clear();
      answer_meta.mutable_response()->set_error_code(code);
      answer_meta.mutable_response()->set_error_text(text);
    }
    if (encode_frame(answer_meta, response_bytes, std::move(attachment),
                     decoder_options.max_body_bytes, output) != EncodeStatus::kOk) {
      wire::RpcMeta too_large;
      too_large.set_correlation_id(frame.meta.correlation_id());
      too_large.mutable_response()->set_error_code(to_int(ErrorCode::kInternal));
      too_large.mutable_response()->set_error_text(
          std::string("response exceeds max_body_bytes (") + std::to_string(max_body_bytes) +
          ")");
      encode_frame(too_large, std::string_view(), std::string(), decoder_options.max_body_bytes,
                   output);
      code = to_int(ErrorCode::kInternal);
    }
    if (!write_all(socket_fd, output)) {
      if (accepted != nullptr)
        accepted->end(StreamEndReason::kConnectionBroken);
      return;
    }
    if (accepted != nullptr) {
      // The answer went first: the client binds the stream with it.
      if (code != 0 || !accepted->connect(WorkerCall::remote_stream_id(controller),
                                          WorkerCall::remote_needs_feedback(controller),
                                          WorkerCall::remote_writable(controller), carrier)) {
        accepted->end(StreamEndReason::kNotAccepted);
      } else {
        stream = std::move(accepted);
        if (!flush_stream())
          return;
      }
    }
  }
}

}  // namespace percore::detail
