#include <percore/client_proxy/detail/thread_group.h>

#include <percore/proto/detail/stream_core.h>

#include <pthread.h>

#include <climits>
#include <memory>
#include <string>
#include <unordered_map>

#include <percore/client_proxy/controller.h>
#include <percore/client_proxy/detail/channel_route.h>
#include <percore/proto/detail/compression.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/request_meta_encoder.h>
#include <percore/proto/detail/spare_blocks.h>

namespace percore::detail {
namespace {

// Heads at least this large are shared by connection buffers, not copied.
constexpr size_t kShareHeadAbove = 16 * 1024;
// A calling thread keeps its compression buffer between calls up to this.
constexpr size_t kMaxKeptCompressedBytes = 1 << 20;

void name_thread(std::thread& thread, const std::string& name) {
  pthread_setname_np(thread.native_handle(), name.substr(0, 15).c_str());
}

// Which runtime and group the current thread works for, if any.
thread_local const void* current_owner = nullptr;
thread_local int current_group = -1;

}  // namespace

int ThreadGroup::current_group_of(const void* owner) {
  return current_owner == owner ? current_group : -1;
}

void ThreadGroup::enter_thread() const {
  current_owner = owner_;
  current_group = state_.index;
}

ThreadGroup::ThreadGroup(const ClientRuntimeOptions& options, int index, const void* owner)
    : owner_(owner), state_(options, index), send_(state_), receive_(state_, send_) {
  send_.set_receive_thread(receive_);
  // The calls inline callbacks make for a batch of replies are written by
  // one turn after the batch (EventLoop::BatchScope).
  state_.receive_loop.batch_calls_for(state_.send_loop);
  send_thread_ = std::thread([this] {
    enter_thread();
    send_.run();
  });
  receive_thread_ = std::thread([this] {
    enter_thread();
    receive_.run();
  });
  name_thread(send_thread_, "percore-send-" + std::to_string(index));
  name_thread(receive_thread_, "percore-recv-" + std::to_string(index));
  for (int i = 0; i < options.callback_threads; ++i) {
    callback_threads_.emplace_back([this] {
      enter_thread();
      // User code here may block, even on a call it has just made: it
      // wakes the send thread rather than hold the send loop's role.
      EventLoop::never_lend_on_this_thread();
      for (;;) {
        GroupState::QueuedCallback callback;
        state_.callbacks.wait_dequeue(callback);
        if (callback.done == nullptr)
          return;
        state_.run_callback(callback);
      }
    });
    name_thread(callback_threads_.back(), "percore-cb-" + std::to_string(index));
  }
}

ThreadGroup::~ThreadGroup() {
  state_.closing.store(true, std::memory_order_release);
  // Receive first: once it has stopped, only the send thread completes calls,
  // and it may close every socket.
  receive_.post_shutdown();
  receive_thread_.join();
  send_.post_shutdown();
  send_thread_.join();
  for (size_t i = 0; i < callback_threads_.size(); ++i)
    state_.callbacks.enqueue(GroupState::QueuedCallback{});
  for (std::thread& thread : callback_threads_)
    thread.join();
  // Every Channel waited for its own calls before it let go of the runtime.
  PERCORE_ASSERT(state_.table.in_use() == 0);
}

void ThreadGroup::call(ChannelRoute& route, const google::protobuf::MethodDescriptor* method,
                       Controller* controller, const google::protobuf::Message* request,
                       google::protobuf::Message* response, google::protobuf::Closure* done) {
  const CallRecord::Clock::time_point started = CallRecord::Clock::now();
  // Left once the call has ended and `done` has run (synchronous: below).
  route.calls.enter();
  RouteCounters::bump(route.counters.calls_started);
  controller->response_attachment_.clear();
  controller->response_compress_type_ = CompressType::kNone;
  const auto fail = [&](ErrorCode code, std::string text) {
    CallCompleter::fail_unpublished(state_, route, controller, done, started, code,
                                    std::move(text));
    if (done == nullptr)
      route.calls.leave();
  };
  if (route.closing.load(std::memory_order_acquire) ||
      state_.closing.load(std::memory_order_acquire)) {
    fail(ErrorCode::kCanceled, "cancelled: the channel is being destroyed");
    return;
  }
  // One meaning for both fields (brpc's): >= 0 a deadline, -1 none.
  const int timeout_ms = controller->timeout_ms() == Controller::kChannelTimeout
                             ? route.options.timeout_ms
                             : controller->timeout_ms();
  if (timeout_ms == 0) {
    fail(ErrorCode::kTimedOut,
         "timed out: timeout_ms is 0 (or the deadline the call inherited had passed)");
    return;
  }
  if (done == nullptr && EventLoop::in_any_loop_thread()) {
    // An inline callback on a send or receive thread: on this group's, the
    // reply could only be read (or the deadline fired) by the thread that
    // would wait for it; on another group's, every call of that group would
    // stall behind it. Fail now rather than after the whole deadline.
    fail(ErrorCode::kDeadlock,
         std::string(state_.receive_loop.in_loop_thread() || state_.send_loop.in_loop_thread()
                         ? "a synchronous call from an inline callback would wait for its own "
                           "I/O thread"
                         : "a synchronous call from a percore client I/O thread (an inline "
                           "callback) would block that thread") +
             " (EDEADLK): call asynchronously, or use CompletionMode::kQueuedCallback");
    return;
  }
  const std::optional<CallTable::Slot> slot = state_.table.acquire();
  if (!slot) {
    fail(ErrorCode::kOvercrowded,
         "overcrowded: " + std::to_string(state_.options.max_inflight_per_group) +
             " calls already in flight in this group (max_inflight_per_group)");
    return;
  }

  CallRecord& record = state_.records[slot->index];
  CallRecord::Call& call = record.call;
  call.controller = controller;
  call.response = response;
  call.done = done;
  call.route = &route;
  call.completion = route.options.completion;
  call.started_at = started;
  call.deadline = timeout_ms > 0 ? started + std::chrono::milliseconds(timeout_ms)
                                 : CallRecord::Clock::time_point::max();
  call.max_retry =
      controller->max_retry() >= 0 ? controller->max_retry() : route.options.max_retry;
  call.max_resends = route.options.max_resends;
  // A stream belongs to the connection its response comes on: its call is
  // never sent again.
  const std::shared_ptr<StreamCore>& stream = controller->stream_;
  if (stream != nullptr) {
    call.max_retry = 0;
    call.max_resends = 0;
  }
  record.resends.store(0, std::memory_order_relaxed);
  record.finished.store(0, std::memory_order_relaxed);
  record.queued_on.store(0, std::memory_order_relaxed);
  record.sweep_route.store(&route, std::memory_order_relaxed);

  // Serialize here, on the calling thread: callers work in parallel, and the
  // send thread only copies bytes.
  // The service and method part of the meta is encoded once per method and
  // calling thread; only the per-call fields are written each time.
  thread_local std::unordered_map<const google::protobuf::MethodDescriptor*,
                                  std::unique_ptr<RequestMetaEncoder>>
      meta_encoders;
  std::unique_ptr<RequestMetaEncoder>& meta_encoder = meta_encoders[method];
  if (meta_encoder == nullptr) {
    meta_encoder =
        std::make_unique<RequestMetaEncoder>(method->service()->full_name(), method->name());
  }
  std::string& attachment = controller->request_attachment_;
  const bool attachment_fits = attachment.size() <= static_cast<size_t>(INT32_MAX);
  const CompressType compress_type = controller->request_compress_type();
  RequestMetaEncoder::CallFields fields{
      CallTable::correlation_id(*slot),
      controller->log_id(),
      timeout_ms > 0 ? timeout_ms : 0,
      attachment_fits ? static_cast<int32_t>(attachment.size()) : 0,
      static_cast<int32_t>(compress_type),
      controller->trace_id(),
      controller->span_id(),
      controller->parent_span_id(),
      stream != nullptr ? stream->id() : 0,
      stream != nullptr && stream->needs_feedback()};
  if (route.options.credential_on_every_call && route.options.authenticator != nullptr) {
    thread_local std::string credential;
    credential.clear();
    if (route.options.authenticator->GenerateCredential(&credential) != 0) {
      state_.table.release(*slot);
      fail(ErrorCode::kUnauthorized, "the authenticator made no credential: " + credential);
      return;
    }
    fields.authentication_data = credential;
  }
  call.head.clear();
  EncodeStatus encoded = EncodeStatus::kBodyTooLarge;
  RequestHeadLayout layout;
  size_t message_bytes = 0;
  // Compressed here, on the calling thread, like the serialization.
  thread_local std::string compressed;
  if (compress_type == CompressType::kNone) {
    message_bytes = request->ByteSizeLong();  // Caches the sizes for the write below.
  } else {
    compressed.clear();
    if (!is_supported_compress_type(static_cast<int32_t>(compress_type)) ||
        !serialize_compressed(*request, compress_type, compressed)) {
      state_.table.release(*slot);
      fail(ErrorCode::kBadRequest,
           "cannot compress the request with compress_type " +
               std::to_string(static_cast<int32_t>(compress_type)) + " (" +
               std::string(compress_type_name(static_cast<int32_t>(compress_type))) + ")");
      return;
    }
    message_bytes = compressed.size();
  }
  if (attachment_fits) {
    encoded = plan_request_head(*meta_encoder, fields, message_bytes,
                                route.options.max_body_bytes, layout);
  }
  if (encoded != EncodeStatus::kOk) {
    const size_t body = message_bytes + attachment.size();
    if (compressed.capacity() > kMaxKeptCompressedBytes)
      std::string().swap(compressed);
    state_.table.release(*slot);
    fail(ErrorCode::kBadRequest,
         "request too large: " + std::to_string(body) + " bytes of message and attachment " +
             "exceed max_body_bytes (" + std::to_string(route.options.max_body_bytes) + ")");
    return;
  }
  // A large head is written into a shared block (uninitialized until written,
  // reused through the thread's SpareBlocks) that connection buffers
  // reference; a small one is copied into them.
  char* head = nullptr;
  if (layout.head_bytes() >= kShareHeadAbove) {
    call.shared_head = SpareBlocks::take_shared(layout.head_bytes(), &head);
    call.shared_head_bytes = layout.head_bytes();
  } else {
    call.shared_head.reset();
    call.head.resize(layout.head_bytes());
    head = call.head.data();
  }
  if (compress_type == CompressType::kNone) {
    write_request_head(*meta_encoder, fields, layout, *request, head);
  } else {
    write_request_head(*meta_encoder, fields, layout, std::string_view(compressed), head);
    if (compressed.capacity() > kMaxKeptCompressedBytes)
      std::string().swap(compressed);  // A large buffer is not kept per thread.
  }
  if (attachment.empty()) {
    call.attachment.reset();
  } else {
    call.attachment = std::make_shared<const std::string>(std::move(attachment));
    attachment.clear();
  }

  if (stream != nullptr)
    state_.streams.add(stream);  // Before the response can come.
  state_.table.publish(*slot);
  state_.requests.enqueue(*slot);
  state_.send_loop.run_turn_here_or_wake();
  if (done == nullptr) {
    wait_for(record);
    call.shared_head.reset();
    call.attachment.reset();
    state_.table.release(*slot);
    route.calls.leave();
  }
}

void ThreadGroup::wait_for(CallRecord& record) {
  const int spin_us = state_.options.spin_us;
  if (spin_us > 0) {
    const auto until = CallRecord::Clock::now() + std::chrono::microseconds(spin_us);
    while (CallRecord::Clock::now() < until) {
      if (record.finished.load(std::memory_order_acquire) != 0)
        return;
    }
  }
  while (record.finished.load(std::memory_order_acquire) == 0) {
    record.finished.wait(0, std::memory_order_acquire);
  }
}

}  // namespace percore::detail
