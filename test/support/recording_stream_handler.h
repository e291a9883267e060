#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <percore/proto/stream.h>
#include "test/support/slack.h"

namespace percore::testing {

// Records what one end of a stream is told: messages in order, the end and
// how many times it was told (must be once).
class RecordingHandler : public StreamHandler {
 public:
  void on_received_messages(Stream&, std::span<std::string> messages) override {
    std::lock_guard lock(mutex_);
    for (std::string& message : messages) {
      bytes_ += message.size();
      if (keep_messages_)
        messages_.push_back(std::move(message));
      ++count_;
    }
    changed_.notify_all();
  }
  void on_closed(Stream&, StreamEndReason reason) override {
    std::lock_guard lock(mutex_);
    ++ends_;
    end_ = reason;
    changed_.notify_all();
  }

  template <typename Condition>
  bool wait(std::chrono::milliseconds timeout, Condition condition) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, testing::scaled(timeout), [&] { return condition(); });
  }
  bool wait_end(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    return wait(timeout, [&] { return end_.has_value(); });
  }
  std::vector<std::string> messages() {
    std::lock_guard lock(mutex_);
    return messages_;
  }
  uint64_t count() {
    std::lock_guard lock(mutex_);
    return count_;
  }
  uint64_t bytes() {
    std::lock_guard lock(mutex_);
    return bytes_;
  }
  int ends() {
    std::lock_guard lock(mutex_);
    return ends_;
  }
  std::optional<StreamEndReason> end() {
    std::lock_guard lock(mutex_);
    return end_;
  }
  void keep_messages(bool keep) { keep_messages_ = keep; }

  // Under mutex_ (for wait conditions).
  uint64_t count_ = 0;
  uint64_t bytes_ = 0;
  int ends_ = 0;
  std::optional<StreamEndReason> end_;

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> messages_;
  bool keep_messages_ = true;
};

}  // namespace percore::testing
