#include <percore/base/net_address.h>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace percore {
namespace {

TEST(NetAddressTest, SplitsHostAndPort) {
  const auto v4 = split_host_port("127.0.0.1:8000");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, "8000");
  const auto v6 = split_host_port("[::1]:9");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, "9");
  const auto name = split_host_port("example.com:http");
  ASSERT_TRUE(name);
  EXPECT_EQ(name->host, "example.com");
  EXPECT_EQ(name->port, "http");
}

TEST(NetAddressTest, RefusesTextWithoutHostOrPort) {
  for (const char* text : {"", "8000", "host:", ":8000", "[]:8000"})
    EXPECT_FALSE(split_host_port(text)) << text;
}

TEST(NetAddressTest, FormatsAsPercoreWritesAddresses) {
  EXPECT_EQ(format_host_port("10.0.0.1", 80), "10.0.0.1:80");
  EXPECT_EQ(format_host_port("::1", 8000), "[::1]:8000");
}

TEST(NetAddressTest, BuildsSocketAddresses) {
  sockaddr_storage address{};
  socklen_t length = 0;
  ASSERT_TRUE(to_socket_address("127.0.0.1", 8000, address, length));
  EXPECT_EQ(address.ss_family, AF_INET);
  EXPECT_EQ(length, sizeof(sockaddr_in));
  EXPECT_EQ(ntohs(reinterpret_cast<sockaddr_in*>(&address)->sin_port), 8000);
  ASSERT_TRUE(to_socket_address("::1", 9, address, length));
  EXPECT_EQ(address.ss_family, AF_INET6);
  EXPECT_EQ(length, sizeof(sockaddr_in6));
  EXPECT_FALSE(to_socket_address("localhost", 9, address, length));
}

TEST(NetAddressTest, DescribesPeers) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  EXPECT_EQ(describe_peer(fds[0]), "local peer");
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_EQ(describe_peer(-1), "unknown peer");
}

}  // namespace
}  // namespace percore
