#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace percore {

// The one error enum of percore. The numbers are brpc's (brpc/errno.proto and
// the two system errno values it reports), so that a percore peer and a brpc
// peer read each other's error_code the same way.
enum class ErrorCode : int32_t {
  kOk = 0,
  // System errno values reported by the client.
  kDeadlock = 35,   // EDEADLK: a synchronous call from a percore client thread.
  kHostDown = 112,  // EHOSTDOWN: no server is available.
  kCanceled = 125,  // ECANCELED: the call's Channel is being destroyed.
  // brpc's RPC errors.
  kNoService = 1001,           // ENOSERVICE
  kNoMethod = 1002,            // ENOMETHOD
  kBadRequest = 1003,          // EREQUEST
  kUnauthorized = 1004,        // ERPCAUTH
  kTimedOut = 1008,            // ERPCTIMEDOUT
  kBrokenConnection = 1009,    // EFAILEDSOCKET
  kOvercrowded = 1011,         // EOVERCROWDED
  kTls = 1016,                 // ESSL
  kInternal = 2001,            // EINTERNAL
  kBadResponse = 2002,         // ERESPONSE
  kServerStopping = 2003,      // ELOGOFF
  kServerLimitReached = 2004,  // ELIMIT
};

// How a percore server's refusal of a connection's credential begins its
// 1004 text ("authentication failed: <reason>"): a percore client that reads
// it knows the server is closing that connection (a handler's own 1004 for a
// permission does not begin so), and ends the other calls on it 1004 too.
inline constexpr std::string_view kAuthenticationFailedText = "authentication failed: ";

// How a client call ends. A percore::Channel ends every call exactly once,
// with Controller::ErrorCode() one of (this is the one list; channel.h and
// the README refer to it):
//   0     the server answered, the response parsed.
//   35    (EDEADLK) a synchronous call made on a thread of a percore client
//         runtime: a send or receive thread, where inline callbacks run
//         (CompletionMode::kInlineCallback). It could wait for the very
//         thread it blocks, so it fails at once; nothing was sent.
//   112   no server could be reached: the server list is empty, or every
//         server refused or timed out its last connect (in back-off), or is
//         stopping. Immediate; a call waits instead for a connection that is
//         connecting.
//   125   the Channel is being destroyed.
//   1003  the request (message + attachment) exceeds max_body_bytes; nothing
//         was sent.
//   1008  the deadline passed (ChannelOptions / Controller timeout_ms; 0
//         fails at once), whether the call was queued, sent or being resent.
//   1009  the connection broke after the request was sent (the server may
//         have run it: sent again only as max_retry allows), or was found
//         dead (keepalive); or broke before, and max_resends or the retry
//         budget refused to send it again.
//   1011  the group's in-flight limit (max_inflight_per_group) is reached.
//   1016  (ESSL) the TLS handshake with the server failed (ChannelOptions::
//         tls): its certificate did not verify (the text says why: expired,
//         not signed by a trusted CA, another name), the server refused the
//         client's certificate, or it does not speak TLS. Not sent again
//         on that server; calls fail so, fast, until it is reconnected
//         after back-off.
//   2001  Controller::SetFailed by the application; CallMethod on a Channel
//         that is not initialized.
//   2002  the response does not parse, or uses a compression percore does not
//         support.
//   any code the server answered: 1001 / 1002 (unknown service / method),
//         1003 (the server's body limit), 2001, 2004, or an application's own
//         (ServerController::SetFailed(code, format, ...)).
//   2003  the server is stopping (it did not run the call), and no other
//         server could take it, or max_resends or the retry budget refused
//         to send it again. Otherwise a 2003 answer sends the call to
//         another server (README, "Retries").

// Every code above, in a fixed order; counters index arrays by this order.
inline constexpr ErrorCode kAllErrorCodes[] = {
    ErrorCode::kOk,
    ErrorCode::kDeadlock,
    ErrorCode::kHostDown,
    ErrorCode::kCanceled,
    ErrorCode::kNoService,
    ErrorCode::kNoMethod,
    ErrorCode::kBadRequest,
    ErrorCode::kUnauthorized,
    ErrorCode::kTimedOut,
    ErrorCode::kBrokenConnection,
    ErrorCode::kOvercrowded,
    ErrorCode::kTls,
    ErrorCode::kInternal,
    ErrorCode::kBadResponse,
    ErrorCode::kServerStopping,
    ErrorCode::kServerLimitReached,
};
inline constexpr int kErrorCodeCount = sizeof(kAllErrorCodes) / sizeof(kAllErrorCodes[0]);

// The key under which stats (ServerStats::answers_by_code,
// ChannelGroupStats::ends_by_code) count codes outside the enum once 16
// distinct ones have their own keys: INT32_MIN, so that no likely
// application code (-1 included) shares it.
inline constexpr int32_t kOtherErrorCodes = std::numeric_limits<int32_t>::min();

// Position of `code` in kAllErrorCodes, or -1 for a number percore does not
// define (a peer may send any int32).
int error_code_index(int32_t code);

// brpc's short name, such as "ERPCTIMEDOUT", for a code of the enum. Any
// other number was chosen by an application (ServerController::SetFailed
// with its own code) or is one of brpc's that percore does not define:
// "application error 5000", or "brpc error 1005" for numbers in brpc's
// ranges (1000-1999, 2000-2999).
std::string error_code_name(int32_t code);

// A one-line human description, as a default error_text.
std::string_view error_code_description(int32_t code);

// The code a server answers its own caller with when a call it made on that
// caller's behalf (a pipeline stage, a gateway) ended with `downstream`: the
// same code, except 2003, which would tell the caller that *this* server is
// stopping (its Channel would send the call elsewhere and drain this
// server): it becomes 112, no server could be reached.
inline int32_t code_for_caller(int32_t downstream) {
  return downstream == static_cast<int32_t>(ErrorCode::kServerStopping)
             ? static_cast<int32_t>(ErrorCode::kHostDown)
             : downstream;
}

inline int32_t to_int(ErrorCode code) {
  return static_cast<int32_t>(code);
}

}  // namespace percore
