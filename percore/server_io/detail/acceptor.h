#pragma once

#include <string>
#include <vector>

#include <percore/server_io/detail/asio.h>

namespace percore::detail {

class IoThread;
struct ServerCore;

// The listening socket. Accepts on its own io_context (an I/O thread's) and
// hands each connection to the next I/O thread in turn, as muduo does:
// balanced even with a few long-lived connections. No SO_REUSEPORT, so a
// second server on the same port fails to bind instead of sharing it.
//
// Owns: the listening socket. Does not own the I/O threads.
// Threads: open() on the control thread before the I/O threads start
// accepting; everything else on the io_context's thread, except close(),
// which posts there and waits.
class Acceptor {
 public:
  Acceptor(boost::asio::io_context& context, std::vector<IoThread*> targets, ServerCore& core);

  // Resolves "host:port" and binds. False, with the reason in *error, on
  // failure.
  bool open(const std::string& listen_address, std::string* error);
  int port() const { return port_; }
  void start();
  // Stops accepting; returns once the socket is closed. Control thread.
  void close();

 private:
  void accept_next();

  boost::asio::io_context& context_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer retry_timer_;
  std::vector<IoThread*> targets_;
  ServerCore& core_;
  size_t next_target_ = 0;
  int port_ = 0;
};

}  // namespace percore::detail
