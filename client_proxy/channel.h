#pragma once

#include <google/protobuf/service.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "client_proxy/channel_options.h"
#include "client_proxy/controller.h"

namespace percore {

class NamingSource;
struct ServerAddress;

namespace detail {
class ThreadGroup;
}

// A protobuf RpcChannel to one service's servers, made of share-nothing
// thread groups. Generated stubs work unchanged:
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
// Every call ends exactly once: OK, a remote error, 1008 timeout, 1009 broken
// connection, 1011 overcrowded, 112 no server, or 125 when the Channel is
// destroyed first.
//
// Owns: its thread groups and naming source. Threads: Init and the
// destructor from one thread, with no call starting concurrently with either;
// CallMethod from any thread (a thread sticks to one group).
class Channel : public google::protobuf::RpcChannel {
 public:
  Channel();
  ~Channel() override;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // Starts the groups and follows `target`'s server list
  // (`list://host:port,...` or a bare `host:port,...`). False with the reason
  // in *error for a malformed target, or if called twice.
  bool Init(const std::string& target, const ChannelOptions& options = {},
            std::string* error = nullptr);

  void CallMethod(const google::protobuf::MethodDescriptor* method,
                  google::protobuf::RpcController* controller,
                  const google::protobuf::Message* request, google::protobuf::Message* response,
                  google::protobuf::Closure* done) override;

  const ChannelOptions& options() const { return options_; }
  int group_count() const { return static_cast<int>(groups_.size()); }
  // Calls in flight over all groups (for tests and monitoring).
  uint64_t calls_in_flight() const;

 private:
  void on_servers(const std::vector<ServerAddress>& servers);

  ChannelOptions options_;
  std::vector<std::unique_ptr<detail::ThreadGroup>> groups_;
  std::unique_ptr<NamingSource> naming_;
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
