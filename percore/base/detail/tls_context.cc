#include <percore/base/detail/tls_context.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

namespace percore::detail {

std::string take_tls_errors() {
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    char buffer[256];
    ERR_error_string_n(code, buffer, sizeof(buffer));
    if (!text.empty())
      text += "; ";
    text += buffer;
  }
  return text.empty() ? std::string("no OpenSSL error recorded") : text;
}

std::shared_ptr<TlsContext> TlsContext::create(const TlsOptions& options, Side side,
                                               std::string* error) {
  auto fail = [&](const std::string& what) -> std::shared_ptr<TlsContext> {
    if (error != nullptr)
      *error = what + ": " + take_tls_errors();
    return nullptr;
  };
  ERR_clear_error();
  SSL_CTX* context = SSL_CTX_new(side == Side::kServer ? TLS_server_method() : TLS_client_method());
  if (context == nullptr)
    return fail("cannot make a TLS context");
  // Owned from here: freed on every path below.
  std::shared_ptr<TlsContext> made(new TlsContext(context, options, side));
  SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION);
  // Writes may be retried with a moved buffer (the buffer is ours, and
  // gathered anew): OpenSSL must not insist on the same address.
  SSL_CTX_set_mode(context, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                SSL_MODE_RELEASE_BUFFERS);
  const bool has_certificate = !options.certificate_file.empty();
  if (has_certificate != !options.private_key_file.empty()) {
    if (error != nullptr)
      *error = "certificate_file and private_key_file go together";
    return nullptr;
  }
  if (side == Side::kServer && !has_certificate) {
    if (error != nullptr)
      *error = "a TLS server needs certificate_file and private_key_file";
    return nullptr;
  }
  // A key protected by a passphrase is refused, never prompted for on the
  // terminal (OpenSSL's default): a server cannot answer a prompt.
  bool passphrase_asked = false;
  SSL_CTX_set_default_passwd_cb_userdata(context, &passphrase_asked);
  SSL_CTX_set_default_passwd_cb(context, [](char*, int, int, void* asked) {
    *static_cast<bool*>(asked) = true;
    return 0;
  });
  if (has_certificate) {
    if (SSL_CTX_use_certificate_chain_file(context, options.certificate_file.c_str()) != 1)
      return fail("cannot use the certificate in " + options.certificate_file);
    if (SSL_CTX_use_PrivateKey_file(context, options.private_key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
      if (passphrase_asked) {
        ERR_clear_error();
        if (error != nullptr)
          *error = "the private key in " + options.private_key_file +
                   " is encrypted: give it unencrypted (mode 600), percore does not prompt";
        return nullptr;
      }
      return fail("cannot use the private key in " + options.private_key_file);
    }
    if (SSL_CTX_check_private_key(context) != 1)
      return fail("the private key in " + options.private_key_file +
                  " does not match the certificate in " + options.certificate_file);
  }
  SSL_CTX_set_default_passwd_cb(context, nullptr);
  SSL_CTX_set_default_passwd_cb_userdata(context, nullptr);
  if (side == Side::kServer) {
    // Sessions are resumable only within this context: OpenSSL refuses to
    // resume one (an "internal error" alert) when a client certificate is
    // verified and no session id context is set.
    static constexpr unsigned char kSessionContext[] = "percore";
    SSL_CTX_set_session_id_context(context, kSessionContext, sizeof(kSessionContext) - 1);
  }
  const bool verify = side == Side::kClient ? options.verify_peer : options.verify_client;
  if (verify) {
    const int loaded = options.ca_file.empty()
                           ? SSL_CTX_set_default_verify_paths(context)
                           : SSL_CTX_load_verify_locations(context, options.ca_file.c_str(), nullptr);
    if (loaded != 1)
      return fail("cannot load the trusted CAs" +
                  (options.ca_file.empty() ? std::string() : " in " + options.ca_file));
    SSL_CTX_set_verify(context,
                       side == Side::kServer ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                             : SSL_VERIFY_PEER,
                       nullptr);
  } else {
    SSL_CTX_set_verify(context, SSL_VERIFY_NONE, nullptr);
  }
  return made;
}

std::string tls_failure_text(SSL* ssl) {
  const long verified = SSL_get_verify_result(ssl);
  if (verified != X509_V_OK) {
    ERR_clear_error();
    return std::string("certificate verify failed (") +
           X509_verify_cert_error_string(verified) + ")";
  }
  // OpenSSL's reason strings alone ("tlsv13 alert certificate required"):
  // the codes and library names say nothing to a person.
  std::string text;
  while (const unsigned long code = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(code);
    if (!text.empty())
      text += "; ";
    text += reason != nullptr ? reason : "unknown OpenSSL error";
  }
  return text.empty() ? std::string("the connection ended during the handshake") : text;
}

std::string peer_certificate_subject(SSL* ssl) {
  X509* certificate = SSL_get1_peer_certificate(ssl);
  if (certificate == nullptr)
    return std::string();
  char line[512];
  X509_NAME_oneline(X509_get_subject_name(certificate), line, sizeof(line));
  X509_free(certificate);
  return line;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(context_);
}

}  // namespace percore::detail
