#pragma once

#include <cstddef>
#include <string>
#include <utility>

#include <percore/server_io/detail/asio.h>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <percore/server_io/detail/web_socket_frame_watch.h>

namespace percore::detail {

// A TCP socket that shows every byte it reads to a WebSocketFrameWatch
// before handing it on: the next layer of a server's Beast WebSocket. Once
// the watch finds a violation, the bytes from the offending frame on are
// held back and the next read fails with errc::protocol_error, so Beast never
// parses what broke the rules and the session closes with the watch's code
// and reason.
//
// Owns: the socket and the watch.
// Threads: its I/O thread (the one running the socket's executor).
class WatchedSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using next_layer_type = boost::asio::ip::tcp::socket;

  // `max_message_bytes`, `limit_name`: the watch's (WebSocketFrameWatch).
  WatchedSocket(boost::asio::ip::tcp::socket socket, uint64_t max_message_bytes,
                std::string limit_name)
      : socket_(std::move(socket)), watch_(max_message_bytes, std::move(limit_name)) {}

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  // Beast's get_lowest_layer() (its timeouts close the socket) and ours.
  next_layer_type& next_layer() noexcept { return socket_; }
  WebSocketFrameWatch& watch() noexcept { return watch_; }

  template <class MutableBuffers, class Handler>
  auto async_read_some(const MutableBuffers& buffers, Handler&& handler) {
    return boost::asio::async_initiate<Handler, void(boost::system::error_code, size_t)>(
        [this](auto completion, const MutableBuffers& into) {
          if (watch_.violation()) {
            boost::asio::post(socket_.get_executor(),
                              [completion = std::move(completion)]() mutable {
                                std::move(completion)(violation_error(), 0);
                              });
            return;
          }
          socket_.async_read_some(
              into, [this, into, completion = std::move(completion)](
                        boost::system::error_code error, size_t bytes) mutable {
                if (!error && bytes > 0) {
                  bytes = show_watch(into, bytes);
                  if (bytes == 0)
                    error = violation_error();
                }
                std::move(completion)(error, bytes);
              });
        },
        handler, buffers);
  }

  template <class ConstBuffers, class Handler>
  auto async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    return socket_.async_write_some(buffers, std::forward<Handler>(handler));
  }

  static boost::system::error_code violation_error() {
    return boost::system::errc::make_error_code(boost::system::errc::protocol_error);
  }

 private:
  // The first `bytes` of `buffers` arrived: how many may go on.
  template <class MutableBuffers>
  size_t show_watch(const MutableBuffers& buffers, size_t bytes) {
    const auto now = WebSocketFrameWatch::Clock::now();
    size_t passed = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && passed < bytes; ++it) {
      const boost::asio::mutable_buffer piece = *it;
      const size_t size = std::min(piece.size(), bytes - passed);
      const size_t fine =
          watch_.feed(std::string_view(static_cast<const char*>(piece.data()), size), now);
      passed += fine;
      if (fine < size)
        break;
    }
    return passed;
  }

  boost::asio::ip::tcp::socket socket_;
  WebSocketFrameWatch watch_;
};

// Beast's teardown (found by argument-dependent lookup) is the socket's.
inline void teardown(boost::beast::role_type role, WatchedSocket& socket,
                     boost::system::error_code& error) {
  boost::beast::websocket::teardown(role, socket.next_layer(), error);
}

template <class Handler>
void async_teardown(boost::beast::role_type role, WatchedSocket& socket, Handler&& handler) {
  boost::beast::websocket::async_teardown(role, socket.next_layer(),
                                          std::forward<Handler>(handler));
}

}  // namespace percore::detail
