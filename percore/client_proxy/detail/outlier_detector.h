#pragma once

#include <chrono>
#include <cstdint>

namespace percore::detail {

// Passive outlier detection, after Envoy's (consecutive errors, ejection
// time growing with each ejection, a cap on the share ejected) with
// Finagle's probing before readmission. The policy only: the ConnectionPool
// owns a ServerHealth per server, reports what happens, and applies the
// verdicts (takes an ejected server's connections out of rotation, sends
// the probe).
//
//   in rotation ──K consecutive errors──► ejected ──time up──► probing
//        ▲                                  ▲                     │
//        └──────── probe answered ──────────┼─────────────────────┤
//                                           └── probe unanswered ─┘
//
// An error is a call timing out on the server, or a connection to it that
// broke with calls on it; "consecutive" means with no byte from the server
// in between. A connection found dead (keepalive) ejects its server at once. The k-th ejection in a row lasts
// base_ejection_time * 2^(k-1), capped at max_ejection_time; a server that
// stays in rotation for as long as its last ejection starts again from the
// base. At most max_ejection_percent of the servers (at least one, never
// the last) are ejected at once.
//
// Owns: the count of servers ejected. Threads: one (the send thread, through
// its pool).
class OutlierDetector {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    int consecutive_errors = 5;        // 0: outlier detection off.
    int base_ejection_time_ms = 5000;
    int max_ejection_time_ms = 300000;
    int max_ejection_percent = 10;
  };

  struct ServerHealth {
    enum class State { kInRotation, kEjected, kProbing };
    State state = State::kInRotation;
    int consecutive_errors = 0;
    int ejections_in_a_row = 0;
    int consecutive_errors_at_ejection = 0;  // For the log line.
    Clock::time_point ejected_until{};  // kEjected: when probing may start.
    Clock::duration last_ejection_time{};
    Clock::time_point readmitted_at{};
  };

  explicit OutlierDetector(Options options) : options_(options) {}

  // An error on `server`; `progress`: bytes came from it since its previous
  // error. True if it is to be ejected now (the state is updated; the caller
  // takes its connections out of rotation). `servers`: the servers that
  // could take calls (the share is of these).
  // `decisive` (a connection found dead: silence, then an unanswered
  // health check, is evidence enough): ejected at once if the share allows.
  bool on_error(ServerHealth& server, bool progress, bool decisive, int servers,
                Clock::time_point now);
  // Bytes came from the server: its errors are no longer consecutive.
  static void on_progress(ServerHealth& server) { server.consecutive_errors = 0; }

  // kEjected and its time is up: it becomes kProbing (the caller sends the
  // probe). True if it did.
  bool start_probe(ServerHealth& server, Clock::time_point now);
  // The probe was answered: back in rotation.
  void readmit(ServerHealth& server, Clock::time_point now);
  // The probe went unanswered: ejected again, for longer.
  void probe_failed(ServerHealth& server, Clock::time_point now);
  // The server left the list.
  void forget(ServerHealth& server);

  int ejected() const { return ejected_; }
  // More servers are out than the share allows of `servers` (the list
  // shrank): the caller readmits some.
  bool over_share(int servers) const { return ejected_ > allowed(servers); }
  bool enabled() const { return options_.consecutive_errors > 0; }

 private:
  bool may_eject(int servers) const { return ejected_ < allowed(servers); }
  int allowed(int servers) const;
  void eject(ServerHealth& server, Clock::time_point now);

  const Options options_;
  int ejected_ = 0;  // In kEjected or kProbing.
};

}  // namespace percore::detail
