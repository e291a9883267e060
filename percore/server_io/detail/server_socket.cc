#include <percore/server_io/detail/server_socket.h>

#include <percore/base/detail/tls_context.h>

namespace percore::detail {

void ServerSocket::start_tls(boost::asio::ssl::context& context) {
  tls_ = std::make_unique<TlsStream>(std::move(socket_), context);
}

std::string ServerSocket::peer_certificate_subject() {
  return tls_ != nullptr ? detail::peer_certificate_subject(tls_->native_handle()) : std::string();
}

}  // namespace percore::detail
