#include <percore/base/net_address.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace percore {

std::optional<HostPort> split_host_port(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == text.size())
    return std::nullopt;
  std::string_view host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return std::nullopt;
  return HostPort{std::string(host), std::string(text.substr(colon + 1))};
}

std::string format_host_port(std::string_view ip, int port) {
  const bool v6 = ip.find(':') != std::string_view::npos;
  std::string text;
  text.reserve(ip.size() + 8);
  if (v6)
    text += '[';
  text += ip;
  if (v6)
    text += ']';
  text += ':';
  text += std::to_string(port);
  return text;
}

bool to_socket_address(std::string_view ip, int port, sockaddr_storage& address,
                       socklen_t& length) {
  std::memset(&address, 0, sizeof(address));
  const std::string text(ip);
  if (text.find(':') == std::string::npos) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    length = sizeof(sockaddr_in);
    return ::inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(static_cast<uint16_t>(port));
  length = sizeof(sockaddr_in6);
  return ::inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1;
}

std::string describe_peer(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof(address);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0)
    return "unknown peer";
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
    ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof(text));
    return format_host_port(text, ntohs(v4->sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof(text));
    return format_host_port(text, ntohs(v6->sin6_port));
  }
  return "local peer";
}

}  // namespace percore
