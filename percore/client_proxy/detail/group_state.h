#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include <percore/client_proxy/client_runtime.h>
#include <percore/client_proxy/detail/call_record.h>
#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/event_loop.h>
#include <percore/proto/error_code.h>
#include <percore/client_proxy/detail/stream_registry.h>

namespace percore::detail {

struct ChannelRoute;

// moodycamel's blocking queue spins 10,000 times before it sleeps: tens of
// microseconds of CPU burnt per wait at low load. A short spin keeps the
// fast path when callbacks come back to back and lets an idle thread sleep.
struct CallbackQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static const int MAX_SEMA_SPINS = 100;
};

// What the threads of one group share, and nothing any other group touches:
// the two event loops, the call table and its records, and the lock-free
// queues between the calling threads, the send thread, the receive thread
// and the callback threads. Everything here is immutable after
// construction, atomic, a lock-free queue, or reached through an accessor
// that checks its thread.
//
// Owns: all of the above. Threads: any (see each member).
struct GroupState {
  GroupState(const ClientRuntimeOptions& runtime_options, int group_index);

  const ClientRuntimeOptions options;
  const int index;

  EventLoop send_loop;
  EventLoop receive_loop;

  CallTable table;
  std::unique_ptr<CallRecord[]> records;  // Indexed like the table's slots.

  // Calling threads -> send thread: published calls (then send_loop.wake()).
  moodycamel::ConcurrentQueue<CallTable::Slot> requests;

  // Completers -> callback threads (kQueuedCallback); done == null: stop.
  // A queued callback keeps its call's slot until it has run, so callbacks
  // that fall behind hold the group at max_inflight_per_group (new calls get
  // 1011) instead of piling up in this queue.
  struct QueuedCallback {
    google::protobuf::Closure* done = nullptr;
    ChannelRoute* route = nullptr;  // Its Channel's call gate is left after done.
    CallTable::Slot slot{0, 0};
    bool holds_slot = false;
  };
  moodycamel::BlockingConcurrentQueue<QueuedCallback, CallbackQueueTraits> callbacks;
  // Callback thread: runs a queued callback, frees its slot, leaves its gate.
  void run_callback(const QueuedCallback& callback);

  // The streams attached to this group's calls (Controller::open_stream).
  StreamRegistry streams;

  // Set when the group is being destroyed: new calls fail with 125.
  std::atomic<bool> closing{false};

};

// Ends calls: writes the outcome into the Controller and hands the call to
// whoever waits for it. Only the thread that won CallTable::try_complete()
// for the slot (or a caller failing a call it never published) calls these.
struct CallCompleter {
  // The stream attached to a call that ends: kept if the response connected
  // it, else ended (kNotAccepted) and unregistered.
  static void end_call_stream(GroupState& group, Controller* controller, ErrorCode code);
  // Completes a won slot with `code` (0: OK; the response is already filled).
  static void finish(GroupState& group, CallTable::Slot slot, ErrorCode code, std::string text,
                     const std::string& remote_side);
  // Ends a call that never got a slot published (overcrowded, too large,
  // closing): the outcome is delivered the same way as any other.
  static void fail_unpublished(GroupState& group, ChannelRoute& route, Controller* controller,
                               google::protobuf::Closure* done,
                               CallRecord::Clock::time_point started, ErrorCode code,
                               std::string text);
};

}  // namespace percore::detail
