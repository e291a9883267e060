#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace percore {

// Who a connection's peer proved to be (brpc's AuthContext): filled by
// Authenticator::VerifyCredential, then readable by every handler of the
// connection's calls (ServerController::auth_context()).
struct AuthContext {
  std::string user{};
  std::string group{};
  std::string roles{};
  std::string starter{};
  bool is_service = false;
};

// Call authentication, brpc's Authenticator: the client proves who it is on
// each new connection's first request (baidu_std's RpcMeta field 7,
// authentication_data; HTTP's "Authorization: Bearer <credential>"), and the
// server verifies it before it serves anything on the connection.
//
// The same object may serve many connections, Channels and Servers at once:
// both methods are called from the client's send threads and the server's
// I/O threads concurrently, and must be thread-safe; they run on the I/O
// path, so they must be quick (no blocking call to an identity service).
class Authenticator {
 public:
  virtual ~Authenticator() = default;

  // Client: the credential to send. Returns 0 on success; any other value
  // fails the connection (its calls end 1004 with `*credential` as the
  // reason, which must then not hold a secret).
  virtual int GenerateCredential(std::string* credential) const = 0;

  // Server: whether `credential`, sent by `client_address` ("ip:port"), is
  // valid. Returns 0 if so, filling `*context` (never null); otherwise a
  // non-zero value, with a reason that names no secret in `*reason` (never
  // null): it is logged and answered to the peer.
  virtual int VerifyCredential(std::string_view credential, const std::string& client_address,
                               AuthContext* context, std::string* reason) const = 0;
};

// The ready Authenticator for one token shared by a service's clients and
// servers (a bearer token, as gRPC's access tokens). The client sends it as
// it is; the server compares SHA-256 digests in constant time
// (CRYPTO_memcmp), so neither the token's bytes nor its length leak through
// timing. A verified peer's AuthContext has user "token" and is_service.
//
// The token comes from a file or from an environment variable, never from a
// command line (any local user can read /proc/<pid>/cmdline). It is the
// first line of the file (or the variable's value) without trailing
// whitespace; it must be 16 to 4096 bytes of printable ASCII without spaces
// ('!' to '~'), so that it also fits an HTTP Authorization header.
//
// Owns: the token and its digest. Threads: any (immutable).
class TokenAuthenticator final : public Authenticator {
 public:
  // Null, with the reason in *error (which never quotes the token), if the
  // file cannot be read or the token is not valid. A file that group or
  // others may read is refused too (as ssh refuses such a key).
  static std::shared_ptr<TokenAuthenticator> FromFile(const std::string& path,
                                                      std::string* error);
  // From the environment variable `name` (e.g. PERCORE_AUTH_TOKEN).
  static std::shared_ptr<TokenAuthenticator> FromEnvironment(const std::string& name,
                                                             std::string* error);
  // From the token itself (tests, or a secret store of the application's).
  static std::shared_ptr<TokenAuthenticator> FromToken(std::string token, std::string* error);

  int GenerateCredential(std::string* credential) const override;
  int VerifyCredential(std::string_view credential, const std::string& client_address,
                       AuthContext* context, std::string* reason) const override;

 private:
  explicit TokenAuthenticator(std::string token);

  const std::string token_;
  unsigned char digest_[32];
};

}  // namespace percore
