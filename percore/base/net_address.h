#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>
#include <string_view>

namespace percore {

// "host:port" and "[v6]:port" as users write them, split into host and
// port text; nullopt without a colon, a host or a port. The brackets of an
// IPv6 literal are removed. No resolution, no number check.
struct HostPort {
  std::string host;  // "127.0.0.1", "::1", "example.com"
  std::string port;  // "8000"
};
std::optional<HostPort> split_host_port(std::string_view text);

// "127.0.0.1:8000" or "[::1]:8000": a numeric IP and a port as percore
// writes them everywhere (logs, remote_side(), server lists).
std::string format_host_port(std::string_view ip, int port);

// A numeric IPv4 or IPv6 address and a port as a socket address; false if
// `ip` is not a numeric address.
bool to_socket_address(std::string_view ip, int port, sockaddr_storage& address,
                       socklen_t& length);

// The peer of a connected socket as format_host_port() writes it; "local
// peer" for a Unix socket, "unknown peer" when it cannot be read.
std::string describe_peer(int fd);

}  // namespace percore
