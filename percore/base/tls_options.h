#pragma once

#include <string>

namespace percore {

// TLS on a percore connection (OpenSSL, Debian's libssl). The same struct
// configures a server (ServerOptions::tls) and a client
// (ChannelOptions::tls); fields say which side reads them. Files are PEM;
// private keys unencrypted (an encrypted one is refused, never prompted for).
// docs/SECURITY.md, "TLS".
struct TlsOptions {
  // Server: its certificate chain and private key (required).
  // Client: a client certificate and key for mutual TLS (optional: both
  // empty sends none).
  std::string certificate_file{};
  std::string private_key_file{};
  // The CAs trusted to sign the peer's certificate. Client: verifies the
  // server (empty: the system's store, /etc/ssl/certs). Server: verifies
  // client certificates (empty with verify_client: the system's store).
  std::string ca_file{};
  // Client: verify the server's certificate (chain, validity dates, name).
  // Default true; false accepts any server (tests, never production).
  bool verify_peer = true;
  // Client: the name the server's certificate must carry (SNI and the
  // hostname check, RFC 6125). Empty: the host of the address dialled (an
  // IP address is checked against the certificate's IP SANs).
  std::string server_name{};
  // Server: ask clients for a certificate and refuse those without a valid
  // one (mutual TLS), clear-text clients included (as with tls_required);
  // the handler sees its subject (ServerController::peer_certificate_subject()).
  // Default false.
  bool verify_client = false;
};

}  // namespace percore
