#include <percore/server_io/detail/acceptor.h>

#include <future>

#include <percore/base/log.h>
#include <percore/base/net_address.h>
#include <percore/server_io/detail/io_thread.h>
#include <percore/server_io/detail/server_core.h>

namespace percore::detail {

Acceptor::Acceptor(boost::asio::io_context& context, std::vector<IoThread*> targets,
                   ServerCore& core)
    : context_(context),
      acceptor_(context),
      retry_timer_(context),
      targets_(std::move(targets)),
      core_(core) {}

bool Acceptor::open(const std::string& listen_address, std::string* error) {
  auto fail = [&](const std::string& reason) {
    if (error != nullptr)
      *error = "cannot listen on " + listen_address + ": " + reason;
    return false;
  };
  const std::optional<HostPort> host_port = split_host_port(listen_address);
  if (!host_port)
    return fail("expected HOST:PORT");
  const std::string& host = host_port->host;
  const std::string& port = host_port->port;
  boost::system::error_code code;
  boost::asio::ip::tcp::resolver resolver(context_);
  const auto results = resolver.resolve(
      host, port,
      boost::asio::ip::tcp::resolver::passive | boost::asio::ip::tcp::resolver::numeric_service,
      code);
  if (code || results.empty())
    return fail(code ? code.message() : "no address");
  const boost::asio::ip::tcp::endpoint endpoint = results.begin()->endpoint();

  if (acceptor_.open(endpoint.protocol(), code))
    return fail(code.message());
  // SO_REUSEADDR lets a restarted server bind despite TIME_WAIT; on Linux it
  // never lets two listeners share a port.
  acceptor_.set_option(boost::asio::socket_base::reuse_address(true), code);
  // Accepted sockets inherit both; the receive buffer must be set before
  // listen() for the window scale to follow it.
  const ServerOptions& options = core_.options;
  const auto close_and_fail = [&](const std::string& reason) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return fail(reason);
  };
  if (options.socket_send_buffer_bytes > 0 &&
      acceptor_.set_option(
          boost::asio::socket_base::send_buffer_size(options.socket_send_buffer_bytes), code))
    return close_and_fail("SO_SNDBUF: " + code.message());
  if (options.socket_receive_buffer_bytes > 0 &&
      acceptor_.set_option(
          boost::asio::socket_base::receive_buffer_size(options.socket_receive_buffer_bytes), code))
    return close_and_fail("SO_RCVBUF: " + code.message());
  if (acceptor_.bind(endpoint, code) ||
      acceptor_.listen(boost::asio::socket_base::max_listen_connections, code)) {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    return fail(code.message());
  }
  port_ = acceptor_.local_endpoint(code).port();
  return true;
}

void Acceptor::start() {
  boost::asio::post(context_, [this] { accept_next(); });
}

void Acceptor::accept_next() {
  IoThread& target = *targets_[next_target_];
  acceptor_.async_accept(target.context(), [this, &target](const boost::system::error_code& error,
                                                           boost::asio::ip::tcp::socket socket) {
    if (error == boost::asio::error::operation_aborted || !acceptor_.is_open())
      return;
    if (error) {
      // Out of descriptors (EMFILE) or similar: retry every 10 ms instead of
      // spinning, and say so once a second at most. Connections wait in the
      // listen backlog meanwhile and are served once descriptors are free.
      core_.accept_errors.fetch_add(1, std::memory_order_relaxed);
      core_.accept_error_log.log(LogLevel::kError, [&] {
        return "accept failed: " + error.message() + "; retrying every 10 ms";
      });
      retry_timer_.expires_after(std::chrono::milliseconds(10));
      retry_timer_.async_wait([this](const boost::system::error_code& wait_error) {
        if (!wait_error && acceptor_.is_open())
          accept_next();
      });
      return;
    }
    if (core_.try_open_connection()) {
      target.adopt(std::move(socket));
      next_target_ = (next_target_ + 1) % targets_.size();
    } else {
      core_.refused_connection_log.log(LogLevel::kWarning, [&] {
        return "refusing connection from " + describe_peer(socket.native_handle()) +
               ": max_connections (" + std::to_string(core_.options.max_connections) +
               ") reached";
      });
      boost::system::error_code ignored;
      socket.close(ignored);
    }
    accept_next();
  });
}

void Acceptor::close() {
  std::promise<void> closed;
  boost::asio::post(context_, [this, &closed] {
    boost::system::error_code ignored;
    acceptor_.close(ignored);
    retry_timer_.cancel();
    closed.set_value();
  });
  closed.get_future().wait();
}

}  // namespace percore::detail
