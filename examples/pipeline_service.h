#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include <percore/client_proxy/channel.h>
#include <percore/server_io/server.h>
#include "examples/pipeline.pb.h"

namespace percore::examples {

// pipeline.StageB, the last stage: Transform answers its text in upper case
// after sleeping delay_ms on its worker (a slow stage), with what its
// handler saw of the call (time left, log id, trace); Inspect answers how
// many Transform calls started and what the last one saw, so that a test
// can look at a call whose client has already given up.
// Register it with service_options(): Transform on the worker pool, Inspect
// inline (it answers while every worker sleeps).
// Owns: the record of the last Transform call. Threads: any (the record is
// under a mutex).
class StageBServiceImpl : public pipeline::StageB {
 public:
  static constexpr uint32_t kMaxDelayMs = 60000;

  static ServiceOptions service_options();

  void Transform(google::protobuf::RpcController* controller,
                 const pipeline::TransformRequest* request, pipeline::TransformResponse* response,
                 google::protobuf::Closure* done) override;
  void Inspect(google::protobuf::RpcController* controller, const pipeline::InspectRequest* request,
               pipeline::InspectResponse* response, google::protobuf::Closure* done) override;

 private:
  std::mutex mutex_;
  uint64_t transform_calls_ = 0;
  pipeline::SeenContext last_seen_;
};

// pipeline.StageA, the first stage: Process calls StageB.Transform through
// a Channel, asynchronously, with the context of its own call
// (Controller::inherit(ServerController::downstream_context())): B's call
// ends by A's caller's deadline and carries its log id and trace. It
// answers from the Channel's callback: "A(" + B's text + ")", what its
// handler saw, and B's answer; if B's call fails, it fails with B's code and
// text, prefixed by where it happened. Register it with service_options()
// (worker pool: the handler only starts the call, the worker is free again
// at once).
// Owns: its Channel to stage B, which must be destroyed while the Server
// that hosts this service is still alive (it ends B's calls still pending,
// and their callbacks answer the server's calls): destroy it before the
// Server (declare it after), once the Server has stopped.
// Threads: Init from one thread before the server starts; Process from any.
class StageAServiceImpl : public pipeline::StageA {
 public:
  static ServiceOptions service_options();

  // Follows `next`, any Channel target (zk://..., host:port, list://...),
  // for StageB. False with the reason in *error.
  bool Init(const std::string& next, std::string* error);

  void Process(google::protobuf::RpcController* controller, const pipeline::ProcessRequest* request,
               pipeline::ProcessResponse* response, google::protobuf::Closure* done) override;

 private:
  Channel channel_;
  std::unique_ptr<pipeline::StageB_Stub> stub_;
};

}  // namespace percore::examples
