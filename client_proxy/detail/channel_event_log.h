#pragma once

#include <string>
#include <utility>

#include "base/log.h"

namespace percore::detail {

// What a Channel says in the log: connect failures with their reason,
// connections that broke or were found dead, ejections and readmissions,
// servers stopping, server-list changes. Lines start with "channel
// <target>: " and are rate-limited to one a second per server for its
// failures and one for its health (ejected, readmitted, stopping), over
// every group (the same failure seen by eight groups is one line), and five
// a second for the Channel's own lines, with held-back lines counted on the
// next one. Callers key health lines "<ip:port> health". Through percore's log (base/log.h: the spdlog logger
// "percore", which the application may replace or re-route).
//
// Owns: its limiters. Threads: any.
class ChannelEventLog {
 public:
  explicit ChannelEventLog(std::string target) : prefix_("channel " + std::move(target) + ": ") {}

  template <typename MakeText>
  void server(const std::string& address, LogLevel level, MakeText&& make_text) {
    per_server_.log(address, level, [&] { return prefix_ + make_text(); });
  }
  template <typename MakeText>
  void channel(LogLevel level, MakeText&& make_text) {
    channel_.log(level, [&] { return prefix_ + make_text(); });
  }

 private:
  const std::string prefix_;
  KeyedLogRateLimiter per_server_{1, std::chrono::seconds(1)};
  LogRateLimiter channel_{5, std::chrono::seconds(1)};
};

}  // namespace percore::detail
