#pragma once

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include <percore/client_proxy/client_runtime.h>
#include <percore/client_proxy/detail/channel_route.h>
#include <percore/client_proxy/detail/group_state.h>
#include <percore/client_proxy/detail/receive_thread.h>
#include <percore/client_proxy/detail/send_thread.h>

namespace percore {
class Controller;
}

namespace percore::detail {

// One share-nothing thread group: a send thread, a receive thread, callback
// threads, and the state they share (GroupState). No two groups share
// anything; a calling thread always uses the same group. Every Channel of
// its runtime has a route here.
//
// Owns: its threads and state. Threads: call(), the route methods and
// set_servers() from any thread; the constructor and destructor from the
// runtime's owner.
class ThreadGroup {
 public:
  // `owner` is the runtime: its own threads find their group through it.
  ThreadGroup(const ClientRuntimeOptions& options, int index, const void* owner);
  // Joins the threads. Every Channel's route has been removed by then.
  ~ThreadGroup();
  ThreadGroup(const ThreadGroup&) = delete;
  ThreadGroup& operator=(const ThreadGroup&) = delete;

  // Starts a call of `route`'s Channel; for done == nullptr, returns when it
  // has ended.
  void call(ChannelRoute& route, const google::protobuf::MethodDescriptor* method,
            Controller* controller, const google::protobuf::Message* request,
            google::protobuf::Message* response, google::protobuf::Closure* done);

  void add_route(ChannelRoute& route) { send_.post_add_route(route); }
  // `retired` runs (on the send thread) once the route's calls have ended
  // with 125 and its connections are closed.
  void remove_route(ChannelRoute& route, std::function<void()> retired) {
    send_.post_remove_route(route, std::move(retired));
  }
  // The route's servers in this group; with subsetting, `fallback_servers`
  // are the others, used while all of `servers` are down.
  void set_servers(ChannelRoute& route, std::shared_ptr<const std::vector<ServerAddress>> servers,
                   std::shared_ptr<const std::vector<ServerAddress>> fallback_servers) {
    send_.post_servers(route, std::move(servers), std::move(fallback_servers));
  }

  // The index of the group whose thread (send, receive or callback) is
  // running this, if that group belongs to `owner`; else -1. A callback that
  // makes the next call thus stays in its own group.
  static int current_group_of(const void* owner);

  uint32_t calls_in_flight() const { return state_.table.in_use(); }
  // Wake-ups of the send thread that needed a system call.
  uint64_t send_wakeups() const { return state_.send_loop.wakeups_signalled(); }
  // Send-thread turns run by calling threads (ClientRuntimeOptions::callers_write).
  uint64_t lent_send_turns() const { return state_.send_loop.lent_turns(); }

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
