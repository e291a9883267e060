#include <percore/discovery/server_address.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <charconv>

#include <percore/base/net_address.h>

namespace percore {

std::string ServerAddress::to_string() const {
  return format_host_port(ip, port);
}

std::optional<ServerAddress> resolve_server_address(std::string_view host_port,
                                                    std::string* error) {
  auto fail = [&](const std::string& reason) -> std::optional<ServerAddress> {
    if (error != nullptr)
      *error = "bad server address '" + std::string(host_port) + "': " + reason;
    return std::nullopt;
  };
  const std::optional<HostPort> parts = split_host_port(host_port);
  if (!parts)
    return fail("expected HOST:PORT");
  const std::string& host = parts->host;
  const std::string& port_text = parts->port;
  int port = 0;
  const auto [end, parse_error] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (parse_error != std::errc() || end != port_text.data() + port_text.size() || port <= 0 ||
      port > 65535) {
    return fail("expected HOST:PORT with a port in 1..65535");
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* results = nullptr;
  const int status = ::getaddrinfo(host.c_str(), nullptr, &hints, &results);
  if (status != 0)
    return fail(gai_strerror(status));
  std::optional<ServerAddress> v4;
  std::optional<ServerAddress> v6;
  for (addrinfo* result = results; result != nullptr; result = result->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (result->ai_family == AF_INET && !v4) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr, text,
                sizeof(text));
      v4 = ServerAddress{text, port};
    } else if (result->ai_family == AF_INET6 && !v6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(result->ai_addr)->sin6_addr, text,
                sizeof(text));
      v6 = ServerAddress{text, port};
    }
  }
  ::freeaddrinfo(results);
  if (v4)
    return v4;
  if (v6)
    return v6;
  return fail("no IPv4 or IPv6 address");
}

}  // namespace percore
