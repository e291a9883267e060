#include <percore/base/log.h>

#include <percore/base/utf8.h>

#include <spdlog/logger.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace percore {
namespace {

std::shared_ptr<spdlog::logger> make_logger() {
  constexpr const char* kName = "percore";
  if (std::shared_ptr<spdlog::logger> registered = spdlog::get(kName))
    return registered;
  auto logger =
      std::make_shared<spdlog::logger>(kName, std::make_shared<spdlog::sinks::stderr_sink_mt>());
  try {
    spdlog::register_logger(logger);
  } catch (const spdlog::spdlog_ex&) {
    // Registered by the application meanwhile: use its logger.
    if (std::shared_ptr<spdlog::logger> registered = spdlog::get(kName))
      return registered;
  }
  return logger;
}

spdlog::logger& percore_logger() {
  static const std::shared_ptr<spdlog::logger> logger = make_logger();
  return *logger;
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarning:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
  }
  return spdlog::level::err;
}

}  // namespace

void log(LogLevel level, std::string_view text) {
  // Texts carry what peers sent (paths, queries, parse errors): a byte that
  // could forge a line or drive a terminal is escaped (printable_utf8).
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7F) {
      percore_logger().log(to_spdlog(level), "{}", printable_utf8(text));
      return;
    }
  }
  percore_logger().log(to_spdlog(level), "{}", text);
}

bool LogRateLimiter::admit(uint64_t& held_back) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lock(mutex_);
  if (now - window_start_ >= interval_) {
    window_start_ = now;
    lines_in_window_ = 0;
  }
  if (lines_in_window_ >= burst_) {
    ++held_back_since_last_line_;
    ++suppressed_total_;
    return false;
  }
  ++lines_in_window_;
  held_back = held_back_since_last_line_;
  held_back_since_last_line_ = 0;
  return true;
}

uint64_t LogRateLimiter::suppressed_total() const {
  std::lock_guard lock(mutex_);
  return suppressed_total_;
}

std::string LogRateLimiter::with_suppressed_count(std::string text, uint64_t held_back) {
  if (held_back > 0) {
    text += " (" + std::to_string(held_back) + " similar line" + (held_back == 1 ? "" : "s") +
            " suppressed)";
  }
  return text;
}

LogRateLimiter& KeyedLogRateLimiter::limiter_for(const std::string& key) {
  const auto now = std::chrono::steady_clock::now();
  if (entries_.size() > 1024) {
    std::erase_if(entries_, [&](const auto& item) {
      if (now - item.second.last_used < std::chrono::minutes(1))
        return false;
      suppressed_by_forgotten_ += item.second.limiter->suppressed_total();
      return true;
    });
  }
  Entry& entry = entries_[key];
  if (entry.limiter == nullptr)
    entry.limiter = std::make_unique<LogRateLimiter>(burst_, interval_);
  entry.last_used = now;
  return *entry.limiter;
}

uint64_t KeyedLogRateLimiter::suppressed_total() const {
  std::lock_guard lock(mutex_);
  uint64_t total = suppressed_by_forgotten_;
  for (const auto& [key, entry] : entries_)
    total += entry.limiter->suppressed_total();
  return total;
}

}  // namespace percore
