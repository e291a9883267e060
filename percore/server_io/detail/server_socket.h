#pragma once

#include <memory>
#include <string>
#include <utility>

#include <percore/server_io/detail/asio.h>

#include <boost/asio/ssl.hpp>

namespace percore::detail {

// A server connection's byte stream: its TCP socket, or, once the first
// byte opened a TLS handshake (ServerOptions::tls), the same socket inside
// Asio's ssl::stream (OpenSSL). ServerConnection, HttpConnection and
// WebSocketSession read and write through it without knowing which (it is an
// Asio AsyncReadStream and AsyncWriteStream, so Beast runs over it); what
// only the TCP socket can do (options, shutdown, close, ioctl on its
// descriptor) goes to tcp(). Moves with the connection when HTTP or a
// WebSocket takes it over, TLS state and all.
//
// Owns: the socket and the TLS stream around it. Threads: the I/O thread
// that runs its executor (Asio's rule; its owners check it).
class ServerSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using TlsStream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;

  explicit ServerSocket(boost::asio::ip::tcp::socket socket) : socket_(std::move(socket)) {}
  ServerSocket(ServerSocket&&) = default;
  ServerSocket& operator=(ServerSocket&&) = default;

  // From now on the socket is inside TLS (the handshake is the caller's:
  // tls().async_handshake with the bytes already read).
  void start_tls(boost::asio::ssl::context& context);
  bool is_tls() const { return tls_ != nullptr; }
  TlsStream& tls() { return *tls_; }
  // The peer's verified certificate subject, or empty (clear text, or none).
  std::string peer_certificate_subject();
  // TLS bytes received and not yet decrypted (a record not whole yet).
  bool tls_input_pending() const;

  boost::asio::ip::tcp::socket& tcp() { return tls_ != nullptr ? tls_->next_layer() : socket_; }
  const boost::asio::ip::tcp::socket& tcp() const {
    return tls_ != nullptr ? tls_->next_layer() : socket_;
  }
  executor_type get_executor() { return tcp().get_executor(); }

  template <class MutableBuffers, class Handler>
  void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    if (tls_ != nullptr)
      tls_->async_read_some(buffers, std::forward<Handler>(handler));
    else
      socket_.async_read_some(buffers, std::forward<Handler>(handler));
  }
  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    if (tls_ != nullptr)
      tls_->async_write_some(buffers, std::forward<Handler>(handler));
    else
      socket_.async_write_some(buffers, std::forward<Handler>(handler));
  }

 private:
  boost::asio::ip::tcp::socket socket_;  // Moved into tls_ by start_tls().
  std::unique_ptr<TlsStream> tls_;
};

}  // namespace percore::detail
