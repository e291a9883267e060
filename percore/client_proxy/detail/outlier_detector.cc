#include <percore/client_proxy/detail/outlier_detector.h>

#include <algorithm>

namespace percore::detail {

bool OutlierDetector::on_error(ServerHealth& server, bool progress, bool decisive, int servers,
                               Clock::time_point now) {
  if (!enabled())
    return false;
  // Out of rotation, errors of calls placed before are no news: only the
  // probe decides.
  if (server.state != ServerHealth::State::kInRotation)
    return false;
  server.consecutive_errors = progress ? 1 : server.consecutive_errors + 1;
  if (decisive)
    server.consecutive_errors = std::max(server.consecutive_errors, options_.consecutive_errors);
  if (server.consecutive_errors < options_.consecutive_errors || !may_eject(servers))
    return false;
  ++ejected_;
  eject(server, now);
  return true;
}

int OutlierDetector::allowed(int servers) const {
  if (servers < 2)
    return 0;  // Never the last server: an ejected one is no better than none.
  return std::min(std::max(1, servers * options_.max_ejection_percent / 100), servers - 1);
}

void OutlierDetector::eject(ServerHealth& server, Clock::time_point now) {
  // A server that stayed in rotation as long as it was last out starts again.
  if (server.ejections_in_a_row > 0 && now - server.readmitted_at >= server.last_ejection_time &&
      server.state == ServerHealth::State::kInRotation) {
    server.ejections_in_a_row = 0;
  }
  ++server.ejections_in_a_row;
  const int64_t base = std::max(1, options_.base_ejection_time_ms);
  const int64_t cap = std::max<int64_t>(base, options_.max_ejection_time_ms);
  int64_t ms = base;
  for (int i = 1; i < server.ejections_in_a_row && ms < cap; ++i)
    ms *= 2;
  server.last_ejection_time = std::chrono::milliseconds(std::min(ms, cap));
  server.ejected_until = now + server.last_ejection_time;
  server.state = ServerHealth::State::kEjected;
  server.consecutive_errors_at_ejection = server.consecutive_errors;
  server.consecutive_errors = 0;
}

bool OutlierDetector::start_probe(ServerHealth& server, Clock::time_point now) {
  if (server.state != ServerHealth::State::kEjected || now < server.ejected_until)
    return false;
  server.state = ServerHealth::State::kProbing;
  return true;
}

void OutlierDetector::readmit(ServerHealth& server, Clock::time_point now) {
  if (server.state == ServerHealth::State::kInRotation)
    return;
  --ejected_;
  server.state = ServerHealth::State::kInRotation;
  server.consecutive_errors = 0;
  server.readmitted_at = now;
}

void OutlierDetector::probe_failed(ServerHealth& server, Clock::time_point now) {
  if (server.state != ServerHealth::State::kProbing)
    return;
  eject(server, now);
}

void OutlierDetector::forget(ServerHealth& server) {
  if (server.state != ServerHealth::State::kInRotation)
    --ejected_;
  server.state = ServerHealth::State::kInRotation;
}

}  // namespace percore::detail
