#pragma once

#include <string>

#include <percore/client_proxy/detail/call_record.h>
#include <percore/client_proxy/detail/retry_budget.h>
#include <percore/client_proxy/detail/route_counters.h>

namespace percore::detail {

// What happens to a call whose attempt failed, decided in one place for
// every path that may send a call again (README, "Retries"):
// - a call that surely did not run (never written before its connection
//   broke, or answered 2003) is sent again at most max_resends times;
// - a written call whose connection broke may have run: it is sent again
//   only while its max_retry allows (percore cannot know a method is
//   idempotent);
// - either way, only while its Channel's retry budget in this group
//   (RetryBudget) has room: a fault that fails every attempt adds a bounded
//   share of requests instead of a storm. (The send thread spends from the
//   budget when the call is queued again, not here.)
// The send thread then avoids the server that failed the call; a server that
// answered 2003 gets no call until it has reconnected, after back-off
// (ConnectionPool), which also paces attempts to one server.
//
// Threads: the send thread (it owns the records' send sides and the routes'
// budgets).
class RetryPolicy {
 public:
  struct Verdict {
    bool send_again = false;
    std::string refusal;  // Why not, for the call's error text.
  };

  // The connection under the call broke; `written`: its bytes had gone out.
  static Verdict after_broken_connection(const CallRecord::Call& call,
                                         CallRecord::SendSide& attempt, bool written,
                                         RetryBudget& budget, RouteCounters& counters) {
    if (!written)
      return resend(call, attempt, budget, counters);
    if (attempt.retries_used >= call.max_retry) {
      if (call.max_retry > 0) {
        RouteCounters::bump(counters.retries_refused_by_limit);
        return Verdict{false, "max_retry (" + std::to_string(call.max_retry) + ") reached"};
      }
      return Verdict{};
    }
    if (!budget.has_room(RetryBudget::Clock::now()))
      return refused_by_budget(counters);
    ++attempt.retries_used;
    return Verdict{true, {}};
  }

  // The server answered 2003 (stopping; brpc's ELOGOFF): the call did not
  // run there.
  static Verdict after_server_stopping(const CallRecord::Call& call,
                                       CallRecord::SendSide& attempt, RetryBudget& budget,
                                       RouteCounters& counters) {
    return resend(call, attempt, budget, counters);
  }

 private:
  static Verdict resend(const CallRecord::Call& call, CallRecord::SendSide& attempt,
                        RetryBudget& budget, RouteCounters& counters) {
    if (attempt.resends_used >= call.max_resends) {
      RouteCounters::bump(counters.retries_refused_by_limit);
      return Verdict{false, "max_resends (" + std::to_string(call.max_resends) + ") reached"};
    }
    if (!budget.has_room(RetryBudget::Clock::now()))
      return refused_by_budget(counters);
    ++attempt.resends_used;
    return Verdict{true, {}};
  }

  static Verdict refused_by_budget(RouteCounters& counters) {
    RouteCounters::bump(counters.retries_refused_by_budget);
    return Verdict{false, "the retry budget is spent (retry_budget_percent, "
                          "retry_budget_min_per_second)"};
  }
};

}  // namespace percore::detail
