#include <percore/client_proxy/detail/group_state.h>

#include <percore/client_proxy/controller.h>
#include <percore/client_proxy/detail/channel_route.h>

namespace percore::detail {
namespace {

int64_t microseconds_since(CallRecord::Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(CallRecord::Clock::now() - start)
      .count();
}

// Runs or queues `done`. The Channel's gate is left only once `done` has run,
// so that no callback of a Channel runs after its destructor returns.
void deliver(GroupState& group, CompletionMode completion, ChannelRoute& route,
             google::protobuf::Closure* done, const CallTable::Slot* held_slot) {
  if (completion == CompletionMode::kInlineCallback) {
    if (held_slot != nullptr)
      group.table.release(*held_slot);
    done->Run();
    route.calls.leave();
  } else {
    GroupState::QueuedCallback callback;
    callback.done = done;
    callback.route = &route;
    if (held_slot != nullptr) {
      callback.slot = *held_slot;
      callback.holds_slot = true;
    }
    group.callbacks.enqueue(callback);
  }
}

}  // namespace

void GroupState::run_callback(const QueuedCallback& callback) {
  callback.done->Run();
  if (callback.holds_slot)
    table.release(callback.slot);
  callback.route->calls.leave();
}

GroupState::GroupState(const ClientRuntimeOptions& runtime_options, int group_index)
    : options(runtime_options),
      index(group_index),
      send_loop(runtime_options.spin_us),
      receive_loop(0),
      table(static_cast<uint32_t>(runtime_options.max_inflight_per_group)),
      records(new CallRecord[runtime_options.max_inflight_per_group]) {}

void CallCompleter::end_call_stream(GroupState& group, Controller* controller, ErrorCode code) {
  std::shared_ptr<StreamCore> stream = std::move(controller->stream_);
  if (stream == nullptr)
    return;
  if (code == ErrorCode::kOk && stream->connected())
    return;  // Connected by the response: it lives on.
  if (stream->connected()) {
    stream->Close();  // A response that failed after all (unparsable): CLOSE.
    return;
  }
  group.streams.remove(stream->id());
  stream->end(StreamEndReason::kNotAccepted);
}

void CallCompleter::finish(GroupState& group, CallTable::Slot slot, ErrorCode code,
                           std::string text, const std::string& remote_side) {
  CallRecord& record = group.records[slot.index];
  CallRecord::Call& call = record.call;
  Controller* controller = call.controller;
  controller->error_code_ = code;
  controller->error_text_ = std::move(text);
  controller->latency_us_ = microseconds_since(call.started_at);
  controller->remote_side_ = remote_side;
  controller->retried_count_ = record.resends.load(std::memory_order_relaxed);
  call.route->counters.ends.add(to_int(code));
  end_call_stream(group, controller, code);

  google::protobuf::Closure* done = call.done;
  if (done == nullptr) {
    // The synchronous caller releases the slot and leaves the gate once it
    // has woken.
    record.finished.store(1, std::memory_order_release);
    record.finished.notify_one();
    return;
  }
  // Drop the request bytes now rather than when the slot is next used.
  call.shared_head.reset();
  call.attachment.reset();
  deliver(group, call.completion, *call.route, done, &slot);
}

void CallCompleter::fail_unpublished(GroupState& group, ChannelRoute& route,
                                     Controller* controller, google::protobuf::Closure* done,
                                     CallRecord::Clock::time_point started, ErrorCode code,
                                     std::string text) {
  controller->error_code_ = code;
  controller->error_text_ = std::move(text);
  controller->latency_us_ = microseconds_since(started);
  controller->remote_side_.clear();
  controller->retried_count_ = 0;
  route.counters.ends.add(to_int(code));
  end_call_stream(group, controller, code);
  if (done != nullptr)
    deliver(group, route.options.completion, route, done, nullptr);
}

}  // namespace percore::detail
