#pragma once

#include <google/protobuf/service.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <percore/client_proxy/channel_options.h>
#include <percore/client_proxy/channel_stats.h>
#include <percore/client_proxy/client_runtime.h>
#include <percore/client_proxy/controller.h>

namespace percore {

class NamingSource;
struct ServerAddress;

namespace detail {
struct ChannelRoute;
class ChannelEventLog;
}

// A protobuf RpcChannel to one service's servers, whose calls run on the
// share-nothing thread groups of a ClientRuntime (by default the
// process-wide one, shared with every other Channel). Generated stubs work
// unchanged:
//
//   percore::Channel channel;
//   channel.Init("list://127.0.0.1:8000", options);
//   example::EchoService_Stub stub(&channel);
//   percore::Controller cntl;
//   stub.Echo(&cntl, &request, &response, nullptr);   // synchronous
//
// `done == nullptr` makes a call synchronous; otherwise it returns at once and
// `done->Run()` is called exactly once when the call ends (see
// CompletionMode). The controller passed must be a percore::Controller; it,
// the request, the response and `done` must stay alive until the call ends.
// Every call ends exactly once, with one of the codes listed beside
// ErrorCode in proto/error_code.h ("How a client call ends").
//
// Owns: its routes into the runtime's groups (connections to its servers,
// one pool per group) and its naming source; shares the runtime.
// Threads: Init and the destructor from one thread, with no call starting
// concurrently with either, and not from a thread of the Channel's runtime
// (a callback): the destructor checks it (PERCORE_ASSERT), since it would
// wait for that very thread. CallMethod from any thread (a thread sticks to
// one group); a synchronous one (done == nullptr) not from a send or receive
// thread (an inline callback): it ends at once with 35 (EDEADLK).
class Channel : public google::protobuf::RpcChannel {
 public:
  Channel();
  // Ends every call still pending with 125, waits until every `done` has
  // run, and closes the Channel's connections; the runtime lives on if
  // other Channels use it.
  ~Channel() override;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Follows `target`'s server list and routes calls to it:
  //   list://host:port,host:port   (or a bare host:port,...): a fixed list;
  //   file:///path                 one host:port a line, re-read on change;
  //   zk://hosts/base/path/Service ZooKeeper, Apache Curator's layout;
  //                                waits naming_timeout_ms for the first list.
  // False with the reason in *error for a malformed target, a file:// that
  // is missing or names no server, an unreachable registry, or if called
  // twice. Before a successful Init, every call ends at once with 2001.
  bool Init(const std::string& target, const ChannelOptions& options = {},
            std::string* error = nullptr);

  void CallMethod(const google::protobuf::MethodDescriptor* method,
                  google::protobuf::RpcController* controller,
                  const google::protobuf::Message* request, google::protobuf::Message* response,
                  google::protobuf::Closure* done) override;

  const ChannelOptions& options() const { return options_; }
  // The runtime the Channel's calls run on (after Init).
  const std::shared_ptr<ClientRuntime>& runtime() const { return runtime_; }
  int group_count() const { return runtime_ == nullptr ? 0 : runtime_->group_count(); }
  // This Channel's calls that have started and not yet ended (done run).
  uint64_t calls_in_flight() const;
  // What this Channel did, per thread group and summed: calls, how they
  // ended by code, retries, connections by state, ejections
  // (ChannelStats). Any thread, any time (empty before Init).
  ChannelStats stats() const;

 private:
  void on_servers(const std::vector<ServerAddress>& servers);
  void log_server_change(const std::vector<ServerAddress>& servers);
  // Cancels the routes' calls, closes their connections and waits for both.
  void shut_down_routes();

  ChannelOptions options_;
  std::shared_ptr<ClientRuntime> runtime_;
  // Declared before routes_: the routes' pools log through it.
  std::unique_ptr<detail::ChannelEventLog> events_;
  // The last server list, for the log line of a change. Lists come from the
  // naming source's thread, and the first one from Init's caller.
  std::mutex last_servers_mutex_;
  std::vector<std::string> last_servers_;
  // One per group of the runtime.
  std::vector<std::unique_ptr<detail::ChannelRoute>> routes_;
  std::unique_ptr<NamingSource> naming_;
  // Its entry in the process's metrics (a server's /metrics): 0 before Init.
  uint64_t metrics_handle_ = 0;
};

// A `done` closure that makes a future of a call:
//
//   percore::FutureDone done;
//   stub.Echo(&cntl, &request, &response, &done);
//   done.future().wait();   // then read cntl and response
//
// One call per FutureDone. Threads: Run() from any thread, once.
class FutureDone : public google::protobuf::Closure {
 public:
  FutureDone() : future_(promise_.get_future()) {}
  void Run() override { promise_.set_value(); }
  std::shared_future<void>& future() { return future_; }

 private:
  std::promise<void> promise_;
  std::shared_future<void> future_;
};

}  // namespace percore
