#include "client_proxy/detail/group_state.h"

#include "client_proxy/controller.h"

namespace percore::detail {
namespace {

int64_t microseconds_since(CallRecord::Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(CallRecord::Clock::now() - start)
      .count();
}

void deliver(GroupState& group, google::protobuf::Closure* done, const CallTable::Slot* held_slot) {
  if (group.options.completion == CompletionMode::kInlineCallback) {
    if (held_slot != nullptr)
      group.table.release(*held_slot);
    done->Run();
  } else {
    GroupState::QueuedCallback callback;
    callback.done = done;
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
}

GroupState::GroupState(const ChannelOptions& channel_options, int group_index)
    : options(channel_options),
      index(group_index),
      table(static_cast<uint32_t>(channel_options.max_inflight_per_group)),
      records(new CallRecord[channel_options.max_inflight_per_group]) {}

void CallCompleter::finish(GroupState& group, CallTable::Slot slot, ErrorCode code,
                           std::string text, const std::string& remote_side) {
  CallRecord& record = group.records[slot.index];
  Controller* controller = record.controller;
  controller->error_code_ = code;
  controller->error_text_ = std::move(text);
  controller->latency_us_ = microseconds_since(record.started_at);
  controller->remote_side_ = remote_side;
  controller->retried_count_ = record.resends.load(std::memory_order_relaxed);
  group.counters.calls_completed.fetch_add(1, std::memory_order_relaxed);

  google::protobuf::Closure* done = record.done;
  if (done == nullptr) {
    // The synchronous caller releases the slot once it has woken.
    record.finished.store(1, std::memory_order_release);
    record.finished.notify_one();
    return;
  }
  // Drop the request bytes now rather than when the slot is next used.
  record.shared_head.reset();
  record.attachment.reset();
  deliver(group, done, &slot);
}

void CallCompleter::fail_unpublished(GroupState& group, Controller* controller,
                                     google::protobuf::Closure* done,
                                     CallRecord::Clock::time_point started, ErrorCode code,
                                     std::string text) {
  controller->error_code_ = code;
  controller->error_text_ = std::move(text);
  controller->latency_us_ = microseconds_since(started);
  controller->remote_side_.clear();
  controller->retried_count_ = 0;
  group.counters.calls_completed.fetch_add(1, std::memory_order_relaxed);
  if (done != nullptr)
    deliver(group, done, nullptr);
}

}  // namespace percore::detail
