#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <percore/base/log.h>

namespace percore::detail {

// What a Channel says in the log, every line starting "channel <target>: ".
// Over every group of the Channel (the same event seen by eight groups is
// one line), per server:
// - failures (connect failures with their reason, broken and dead
//   connections): at most one line a second; lines held back are counted
//   on the next one;
// - health changes (stopping, ejected, still ejected, readmitted): at most
//   one line a second, and none is lost for good: a change that comes
//   within the second is held, and the latest one held is written by
//   flush() once the second is over, with the number of changes it stands
//   for. So the log always ends with a server's current state.
// The Channel's own lines (server-list changes): five a second.
// Through percore's log (base/log.h: the spdlog logger "percore", which the
// application may replace or re-route).
//
// Owns: its limiters and held lines. Threads: any.
class ChannelEventLog {
 public:
  using Clock = std::chrono::steady_clock;

  explicit ChannelEventLog(std::string target) : prefix_("channel " + std::move(target) + ": ") {}

  template <typename MakeText>
  void failure(const std::string& server, LogLevel level, MakeText&& make_text) {
    failures_.log(server, level, [&] { return prefix_ + make_text(); });
  }
  void health(const std::string& server, LogLevel level, std::string text);
  // Writes the held health lines whose second is over. Any thread; the
  // pools call it from their maintenance (at least once a second while they
  // have connections).
  void flush();

  template <typename MakeText>
  void channel(LogLevel level, MakeText&& make_text) {
    channel_.log(level, [&] { return prefix_ + make_text(); });
  }

 private:
  struct HealthLine {
    Clock::time_point last_written{};
    LogLevel held_level = LogLevel::kInfo;
    std::string held;  // Empty: nothing held.
    int held_changes = 0;
  };
  void write(HealthLine& line, LogLevel level, const std::string& text, Clock::time_point now);

  const std::string prefix_;
  KeyedLogRateLimiter failures_{1, std::chrono::seconds(1)};
  LogRateLimiter channel_{5, std::chrono::seconds(1)};
  std::mutex mutex_;
  std::unordered_map<std::string, HealthLine> health_;  // By server.
  bool any_held_ = false;
};

}  // namespace percore::detail
