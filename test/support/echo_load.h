#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include "test/support/call_ledger.h"
#include "test/support/slack.h"

namespace percore::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// One call of an EchoLoad, with what tests assert on.
struct CallOutcome {
  int32_t code = -1;
  int64_t latency_us = 0;
  std::string remote_side;
  Clock::time_point ended_at;
};

// Keeps `in_flight` asynchronous echo calls going through a channel and
// records every outcome by call id.
class EchoLoad {
 public:
  EchoLoad(Channel& channel, size_t max_calls, int in_flight)
      : stub_(&channel),
        ledger_(max_calls),
        outcomes_(max_calls),
        permits_(in_flight),
        in_flight_(in_flight) {}

  // Issues calls [issued(), issued() + count) and returns when they are issued.
  void issue(size_t count) {
    for (size_t i = 0; i < count; ++i) {
      ASSERT_TRUE(permits_.try_acquire_for(scaled(milliseconds(20000))));
      const size_t id = issued_++;
      ASSERT_LT(id, outcomes_.size());
      auto* call = new Call(*this, id);
      call->request.set_message("call " + std::to_string(id));
      stub_.Echo(&call->controller, &call->request, &call->response, call);
    }
  }
  // Issues calls on a thread of its own until stop_background() (or until
  // the outcome table is full), pausing `gap` after each (0: none).
  void start_background(std::chrono::microseconds gap = std::chrono::microseconds(0)) {
    background_ = std::thread([this, gap] {
      while (!stop_.load() && issued_.load() < outcomes_.size()) {
        issue(1);
        if (gap.count() > 0)
          std::this_thread::sleep_for(gap);
      }
    });
  }
  void stop_background() {
    stop_.store(true);
    if (background_.joinable())
      background_.join();
  }
  // Waits until at least `count` calls are issued (bounded).
  bool wait_issued(size_t count) {
    const auto deadline = Clock::now() + scaled(milliseconds(20000));
    while (issued_.load() < count && Clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(1));
    }
    return issued_.load() >= count;
  }
  // Waits for every issued call to end.
  void wait_all() {
    for (int i = 0; i < in_flight_; ++i) {
      ASSERT_TRUE(permits_.try_acquire_for(scaled(milliseconds(20000))));
    }
    permits_.release(in_flight_);
  }
  size_t issued() const { return issued_.load(); }
  const CallLedger& ledger() const { return ledger_; }
  std::vector<CallOutcome> outcomes() {
    std::lock_guard lock(mutex_);
    return std::vector<CallOutcome>(outcomes_.begin(), outcomes_.begin() + issued_.load());
  }
  // When a successful call was first answered by `remote_side` after `since`.
  std::optional<Clock::time_point> first_answer_from(const std::string& remote_side,
                                                     Clock::time_point since) {
    std::lock_guard lock(mutex_);
    std::optional<Clock::time_point> first;
    for (size_t i = 0; i < issued_.load(); ++i) {
      const CallOutcome& outcome = outcomes_[i];
      if (outcome.code == 0 && outcome.remote_side == remote_side && outcome.ended_at > since &&
          (!first || outcome.ended_at < *first)) {
        first = outcome.ended_at;
      }
    }
    return first;
  }

 private:
  struct Call : google::protobuf::Closure {
    Call(EchoLoad& owner, size_t call_id) : load(owner), id(call_id) {}
    void Run() override {
      CallOutcome outcome;
      outcome.code = controller.ErrorCode();
      if (outcome.code == 0 && response.message() != request.message())
        outcome.code = -2;
      outcome.latency_us = controller.latency_us();
      outcome.remote_side = controller.remote_side();
      outcome.ended_at = Clock::now();
      {
        std::lock_guard lock(load.mutex_);
        load.outcomes_[id] = std::move(outcome);
      }
      load.ledger_.record_end(id);
      load.permits_.release();
      delete this;
    }
    EchoLoad& load;
    size_t id;
    Controller controller;
    example::EchoRequest request;
    example::EchoResponse response;
  };

  example::EchoService_Stub stub_;
  CallLedger ledger_;
  std::mutex mutex_;
  std::vector<CallOutcome> outcomes_;
  std::counting_semaphore<1 << 20> permits_;
  const int in_flight_;
  std::atomic<size_t> issued_{0};
  std::atomic<bool> stop_{false};
  std::thread background_;
};

inline std::map<int32_t, int> count_codes(const std::vector<CallOutcome>& outcomes) {
  std::map<int32_t, int> codes;
  for (const CallOutcome& outcome : outcomes)
    ++codes[outcome.code];
  return codes;
}

}  // namespace percore::testing
