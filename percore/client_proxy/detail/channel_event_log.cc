#include <percore/client_proxy/detail/channel_event_log.h>

namespace percore::detail {

void ChannelEventLog::write(HealthLine& line, LogLevel level, const std::string& text,
                            Clock::time_point now) {
  std::string written = prefix_ + text;
  if (line.held_changes > 1)
    written += " (the latest of " + std::to_string(line.held_changes) + " health changes)";
  percore::log(level, written);
  line.last_written = now;
  line.held.clear();
  line.held_changes = 0;
}

void ChannelEventLog::health(const std::string& server, LogLevel level, std::string text) {
  const Clock::time_point now = Clock::now();
  std::lock_guard lock(mutex_);
  if (health_.size() > 1024 && !any_held_) {
    std::erase_if(health_, [&](const auto& item) {
      return now - item.second.last_written >= std::chrono::minutes(1);
    });
  }
  HealthLine& line = health_[server];
  ++line.held_changes;
  if (now - line.last_written >= std::chrono::seconds(1) || line.last_written == Clock::time_point{}) {
    write(line, level, text, now);
    return;
  }
  line.held = std::move(text);
  line.held_level = level;
  any_held_ = true;
}

void ChannelEventLog::flush() {
  const Clock::time_point now = Clock::now();
  std::lock_guard lock(mutex_);
  if (!any_held_)
    return;
  any_held_ = false;
  for (auto& [server, line] : health_) {
    if (line.held.empty())
      continue;
    if (now - line.last_written >= std::chrono::seconds(1)) {
      const std::string text = std::move(line.held);
      write(line, line.held_level, text, now);
    } else {
      any_held_ = true;
    }
  }
}

}  // namespace percore::detail
