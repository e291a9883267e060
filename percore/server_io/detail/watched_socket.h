#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <percore/server_io/detail/asio.h>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <percore/server_io/detail/server_socket.h>
#include <percore/server_io/detail/web_socket_frame_watch.h>

namespace percore::detail {

// A TCP socket that shows every byte it reads to a WebSocketFrameWatch
// before handing it on: the next layer of a server's Beast WebSocket.
//  - Once the watch finds a violation, the bytes from the offending frame on
//    are dropped and the next read fails with errc::protocol_error, so Beast
//    never parses what broke the rules and the session closes with the
//    watch's code and reason.
//  - The client's close frame is held back: Beast would answer it at once,
//    before the answers the handler still owes for the messages before it.
//    The read that would take it waits (on_close_held tells the session)
//    until release_close(), when it gets the frame's bytes.
//
// Owns: the socket, the watch, the held close frame and the read waiting
// for it. Threads: its I/O thread (the one running the socket's executor).
class WatchedSocket {
 public:
  using executor_type = boost::asio::ip::tcp::socket::executor_type;
  using next_layer_type = boost::asio::ip::tcp::socket;

  // `max_message_bytes`, `limit_name`: the watch's (WebSocketFrameWatch).
  WatchedSocket(ServerSocket socket, uint64_t max_message_bytes,
                std::string limit_name)
      : socket_(std::move(socket)), watch_(max_message_bytes, std::move(limit_name)) {}

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  // Beast's get_lowest_layer() (its timeouts close the socket) and ours.
  // The TCP socket below any TLS.
  next_layer_type& next_layer() noexcept { return socket_.tcp(); }
  // The byte stream (TLS or clear text): the held close frame goes here.
  ServerSocket& stream() noexcept { return socket_; }
  WebSocketFrameWatch& watch() noexcept { return watch_; }

  // Called (posted) once a read waits on the client's held close frame.
  void set_on_close_held(std::function<void()> callback) { on_close_held_ = std::move(callback); }
  // The waiting read gets the close frame (now, or as soon as it asks).
  void release_close() {
    close_released_ = true;
    if (parked_)
      std::exchange(parked_, nullptr)(/*release=*/true);
  }
  // The session ends: a read still waiting completes, aborted.
  void abort_waiting_read() {
    if (parked_)
      std::exchange(parked_, nullptr)(/*release=*/false);
  }

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
          if (watch_.close_received()) {
            park(std::move(completion), into);
            return;
          }
          socket_.async_read_some(
              into, [this, into, completion = std::move(completion)](
                        boost::system::error_code error, size_t bytes) mutable {
                if (!error && bytes > 0) {
                  const size_t passed = show_watch(into, bytes);
                  if (watch_.close_received() && !watch_.violation())
                    hold(into, passed, bytes);
                  bytes = passed;
                  if (bytes == 0 && watch_.violation()) {
                    error = violation_error();
                  } else if (bytes == 0) {
                    park(std::move(completion), into);  // All of it was the close.
                    return;
                  }
                }
                std::move(completion)(error, bytes);
              });
        },
        handler, buffers);
  }

  template <class ConstBuffers, class Handler>
  void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
    socket_.async_write_some(buffers, std::forward<Handler>(handler));
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

  // Keeps bytes [from, to) of `buffers` (the close frame; a client sends
  // nothing after it, and what it does send is not read).
  template <class MutableBuffers>
  void hold(const MutableBuffers& buffers, size_t from, size_t to) {
    held_.clear();
    size_t offset = 0;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && offset < to; ++it) {
      const boost::asio::mutable_buffer piece = *it;
      const char* data = static_cast<const char*>(piece.data());
      const size_t end = std::min(piece.size(), to - offset);
      const size_t begin = from > offset ? std::min(from - offset, end) : 0;
      held_.append(data + begin, end - begin);
      offset += piece.size();
    }
  }

  // Keeps the read until release_close() (or answers it now if released).
  template <class Completion, class MutableBuffers>
  void park(Completion completion, const MutableBuffers& into) {
    auto shared = std::make_shared<Completion>(std::move(completion));
    parked_ = [this, shared, into](bool release) {
      boost::asio::post(socket_.get_executor(), [this, shared, into, release] {
        if (!release) {
          std::move (*shared)(boost::asio::error::operation_aborted, 0);
          return;
        }
        if (held_.empty()) {  // Beast took the close: nothing else is read.
          std::move (*shared)(boost::asio::error::eof, 0);
          return;
        }
        const size_t copied = boost::asio::buffer_copy(into, boost::asio::buffer(held_));
        held_.erase(0, copied);
        std::move (*shared)(boost::system::error_code(), copied);
      });
    };
    if (close_released_) {
      std::exchange(parked_, nullptr)(/*release=*/true);
    } else if (on_close_held_) {
      boost::asio::post(socket_.get_executor(), on_close_held_);
    }
  }

  ServerSocket socket_;
  WebSocketFrameWatch watch_;
  std::string held_;  // The client's close frame, until Beast reads it.
  std::function<void()> on_close_held_;
  std::function<void(bool release)> parked_;
  bool close_released_ = false;
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
