#pragma once

#include <google/protobuf/stubs/callback.h>

#include <exception>

namespace percore {

namespace closure_guard_detail {
// True while a ClosureGuard runs its closure during an exception's unwinding
// (on this thread): a percore server then answers the call 2001 rather than
// with the half-made response.
inline thread_local bool running_while_unwinding = false;
}  // namespace closure_guard_detail

// Runs a `done` closure when it leaves scope, as brpc::ClosureGuard: a
// handler that returns early, throws, or forgets done->Run() still answers
// its call (a percore server answers a call whose done runs while an
// exception unwinds 2001, not with the half-made response). Without it, a `done` never run leaves the call unanswered: the
// client waits for its deadline (1008) and Server::Stop() waits its whole
// grace before answering 2003.
//
//   void Echo(RpcController* cntl, const EchoRequest* request,
//             EchoResponse* response, Closure* done) override {
//     percore::ClosureGuard done_guard(done);
//     if (request->message().empty()) {
//       static_cast<percore::ServerController*>(cntl)->SetFailed(1003, "empty");
//       return;                            // done->Run() here
//     }
//     response->set_message(request->message());
//   }                                      // and here
//
// To finish the call later (on another thread), release() the closure and
// run it there. Owns the closure until it runs it or releases it. Threads:
// one at a time; the closure runs on the thread that destroys or resets the
// guard.
class ClosureGuard {
 public:
  ClosureGuard() = default;
  explicit ClosureGuard(google::protobuf::Closure* done) : done_(done) {}
  ~ClosureGuard() {
    if (done_ == nullptr)
      return;
    if (std::uncaught_exceptions() == 0) {
      done_->Run();
      return;
    }
    closure_guard_detail::running_while_unwinding = true;
    done_->Run();
    closure_guard_detail::running_while_unwinding = false;
  }
  ClosureGuard(const ClosureGuard&) = delete;
  ClosureGuard& operator=(const ClosureGuard&) = delete;

  // Gives the closure back without running it; the caller now runs it.
  // Null if the guard holds none.
  google::protobuf::Closure* release() {
    google::protobuf::Closure* done = done_;
    done_ = nullptr;
    return done;
  }

  // Runs the closure held (if any) now, then guards `done` (may be null).
  void reset(google::protobuf::Closure* done) {
    google::protobuf::Closure* previous = done_;
    done_ = done;
    if (previous != nullptr)
      previous->Run();
  }

  // True if the guard holds no closure.
  bool empty() const { return done_ == nullptr; }

 private:
  google::protobuf::Closure* done_ = nullptr;
};

}  // namespace percore
