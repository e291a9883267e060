#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/stubs/callback.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <percore/client_proxy/channel_options.h>
#include <percore/client_proxy/detail/call_table.h>
#include <percore/client_proxy/detail/event_loop.h>
#include <percore/client_proxy/detail/loop_owned.h>
#include <percore/proto/detail/assert.h>
#include <percore/proto/error_code.h>

namespace percore {
class Controller;
}

namespace percore::detail {

struct ChannelRoute;

// The data of one call in flight, in the CallTable slot of the same index.
// Slots are reused, never freed, so a pointer to a record is always valid;
// whether it still holds the call one has in mind is what the table's
// generation says.
//
// Fields are grouped by who writes them:
// - `call`: the calling thread, between acquire() and publish(); read-only
//   afterwards for the send thread (after the request queue) and for the
//   completer (after winning try_complete()), until the call has ended;
// - `resends`, `finished`, `queued_on`, `sweep_route`: atomics (see each);
// - send_side(): the send thread only (checked).
struct CallRecord {
  using Clock = std::chrono::steady_clock;

  struct Call {
    Controller* controller = nullptr;
    google::protobuf::Message* response = nullptr;
    google::protobuf::Closure* done = nullptr;  // Null: synchronous.
    ChannelRoute* route = nullptr;              // The Channel it was made on.
    CompletionMode completion = CompletionMode::kQueuedCallback;
    Clock::time_point started_at;
    Clock::time_point deadline;  // time_point::max(): none.
    int max_retry = 0;
    int max_resends = 0;
    // Header + meta + message, serialized by the caller. Kept until the call
    // ends, since the call may have to be sent again on another connection.
    std::string head;
    // A large head is written here instead (shared_head_bytes long), to be
    // referenced by connection buffers rather than copied into them.
    std::shared_ptr<const char[]> shared_head;
    size_t shared_head_bytes = 0;
    std::shared_ptr<const std::string> attachment;
  };

  struct SendSide {
    uint32_t generation = 0;     // Of the call these fields describe.
    uint64_t connection_id = 0;  // Where it was last queued; 0: none.
    uint64_t stream_offset = 0;  // Its first byte's offset in that stream.
    uint64_t avoid_server = 0;   // Server id not to send it to again; 0: none.
    bool sent = false;           // Queued once: its Channel's budget counted it.
    int retries_used = 0;        // Written, connection broke, sent again.
    int resends_used = 0;        // Surely not run (never written, 2003), sent again.
    // Why its last attempt failed, when that is how it may end: 2003 and the
    // server's address ("" otherwise).
    ErrorCode last_error = ErrorCode::kOk;
    std::string last_error_text;
    // The server of the connection the call last left (broken, found dead,
    // answered 2003) to be sent again, for Controller::remote_side() when
    // the call then ends off any connection (its deadline passes, no server
    // can take it). Valid only when retries_used + resends_used > 0: it is
    // never cleared, so that the common path does not touch it.
    std::string last_remote_side;
  };

  Call call;

  // Times the call was sent again (the send thread writes, the completer
  // reads).
  std::atomic<int> resends{0};
  // Synchronous calls: the completer stores 1 and notifies; the caller waits
  // for it, then releases the slot.
  std::atomic<uint32_t> finished{0};
  // The connection the call was last queued on (0: none yet). The send
  // thread stores it before the bytes go out; the receive thread takes a
  // reply only from that connection, so no other server (of this Channel or
  // of another Channel sharing the group) can end the call.
  std::atomic<uint64_t> queued_on{0};
  // call.route again, as an atomic: the send thread's cancel sweep reads it
  // for slots that may be completed and reused under it (call.route is the
  // caller's until publish()); a stale value only names a generation that
  // complete() then refuses.
  std::atomic<const ChannelRoute*> sweep_route{nullptr};

  SendSide& send_side(const EventLoop& send_loop) { return send_.get(send_loop); }

 private:
  LoopOwned<SendSide> send_;
};

}  // namespace percore::detail
