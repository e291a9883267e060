#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace percore {

// One server as a client connects to it: a numeric IP address (resolved by
// the naming source, never on an I/O thread) and a port.
struct ServerAddress {
  std::string ip;  // "127.0.0.1" or "::1"
  int port = 0;

  // "127.0.0.1:8000" or "[::1]:8000"; also the server's identity in lists.
  std::string to_string() const;
  auto operator<=>(const ServerAddress&) const = default;
};

// Parses "host:port" or "[v6]:port" and resolves the host to a numeric
// address (the first IPv4 one, else the first IPv6 one). Blocking: call it
// off the I/O path. nullopt with the reason in *error.
std::optional<ServerAddress> resolve_server_address(std::string_view host_port, std::string* error);

}  // namespace percore
