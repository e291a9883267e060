#pragma once

#include <google/protobuf/stubs/callback.h>

#include <functional>
#include <utility>

namespace percore::testing {

// A `done` closure from any callable; it deletes itself after running once.
class OnceClosure : public google::protobuf::Closure {
 public:
  explicit OnceClosure(std::function<void()> body) : body_(std::move(body)) {}
  void Run() override {
    body_();
    delete this;
  }

 private:
  std::function<void()> body_;
};

inline google::protobuf::Closure* once(std::function<void()> body) {
  return new OnceClosure(std::move(body));
}

}  // namespace percore::testing
