#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <memory>
#include <thread>
#include <vector>

#include "client_proxy/channel_options.h"
#include "client_proxy/detail/group_state.h"
#include "client_proxy/detail/receive_thread.h"
#include "client_proxy/detail/send_thread.h"

namespace percore {
class Controller;
}

namespace percore::detail {

// One share-nothing thread group: a send thread, a receive thread, callback
// threads, and the state they share (GroupState). No two groups share
// anything; a calling thread always uses the same group.
//
// Owns: its threads and state. Threads: call() from any calling thread;
// set_servers() from the naming source's thread; the constructor and
// destructor from the Channel's owner.
class ThreadGroup {
 public:
  // `owner` identifies the Channel, so that its own threads find their group.
  ThreadGroup(const ChannelOptions& options, int index, const void* owner);
  // Ends every pending call with 125 and joins the threads; no callback runs
  // after it returns.
  ~ThreadGroup();
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  // Starts a call; for done == nullptr, returns when it has ended.
  void call(const google::protobuf::MethodDescriptor* method, Controller* controller,
            const google::protobuf::Message* request, google::protobuf::Message* response,
            google::protobuf::Closure* done);

  // The group's servers are now `servers`; with subsetting,
  // `fallback_servers` are the others, used while all of `servers` are down.
  void set_servers(std::shared_ptr<const std::vector<ServerAddress>> servers,
                   std::shared_ptr<const std::vector<ServerAddress>> fallback_servers);

  // The index of the group whose thread (send, receive or callback) is
  // running this, if that group belongs to `owner`; else -1. A callback that
  // makes the next call thus stays in its own group.
  static int current_group_of(const void* owner);

  const GroupCounters& counters() const { return state_.counters; }
  uint32_t calls_in_flight() const { return state_.table.in_use(); }

 private:
  void wait_for(CallRecord& record);

  void enter_thread() const;

  const void* const owner_;
  GroupState state_;
  SendThread send_;
  ReceiveThread receive_;
  std::thread send_thread_;
  std::thread receive_thread_;
  std::vector<std::thread> callback_threads_;
};

}  // namespace percore::detail
