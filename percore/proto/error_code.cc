#include <percore/proto/error_code.h>

namespace percore {
namespace {

struct ErrorCodeInfo {
  ErrorCode code;
  std::string_view name;
  std::string_view description;
};

constexpr ErrorCodeInfo kInfo[] = {
    {ErrorCode::kOk, "OK", "success"},
    {ErrorCode::kDeadlock, "EDEADLK",
     "a synchronous call from a percore client thread would wait for itself"},
    {ErrorCode::kHostDown, "EHOSTDOWN", "no server is available"},
    {ErrorCode::kCanceled, "ECANCELED", "call cancelled: its channel is being destroyed"},
    {ErrorCode::kNoService, "ENOSERVICE", "no such service"},
    {ErrorCode::kNoMethod, "ENOMETHOD", "no such method"},
    {ErrorCode::kBadRequest, "EREQUEST", "bad request"},
    {ErrorCode::kUnauthorized, "ERPCAUTH", "unauthorized"},
    {ErrorCode::kTimedOut, "ERPCTIMEDOUT", "timed out"},
    {ErrorCode::kBrokenConnection, "EFAILEDSOCKET", "broken connection"},
    {ErrorCode::kOvercrowded, "EOVERCROWDED", "too many calls in flight"},
    {ErrorCode::kTls, "ESSL", "TLS handshake failed"},
    {ErrorCode::kInternal, "EINTERNAL", "internal error"},
    {ErrorCode::kBadResponse, "ERESPONSE", "bad response"},
    {ErrorCode::kServerStopping, "ELOGOFF", "server is stopping"},
    {ErrorCode::kServerLimitReached, "ELIMIT", "server limit reached"},
};
static_assert(sizeof(kInfo) / sizeof(kInfo[0]) == kErrorCodeCount);

}  // namespace

int error_code_index(int32_t code) {
  for (int i = 0; i < kErrorCodeCount; ++i) {
    if (to_int(kAllErrorCodes[i]) == code)
      return i;
  }
  return -1;
}

std::string error_code_name(int32_t code) {
  const int index = error_code_index(code);
  if (index >= 0)
    return std::string(kInfo[index].name);
  // Piece by piece: GCC 12's -Wrestrict misfires on "literal" + std::string.
  std::string name = code >= 1000 && code < 3000 ? "brpc error " : "application error ";
  name += std::to_string(code);
  return name;
}

std::string_view error_code_description(int32_t code) {
  const int index = error_code_index(code);
  return index < 0 ? std::string_view("unknown error") : kInfo[index].description;
}

}  // namespace percore
