#pragma once

#include "client_proxy/detail/call_record.h"

namespace percore::detail {

// What happens to a call whose attempt failed, decided in one place for
// every resend path, so that limits added here hold everywhere.
//
// Threads: the send thread (it owns the records' send sides).
class RetryPolicy {
 public:
  enum class Decision {
    kResendElsewhere,  // Send it again, avoiding the server that failed it.
    kFail,             // End it with the failure (1009).
  };

  // The connection under the call broke. A call never written cannot have
  // run anywhere: always resend it. A written one may have run: resend only
  // while the call's max_retry allows (percore cannot know a method is
  // idempotent), counting the retry.
  static Decision after_broken_connection(const CallRecord::Call& call,
                                          CallRecord::SendSide& attempt, bool written) {
    if (!written)
      return Decision::kResendElsewhere;
    if (attempt.retries_used < call.max_retry) {
      ++attempt.retries_used;
      return Decision::kResendElsewhere;
    }
    return Decision::kFail;
  }

  // The server answered 2003 (stopping; brpc's ELOGOFF): the call did not
  // run there, so it is always sent elsewhere within its deadline.
  static Decision after_server_stopping() { return Decision::kResendElsewhere; }
};

}  // namespace percore::detail
