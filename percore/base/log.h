#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <memory>

namespace percore {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Writes one line to percore's log: the spdlog logger named "percore"
// (stderr, spdlog's default line format), created on first use. To send
// percore's lines elsewhere, register a logger under that name
// (spdlog::register_logger) before percore's first line, or change the sinks
// of spdlog::get("percore"). Control characters and bytes that are not
// UTF-8 are written \xHH (printable_utf8): a text may quote a peer. Any
// thread.
void log(LogLevel level, std::string_view text);

// Lets at most `burst` lines through per `interval` from one call site, so
// that a peer flooding a server with bad input costs a few lines a second, not
// one per input. Lines held back are counted, and the next line let through
// ends with "(N similar lines suppressed)".
//
// Owns: its counters. Threads: any (one short lock per call; call sites are
// error paths).
class LogRateLimiter {
 public:
  explicit LogRateLimiter(int burst = 1,
                          std::chrono::milliseconds interval = std::chrono::seconds(1))
      : burst_(burst), interval_(interval) {}
  LogRateLimiter(const LogRateLimiter&) = delete;
  LogRateLimiter& operator=(const LogRateLimiter&) = delete;

  // Writes make_text() at `level` if the budget allows; otherwise only counts
  // the line (make_text is not called).
  template <typename MakeText>
  void log(LogLevel level, MakeText&& make_text) {
    uint64_t held_back = 0;
    if (admit(held_back))
      percore::log(level, with_suppressed_count(make_text(), held_back));
  }

  // Lines held back so far, in total.
  uint64_t suppressed_total() const;

 private:
  bool admit(uint64_t& held_back);
  static std::string with_suppressed_count(std::string text, uint64_t held_back);

  const int burst_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mutex_;
  std::chrono::steady_clock::time_point window_start_{};
  int lines_in_window_ = 0;
  uint64_t held_back_since_last_line_ = 0;
  uint64_t suppressed_total_ = 0;
};

// A LogRateLimiter per key (a server's "ip:port"): each key gets its own
// `burst` lines per `interval`, so that one flapping server cannot hide the
// lines of another, and one server costs a few lines a second however many
// threads report on it. Keys unused for a minute are forgotten once more
// than 1,024 are held, which bounds the memory whatever the keys.
//
// Owns: its limiters. Threads: any (one short lock per call; call sites are
// error paths).
class KeyedLogRateLimiter {
 public:
  explicit KeyedLogRateLimiter(int burst = 1,
                               std::chrono::milliseconds interval = std::chrono::seconds(1))
      : burst_(burst), interval_(interval) {}
  KeyedLogRateLimiter(const KeyedLogRateLimiter&) = delete;
  KeyedLogRateLimiter& operator=(const KeyedLogRateLimiter&) = delete;

  template <typename MakeText>
  void log(const std::string& key, LogLevel level, MakeText&& make_text) {
    std::lock_guard lock(mutex_);
    limiter_for(key).log(level, std::forward<MakeText>(make_text));
  }
  uint64_t suppressed_total() const;

 private:
  struct Entry {
    std::unique_ptr<LogRateLimiter> limiter;
    std::chrono::steady_clock::time_point last_used;
  };
  // With mutex_ held (the limiter is used under it too).
  LogRateLimiter& limiter_for(const std::string& key);

  const int burst_;
  const std::chrono::milliseconds interval_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  uint64_t suppressed_by_forgotten_ = 0;
};

}  // namespace percore
