#include <percore/server_io/detail/server_socket.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <percore/base/detail/tls_context.h>

namespace percore::detail {

void ServerSocket::start_tls(boost::asio::ssl::context& context) {
  tls_ = std::make_unique<TlsStream>(std::move(socket_), context);
}

bool ServerSocket::tls_input_pending() const {
  if (tls_ == nullptr)
    return false;
  SSL* ssl = const_cast<TlsStream&>(*tls_).native_handle();
  return SSL_has_pending(ssl) == 1 || BIO_ctrl_pending(SSL_get_rbio(ssl)) > 0;
}

std::string ServerSocket::peer_certificate_subject() {
  return tls_ != nullptr ? detail::peer_certificate_subject(tls_->native_handle()) : std::string();
}

}  // namespace percore::detail
