#include <percore/client_proxy/detail/tls_session.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <climits>

#include <percore/base/detail/tls_context.h>

namespace percore::detail {
namespace {

// A TLS record's largest plaintext (RFC 8446, 5.1): what one SSL_write of
// gathered chunks takes.
constexpr size_t kRecordBytes = 16 * 1024;
// Decrypted per SSL_read.
constexpr size_t kReadBytes = 16 * 1024;

bool is_ip_address(const std::string& host) {
  unsigned char address[16];
  return inet_pton(AF_INET, host.c_str(), address) == 1 ||
         inet_pton(AF_INET6, host.c_str(), address) == 1;
}

// "10.0.0.7:8000" → "10.0.0.7"; "[::1]:8000" → "::1".
std::string host_of(const std::string& remote) {
  const size_t colon = remote.rfind(':');
  std::string host = colon == std::string::npos ? remote : remote.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

std::unique_ptr<TlsSession> TlsSession::create(const TlsContext& context, const std::string& remote,
                                               std::string* error) {
  ERR_clear_error();
  SSL* ssl = SSL_new(context.native());
  BIO* network_in = BIO_new(BIO_s_mem());
  BIO* network_out = BIO_new(BIO_s_mem());
  if (ssl == nullptr || network_in == nullptr || network_out == nullptr) {
    SSL_free(ssl);
    BIO_free(network_in);
    BIO_free(network_out);
    *error = "cannot make a TLS session: " + take_tls_errors();
    return nullptr;
  }
  // A memory BIO with nothing in it says "retry", not end of file.
  BIO_set_mem_eof_return(network_in, -1);
  BIO_set_mem_eof_return(network_out, -1);
  SSL_set_bio(ssl, network_in, network_out);  // The SSL object owns them now.
  SSL_set_connect_state(ssl);
  const TlsOptions& options = context.options();
  const std::string name = options.server_name.empty() ? host_of(remote) : options.server_name;
  const bool by_address = is_ip_address(name);
  // SNI carries names only (RFC 6066, 3).
  if (!by_address)
    SSL_set_tlsext_host_name(ssl, name.c_str());
  if (options.verify_peer) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    const int set = by_address ? X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str())
                               : X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    if (set != 1) {
      SSL_free(ssl);
      *error = "cannot check the server's name '" + name + "': " + take_tls_errors();
      return nullptr;
    }
  }
  return std::unique_ptr<TlsSession>(new TlsSession(ssl, network_in, network_out, remote));
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);  // Frees the BIOs too.
}

void TlsSession::take_output(GatherBuffer& cipher) {
  const size_t pending = BIO_ctrl_pending(network_out_);
  if (pending == 0)
    return;
  char* into = cipher.append_space(pending);
  // A memory BIO gives all it holds.
  BIO_read(network_out_, into, static_cast<int>(pending));
}

std::string TlsSession::failure_text() {
  return "TLS " + std::string(handshake_done_ ? "connection" : "handshake") + " with " + remote_ +
         " failed: " + tls_failure_text(ssl_);
}

bool TlsSession::advance_handshake(std::string* failure) {
  if (handshake_done_)
    return true;
  const int result = SSL_do_handshake(ssl_);
  if (result == 1) {
    handshake_done_ = true;
    return true;
  }
  const int error = SSL_get_error(ssl_, result);
  if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
    return true;  // Waits for the peer's next flight.
  *failure = failure_text();
  return false;
}

TlsSession::Status TlsSession::encrypt(GatherBuffer& plain, GatherBuffer& cipher, size_t* taken,
                                       std::string* failure) {
  std::lock_guard lock(mutex_);
  *taken = 0;
  ERR_clear_error();
  if (!advance_handshake(failure)) {
    take_output(cipher);  // The alert, if any.
    return Status::kFailed;
  }
  while (handshake_done_ && !plain.empty()) {
    // Small chunks (a call's head, a message) gathered into one record: one
    // seal, one record header, instead of one per chunk.
    std::string_view chunk = plain.chunk(0);
    if (chunk.size() < kRecordBytes && plain.chunk_count() > 1) {
      staging_.clear();
      for (size_t i = 0; i < plain.chunk_count() && staging_.size() < kRecordBytes; ++i) {
        const std::string_view next = plain.chunk(i);
        staging_.append(next.substr(0, kRecordBytes - staging_.size()));
      }
      chunk = staging_;
    }
    const int length = static_cast<int>(std::min<size_t>(chunk.size(), INT_MAX));
    const int written = SSL_write(ssl_, chunk.data(), length);
    if (written <= 0) {
      const int error = SSL_get_error(ssl_, written);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
        break;  // A renegotiation-like wait for the peer (TLS 1.2); retried later.
      take_output(cipher);
      *failure = failure_text();
      return Status::kFailed;
    }
    plain.consume(static_cast<size_t>(written));
    *taken += static_cast<size_t>(written);
    take_output(cipher);
  }
  take_output(cipher);
  return Status::kOk;
}

bool TlsSession::handshake_done() {
  std::lock_guard lock(mutex_);
  return handshake_done_;
}

TlsSession::Status TlsSession::decrypt(std::string_view bytes, FrameDecoder& decoder,
                                       size_t* plain_bytes, bool* wants_flush,
                                       std::string* failure) {
  std::lock_guard lock(mutex_);
  *plain_bytes = 0;
  *wants_flush = false;
  ERR_clear_error();
  // A memory BIO takes everything.
  BIO_write(network_in_, bytes.data(), static_cast<int>(bytes.size()));
  const bool was_done = handshake_done_;
  Status status = Status::kOk;
  if (!advance_handshake(failure))
    status = Status::kFailed;
  while (status == Status::kOk && handshake_done_) {
    const std::span<char> space = decoder.prepare(kReadBytes);
    const int length = static_cast<int>(std::min<size_t>(space.size(), INT_MAX));
    const int read = SSL_read(ssl_, space.data(), length);
    if (read > 0) {
      decoder.commit(static_cast<size_t>(read));
      *plain_bytes += static_cast<size_t>(read);
      continue;
    }
    const int error = SSL_get_error(ssl_, read);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE)
      break;
    if (error == SSL_ERROR_ZERO_RETURN) {
      status = Status::kClosed;
    } else {
      *failure = failure_text();
      status = Status::kFailed;
    }
  }
  *wants_flush = BIO_ctrl_pending(network_out_) > 0 || (handshake_done_ && !was_done);
  return status;
}

}  // namespace percore::detail
