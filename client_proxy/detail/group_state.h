#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "client_proxy/channel_options.h"
#include "client_proxy/detail/call_record.h"
#include "client_proxy/detail/call_table.h"
#include "client_proxy/detail/event_notifier.h"
#include "discovery/server_address.h"
#include "proto/error_code.h"

namespace percore::detail {

struct ClientConnection;

// moodycamel's blocking queue spins 10,000 times before it sleeps: tens of
// microseconds of CPU burnt per wait at low load. A short spin keeps the
// fast path when callbacks come back to back and lets an idle thread sleep.
struct CallbackQueueTraits : moodycamel::ConcurrentQueueDefaultTraits {
  static const int MAX_SEMA_SPINS = 100;
};

// A message to a group's send thread.
struct SendCommand {
  enum class Kind {
    kReleased,  // The receive side let go of `connection_id` (failed or asked).
    kResend,    // `slot` was answered 2003 on `connection_id`: send it elsewhere.
    kServers,   // The servers are now `servers` (+ `fallback_servers`).
    kShutdown,
  };
  Kind kind = Kind::kShutdown;
  uint64_t connection_id = 0;
  CallTable::Slot slot{0, 0};
  std::string reason;
  std::shared_ptr<const std::vector<ServerAddress>> servers;
  // With subsetting: the servers outside the group's subset, used only while
  // every server of the subset is down. Null: none.
  std::shared_ptr<const std::vector<ServerAddress>> fallback_servers;
};

// A message to a group's receive thread.
struct ReceiveCommand {
  enum class Kind {
    kAdopt,    // Start reading `connection` (connected by the send thread).
    kRelease,  // Stop reading `connection_id` and say so (kReleased).
    kShutdown,
  };
  Kind kind = Kind::kShutdown;
  ClientConnection* connection = nullptr;
  uint64_t connection_id = 0;
};

// Counters of one group (relaxed atomics; any thread reads them).
struct GroupCounters {
  std::atomic<uint64_t> calls_started{0};
  std::atomic<uint64_t> calls_completed{0};
  std::atomic<uint64_t> stale_replies{0};  // Late, duplicate or unknown ids.
  std::atomic<uint64_t> resends{0};
  std::atomic<uint64_t> connects{0};
  std::atomic<uint64_t> connection_failures{0};
  std::atomic<uint64_t> malformed_responses{0};
};

// What the threads of one group share, and nothing any other group touches:
// the call table and its records, and the lock-free queues between the
// calling threads, the send thread, the receive thread and the callback
// threads. Everything here is either immutable after construction, atomic,
// or a lock-free queue.
//
// Owns: all of the above. Threads: any (see each member).
struct GroupState {
  GroupState(const ChannelOptions& channel_options, int group_index);

  const ChannelOptions options;
  const int index;

  CallTable table;
  std::unique_ptr<CallRecord[]> records;  // Indexed like the table's slots.

  // Calling threads -> send thread: published calls.
  moodycamel::ConcurrentQueue<CallTable::Slot> requests;
  moodycamel::ConcurrentQueue<SendCommand> send_commands;
  EventNotifier send_notifier;

  // Send thread -> receive thread.
  moodycamel::ConcurrentQueue<ReceiveCommand> receive_commands;
  EventNotifier receive_notifier;

  // Completers -> callback threads (kQueuedCallback); done == null: stop.
  // A queued callback keeps its call's slot until it has run, so callbacks
  // that fall behind hold the group at max_inflight_per_group (new calls get
  // 1011) instead of piling up in this queue.
  struct QueuedCallback {
    google::protobuf::Closure* done = nullptr;
    CallTable::Slot slot{0, 0};
    bool holds_slot = false;
  };
  moodycamel::BlockingConcurrentQueue<QueuedCallback, CallbackQueueTraits> callbacks;
  // Callback thread: runs a queued callback and frees its slot.
  void run_callback(const QueuedCallback& callback);

  // Set when the Channel is being destroyed: new calls fail with 125.
  std::atomic<bool> closing{false};

  GroupCounters counters;

  void post_to_send_thread(SendCommand command) {
    send_commands.enqueue(std::move(command));
    send_notifier.notify();
  }
  void post_to_receive_thread(ReceiveCommand command) {
    receive_commands.enqueue(command);
    receive_notifier.notify();
  }
};

// Ends calls: writes the outcome into the Controller and hands the call to
// whoever waits for it. Only the thread that won CallTable::try_complete()
// for the slot (or a caller failing a call it never published) calls these.
struct CallCompleter {
  // Completes a won slot with `code` (0: OK; the response is already filled).
  static void finish(GroupState& group, CallTable::Slot slot, ErrorCode code, std::string text,
                     const std::string& remote_side);
  // Ends a call that never got a slot published (overcrowded, too large,
  // closing): the outcome is delivered the same way as any other.
  static void fail_unpublished(GroupState& group, Controller* controller,
                               google::protobuf::Closure* done,
                               CallRecord::Clock::time_point started, ErrorCode code,
                               std::string text);
};

}  // namespace percore::detail
