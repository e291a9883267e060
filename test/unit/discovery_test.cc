#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <percore/discovery/list_naming_source.h>
#include <percore/discovery/naming_source.h>
#include <percore/discovery/server_address.h>

namespace percore {
namespace {

// --- resolve_server_address --------------------------------------------------

TEST(ServerAddressTest, ResolvesNumericIpv4) {
  std::string error;
  const std::optional<ServerAddress> address = resolve_server_address("127.0.0.1:8000", &error);
  ASSERT_TRUE(address.has_value()) << error;
  EXPECT_EQ(address->ip, "127.0.0.1");
  EXPECT_EQ(address->port, 8000);
}

TEST(ServerAddressTest, ResolvesLocalhostToALoopbackAddress) {
  std::string error;
  const std::optional<ServerAddress> address = resolve_server_address("localhost:8000", &error);
  ASSERT_TRUE(address.has_value()) << error;
  EXPECT_TRUE(address->ip == "127.0.0.1" || address->ip == "::1") << address->ip;
  EXPECT_EQ(address->port, 8000);
}

TEST(ServerAddressTest, ResolvesBracketedIpv6) {
  std::string error;
  const std::optional<ServerAddress> address = resolve_server_address("[::1]:9000", &error);
  ASSERT_TRUE(address.has_value()) << error;
  EXPECT_EQ(address->ip, "::1");  // Without the brackets.
  EXPECT_EQ(address->port, 9000);
}

TEST(ServerAddressTest, AcceptsThePortRangeEnds) {
  std::string error;
  std::optional<ServerAddress> address = resolve_server_address("127.0.0.1:1", &error);
  ASSERT_TRUE(address.has_value()) << error;
  EXPECT_EQ(address->port, 1);
  address = resolve_server_address("127.0.0.1:65535", &error);
  ASSERT_TRUE(address.has_value()) << error;
  EXPECT_EQ(address->port, 65535);
}

TEST(ServerAddressTest, RejectsMalformedAddresses) {
  for (const char* bad : {"nohost", ":80", "127.0.0.1:0", "127.0.0.1:70000", "127.0.0.1:8x",
                          "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1: 80", "[::1]", "[]:80", ""}) {
    std::string error;
    const std::optional<ServerAddress> address = resolve_server_address(bad, &error);
    EXPECT_FALSE(address.has_value()) << "'" << bad << "' gave " << address->to_string();
    EXPECT_FALSE(error.empty()) << "'" << bad << "'";
    EXPECT_NE(error.find(std::string("'") + bad + "'"), std::string::npos)
        << "the error should quote the input: " << error;
  }
}

TEST(ServerAddressTest, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(resolve_server_address("nohost", nullptr).has_value());
  EXPECT_TRUE(resolve_server_address("127.0.0.1:80", nullptr).has_value());
}

TEST(ServerAddressTest, ToStringOfIpv4) {
  EXPECT_EQ((ServerAddress{"127.0.0.1", 8000}).to_string(), "127.0.0.1:8000");
  EXPECT_EQ((ServerAddress{"10.1.2.3", 1}).to_string(), "10.1.2.3:1");
}

TEST(ServerAddressTest, ToStringOfIpv6HasBrackets) {
  EXPECT_EQ((ServerAddress{"::1", 9000}).to_string(), "[::1]:9000");
  EXPECT_EQ((ServerAddress{"fe80::1:2", 65535}).to_string(), "[fe80::1:2]:65535");
}

TEST(ServerAddressTest, ToStringParsesBackToTheSameAddress) {
  for (const ServerAddress& address :
       {ServerAddress{"127.0.0.1", 8000}, ServerAddress{"::1", 9000}}) {
    std::string error;
    const std::optional<ServerAddress> back = resolve_server_address(address.to_string(), &error);
    ASSERT_TRUE(back.has_value()) << error;
    EXPECT_EQ(*back, address);
  }
}

// --- make_naming_source ------------------------------------------------------

// Starts `source` and returns every list it delivered during start().
struct StartResult {
  bool started = false;
  std::string error;
  std::vector<std::vector<ServerAddress>> deliveries;
};

StartResult start_and_collect(NamingSource& source) {
  StartResult result;
  result.started = source.start(
      [&](const std::vector<ServerAddress>& servers) { result.deliveries.push_back(servers); },
      &result.error);
  return result;
}

TEST(NamingSourceTest, ListSchemeMakesAListSource) {
  for (const char* target : {"list://a:1,b:2", "list://a:1", "list://127.0.0.1:1,127.0.0.1:2"}) {
    std::string error;
    const std::unique_ptr<NamingSource> source = make_naming_source(target, &error);
    ASSERT_NE(source, nullptr) << target << ": " << error;
    EXPECT_NE(dynamic_cast<ListNamingSource*>(source.get()), nullptr) << target;
  }
}

TEST(NamingSourceTest, ListSchemeDeliversItsServers) {
  std::string error;
  const std::unique_ptr<NamingSource> source =
      make_naming_source("list://127.0.0.1:1,127.0.0.1:2", &error);
  ASSERT_NE(source, nullptr) << error;
  const StartResult result = start_and_collect(*source);
  ASSERT_TRUE(result.started) << result.error;
  ASSERT_EQ(result.deliveries.size(), 1u);
  EXPECT_EQ(result.deliveries[0], (std::vector<ServerAddress>{{"127.0.0.1", 1}, {"127.0.0.1", 2}}));
  source->stop();
}

TEST(NamingSourceTest, BareHostPortListIsReadAsList) {
  std::string error;
  const std::unique_ptr<NamingSource> source =
      make_naming_source("127.0.0.1:1,127.0.0.1:2", &error);
  ASSERT_NE(source, nullptr) << error;
  EXPECT_NE(dynamic_cast<ListNamingSource*>(source.get()), nullptr);
  const StartResult result = start_and_collect(*source);
  ASSERT_TRUE(result.started) << result.error;
  ASSERT_EQ(result.deliveries.size(), 1u);
  EXPECT_EQ(result.deliveries[0], (std::vector<ServerAddress>{{"127.0.0.1", 1}, {"127.0.0.1", 2}}));
}

TEST(NamingSourceTest, UnknownSchemeFailsNamingTheScheme) {
  std::string error;
  const std::unique_ptr<NamingSource> source = make_naming_source("zz://x", &error);
  EXPECT_EQ(source, nullptr);
  EXPECT_NE(error.find("'zz'"), std::string::npos) << error;
}

TEST(NamingSourceTest, UnknownSchemeWithNullErrorPointer) {
  EXPECT_EQ(make_naming_source("zk2://x", nullptr), nullptr);
}

// --- ListNamingSource ----------------------------------------------------------

TEST(ListNamingSourceTest, DeliversASortedDeduplicatedListBeforeStartReturns) {
  ListNamingSource source("127.0.0.1:30,127.0.0.1:9,[::1]:5,127.0.0.1:30,127.0.0.2:1,127.0.0.1:9");
  bool delivered_during_start = false;
  std::vector<ServerAddress> delivered;
  std::string error;
  const bool started = source.start(
      [&](const std::vector<ServerAddress>& servers) {
        delivered_during_start = true;
        delivered = servers;
      },
      &error);
  // Checked right here: the list must have come before start() returned.
  EXPECT_TRUE(delivered_during_start);
  ASSERT_TRUE(started) << error;
  // Sorted by (ip, port); "127..." sorts before "::1" as text.
  EXPECT_EQ(delivered, (std::vector<ServerAddress>{
                           {"127.0.0.1", 9}, {"127.0.0.1", 30}, {"127.0.0.2", 1}, {"::1", 5}}));
  source.stop();
  source.stop();  // Idempotent.
}

TEST(ListNamingSourceTest, SameServerSpelledTwoWaysIsOneEntry) {
  // A name and its address resolve to the same server: one connection set.
  std::string error;
  const std::optional<ServerAddress> localhost = resolve_server_address("localhost:7", &error);
  ASSERT_TRUE(localhost.has_value()) << error;
  ListNamingSource source("localhost:7," + localhost->to_string());
  const StartResult result = start_and_collect(source);
  ASSERT_TRUE(result.started) << result.error;
  ASSERT_EQ(result.deliveries.size(), 1u);
  EXPECT_EQ(result.deliveries[0], (std::vector<ServerAddress>{*localhost}));
}

TEST(ListNamingSourceTest, EmptyItemsAreSkipped) {
  ListNamingSource source(",127.0.0.1:1,,127.0.0.1:2,");
  const StartResult result = start_and_collect(source);
  ASSERT_TRUE(result.started) << result.error;
  ASSERT_EQ(result.deliveries.size(), 1u);
  EXPECT_EQ(result.deliveries[0], (std::vector<ServerAddress>{{"127.0.0.1", 1}, {"127.0.0.1", 2}}));
}

TEST(ListNamingSourceTest, EmptyListFails) {
  for (const char* servers : {"", ",", ",,"}) {
    ListNamingSource source(servers);
    const StartResult result = start_and_collect(source);
    EXPECT_FALSE(result.started) << "'" << servers << "'";
    EXPECT_FALSE(result.error.empty()) << "'" << servers << "'";
    EXPECT_TRUE(result.deliveries.empty()) << "'" << servers << "'";
  }
  // Through the URI as well.
  std::string error;
  const std::unique_ptr<NamingSource> source = make_naming_source("list://", &error);
  ASSERT_NE(source, nullptr) << error;
  const StartResult result = start_and_collect(*source);
  EXPECT_FALSE(result.started);
  EXPECT_FALSE(result.error.empty());
  EXPECT_TRUE(result.deliveries.empty());
}

TEST(ListNamingSourceTest, BadAddressFailsWithoutDelivering) {
  for (const char* servers : {"127.0.0.1:1,nohost", "127.0.0.1:0", "127.0.0.1:1,127.0.0.1:8x"}) {
    ListNamingSource source(servers);
    const StartResult result = start_and_collect(source);
    EXPECT_FALSE(result.started) << servers;
    EXPECT_TRUE(result.deliveries.empty()) << servers;
    EXPECT_NE(result.error.find("bad server address"), std::string::npos) << result.error;
  }
}

TEST(ListNamingSourceTest, NullErrorPointerIsAllowed) {
  ListNamingSource bad("nohost");
  EXPECT_FALSE(bad.start([](const std::vector<ServerAddress>&) {}, nullptr));
  ListNamingSource empty("");
  EXPECT_FALSE(empty.start([](const std::vector<ServerAddress>&) {}, nullptr));
}

}  // namespace
}  // namespace percore
