#pragma once

#include <memory>
#include <string>

#include <percore/base/tls_options.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace percore::detail {

// One side's OpenSSL context, made from TlsOptions once (Server::Start,
// Channel::Init) and shared by every connection of that side: TLS 1.2 at
// least, OpenSSL's default ciphers, the certificate and key checked to
// match, the trust store and verification mode set.
//
// Owns: the SSL_CTX. Threads: any (OpenSSL's SSL_CTX is safe to share once
// configured; SSL_new from many threads).
class TlsContext {
 public:
  enum class Side { kServer, kClient };

  // Null, with the reason in *error (the file, and OpenSSL's words), when a
  // file cannot be read or the key does not match the certificate.
  static std::shared_ptr<TlsContext> create(const TlsOptions& options, Side side,
                                            std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const { return context_; }
  const TlsOptions& options() const { return options_; }
  Side side() const { return side_; }

 private:
  TlsContext(SSL_CTX* context, TlsOptions options, Side side)
      : context_(context), options_(std::move(options)), side_(side) {}

  SSL_CTX* const context_;
  const TlsOptions options_;
  const Side side_;
};

// OpenSSL's error queue of this thread as one line (emptied), e.g.
// "error:0A000086:SSL routines::certificate verify failed".
std::string take_tls_errors();

// Why `ssl`'s handshake failed, for a person: the certificate check's
// reason when the peer's certificate did not verify ("certificate verify
// failed (certificate has expired)"), else OpenSSL's error queue (emptied).
std::string tls_failure_text(SSL* ssl);

// The subject of the peer's verified certificate, one line
// ("/CN=client-a/O=example"); empty when it sent none.
std::string peer_certificate_subject(SSL* ssl);

}  // namespace percore::detail
