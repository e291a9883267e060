#include <percore/discovery/service_instance.h>

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace percore {
namespace {

// Instances as Curator's JsonInstanceSerializer writes them (Jackson, compact,
// keys in ServiceInstance's field order), written out by hand.

// Curator 4, or Curator 5 in compatible mode: no "enabled".
constexpr char kCurator4[] =
    R"({"name":"example.EchoService","id":"2b1e6a4c-9d3f-4f8e-a0b1-5c6d7e8f9a0b",)"
    R"("address":"127.0.0.1","port":8000,"sslPort":null,"payload":null,)"
    R"("registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null})";

// Curator 5 (after CURATOR-275): "enabled" last.
constexpr char kCurator5[] =
    R"({"name":"example.EchoService","id":"2b1e6a4c-9d3f-4f8e-a0b1-5c6d7e8f9a0b",)"
    R"("address":"127.0.0.1","port":8000,"sslPort":null,"payload":null,)"
    R"("registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC","uriSpec":null,)"
    R"("enabled":true})";

// A Java service's registration: a Jackson-typed payload ("@class", from
// @JsonTypeInfo(use = Id.CLASS) on getPayload()), a UriSpec and an SSL port.
constexpr char kWithPayload[] =
    R"({"name":"example.EchoService","id":"0f8fad5b-d9cb-469f-a165-70867728950e",)"
    R"("address":"10.0.0.7","port":8000,"sslPort":8443,)"
    R"("payload":{"@class":"org.example.Payload","foo":"bar"},)"
    R"("registrationTimeUTC":1700000000123,"serviceType":"DYNAMIC",)"
    R"("uriSpec":{"parts":[{"value":"http","variable":false}]},"enabled":true})";

ServiceInstance parse_ok(const std::string& json) {
  std::string error;
  const std::optional<ServiceInstance> instance = parse_curator_json(json, &error);
  EXPECT_TRUE(instance.has_value()) << error << "\n" << json;
  return instance.value_or(ServiceInstance{});
}

// --- reading what Curator writes ---------------------------------------------

TEST(ServiceInstanceTest, ReadsCurator4Form) {
  const ServiceInstance instance = parse_ok(kCurator4);
  EXPECT_EQ(instance.name, "example.EchoService");
  EXPECT_EQ(instance.id, "2b1e6a4c-9d3f-4f8e-a0b1-5c6d7e8f9a0b");
  EXPECT_EQ(instance.address, "127.0.0.1");
  EXPECT_EQ(instance.port, 8000);
  EXPECT_EQ(instance.ssl_port, std::nullopt);
  EXPECT_EQ(instance.payload_json, "null");
  EXPECT_EQ(instance.registration_time_utc, 1700000000000);
  EXPECT_EQ(instance.service_type, "DYNAMIC");
  EXPECT_EQ(instance.uri_spec_json, "null");
  EXPECT_EQ(instance.enabled, std::nullopt);
}

TEST(ServiceInstanceTest, Curator4FormRoundTripsByteForByte) {
  EXPECT_EQ(to_curator_json(parse_ok(kCurator4)), kCurator4);
}

TEST(ServiceInstanceTest, ReadsAndRoundTripsCurator5Form) {
  const ServiceInstance instance = parse_ok(kCurator5);
  EXPECT_EQ(instance.enabled, true);
  EXPECT_EQ(instance.port, 8000);
  EXPECT_EQ(to_curator_json(instance), kCurator5);
}

TEST(ServiceInstanceTest, KeepsAForeignPayloadAndUriSpec) {
  const ServiceInstance instance = parse_ok(kWithPayload);
  EXPECT_EQ(instance.address, "10.0.0.7");
  EXPECT_EQ(instance.port, 8000);
  EXPECT_EQ(instance.ssl_port, 8443);
  EXPECT_EQ(instance.registration_time_utc, 1700000000123);
  EXPECT_EQ(instance.enabled, true);
  // Kept as the writer wrote it, "@class" first.
  EXPECT_EQ(instance.payload_json, R"({"@class":"org.example.Payload","foo":"bar"})");
  EXPECT_EQ(nlohmann::json::parse(instance.payload_json),
            nlohmann::json::parse(R"({"@class":"org.example.Payload","foo":"bar"})"));
  EXPECT_EQ(instance.uri_spec_json, R"({"parts":[{"value":"http","variable":false}]})");
  // And written back unchanged, so re-registering it loses nothing.
  EXPECT_EQ(to_curator_json(instance), kWithPayload);
  EXPECT_EQ(nlohmann::json::parse(to_curator_json(instance)), nlohmann::json::parse(kWithPayload));
}

TEST(ServiceInstanceTest, AcceptsPayloadsOfAnyJsonType) {
  // Jackson writes "natural" types (String, numbers, booleans) without
  // "@class"; a payload may be any value.
  for (const char* payload : {R"("hey")", "42", "true", R"(["java.util.ArrayList",[]])",
                              R"({"@class":"a.B","nested":{"x":[1,2,{"y":null}]}})"}) {
    const std::string json =
        std::string(R"({"name":"s","id":"i","address":"h","port":1,"payload":)") + payload + "}";
    const ServiceInstance instance = parse_ok(json);
    EXPECT_EQ(nlohmann::json::parse(instance.payload_json), nlohmann::json::parse(payload))
        << payload;
  }
}

TEST(ServiceInstanceTest, AcceptsUnknownFieldsAnyKeyOrderAndWhitespace) {
  const ServiceInstance instance = parse_ok(R"({
      "uriSpec" : null,
      "weight" : 3,
      "zone" : {"region": "eu", "racks": [1, 2]},
      "serviceType" : "STATIC",
      "port" : 9000,
      "address" : "localhost",
      "id" : "x",
      "name" : "prime.PrimeService",
      "registrationTimeUTC" : 1,
      "sslPort" : null,
      "payload" : null,
      "enabled" : false,
      "futureFlag" : true
  })");
  EXPECT_EQ(instance.name, "prime.PrimeService");
  EXPECT_EQ(instance.id, "x");
  EXPECT_EQ(instance.address, "localhost");
  EXPECT_EQ(instance.port, 9000);
  EXPECT_EQ(instance.service_type, "STATIC");
  EXPECT_EQ(instance.registration_time_utc, 1);
  EXPECT_EQ(instance.enabled, false);
}

TEST(ServiceInstanceTest, MissingOptionalKeysTakeCuratorsDefaults) {
  const ServiceInstance instance =
      parse_ok(R"({"name":"s","id":"i","address":"h","sslPort":8443})");
  EXPECT_EQ(instance.port, std::nullopt);
  EXPECT_EQ(instance.ssl_port, 8443);  // sslPort alone is enough
  EXPECT_EQ(instance.payload_json, "null");
  EXPECT_EQ(instance.registration_time_utc, 0);
  EXPECT_EQ(instance.service_type, "DYNAMIC");
  EXPECT_EQ(instance.uri_spec_json, "null");
  EXPECT_EQ(instance.enabled, std::nullopt);
}

TEST(ServiceInstanceTest, EveryCuratorServiceTypeRoundTrips) {
  for (const char* type : {"DYNAMIC", "STATIC", "PERMANENT", "DYNAMIC_SEQUENTIAL"}) {
    ServiceInstance instance;
    instance.name = "example.EchoService";
    instance.id = "instance-1";
    instance.address = "10.0.0.1";
    instance.port = 1;
    instance.service_type = type;
    EXPECT_EQ(parse_ok(to_curator_json(instance)), instance) << type;
  }
}

// --- what percore writes -----------------------------------------------------

ServiceInstance echo_instance() {
  ServiceInstance instance;
  instance.name = "example.EchoService";
  instance.id = make_instance_id();
  instance.address = "127.0.0.1";
  instance.port = 8000;
  instance.registration_time_utc = now_utc_millis();
  return instance;
}

TEST(ServiceInstanceTest, WritesExactlyCuratorsKeysAndTypes) {
  const nlohmann::json json = nlohmann::json::parse(to_curator_json(echo_instance()));
  ASSERT_TRUE(json.is_object());
  std::set<std::string> keys;
  for (const auto& [key, value] : json.items())
    keys.insert(key);
  EXPECT_EQ(keys, (std::set<std::string>{"name", "id", "address", "port", "sslPort", "payload",
                                         "registrationTimeUTC", "serviceType", "uriSpec"}));
  EXPECT_TRUE(json["name"].is_string());
  EXPECT_TRUE(json["id"].is_string());
  EXPECT_TRUE(json["address"].is_string());
  EXPECT_TRUE(json["port"].is_number_integer());
  EXPECT_EQ(json["port"].get<int>(), 8000);
  EXPECT_TRUE(json["sslPort"].is_null());  // present and null, as Curator writes it
  EXPECT_TRUE(json["payload"].is_null());
  EXPECT_TRUE(json["registrationTimeUTC"].is_number_integer());
  EXPECT_GT(json["registrationTimeUTC"].get<int64_t>(), 1700000000000);
  EXPECT_EQ(json["serviceType"], "DYNAMIC");
  EXPECT_TRUE(json["uriSpec"].is_null());
}

TEST(ServiceInstanceTest, WritesEnabledOnlyWhenSet) {
  ServiceInstance instance = echo_instance();
  EXPECT_FALSE(nlohmann::json::parse(to_curator_json(instance)).contains("enabled"));
  instance.enabled = true;
  nlohmann::json json = nlohmann::json::parse(to_curator_json(instance));
  ASSERT_TRUE(json.contains("enabled"));
  EXPECT_TRUE(json["enabled"].is_boolean());
  EXPECT_EQ(json["enabled"], true);
  instance.enabled = false;
  json = nlohmann::json::parse(to_curator_json(instance));
  EXPECT_EQ(json["enabled"], false);
}

TEST(ServiceInstanceTest, WrittenInstanceReadsBackEqual) {
  ServiceInstance instance = echo_instance();
  instance.ssl_port = 8443;
  instance.payload_json = R"({"@class":"org.example.Payload","foo":"bar"})";
  instance.uri_spec_json = R"({"parts":[{"value":"http","variable":false}]})";
  instance.enabled = true;
  EXPECT_EQ(parse_ok(to_curator_json(instance)), instance);
}

TEST(ServiceInstanceTest, EmptyRawFieldsAreWrittenAsNull) {
  ServiceInstance instance = echo_instance();
  instance.payload_json.clear();
  instance.uri_spec_json.clear();
  const nlohmann::json json = nlohmann::json::parse(to_curator_json(instance));
  EXPECT_TRUE(json.at("payload").is_null());
  EXPECT_TRUE(json.at("uriSpec").is_null());
}

TEST(ServiceInstanceTest, InvalidRawFieldThrowsOnWrite) {
  ServiceInstance instance = echo_instance();
  instance.payload_json = "{not json";
  EXPECT_THROW(to_curator_json(instance), std::invalid_argument);
  instance = echo_instance();
  instance.uri_spec_json = "[";
  EXPECT_THROW(to_curator_json(instance), std::invalid_argument);
}

// --- rejections ----------------------------------------------------------------

TEST(ServiceInstanceTest, RejectsWithAClearReason) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "not JSON"},
      {"not json", "not JSON"},
      {R"({"name":"s","id":"i","address":"h","port":1)", "not JSON"},  // cut short
      {R"({"name":"s","id":"i","address":"h","port":1} x)", "not JSON"},
      {"[1,2]", "expected a JSON object, got array"},
      {R"("example.EchoService")", "expected a JSON object, got string"},
      {"null", "expected a JSON object, got null"},
      {R"({"id":"i","address":"h","port":1})", R"("name" is missing)"},
      {R"({"name":null,"id":"i","address":"h","port":1})", R"("name" is missing)"},
      {R"({"name":5,"id":"i","address":"h","port":1})", R"("name" must be a string, got number)"},
      {R"({"name":"","id":"i","address":"h","port":1})", R"("name" is empty)"},
      {R"({"name":"s","address":"h","port":1})", R"("id" is missing)"},
      {R"({"name":"s","id":["i"],"address":"h","port":1})", R"("id" must be a string)"},
      {R"({"name":"s","id":"i","port":1})", R"("address" is missing)"},
      {R"({"name":"s","id":"i","address":false,"port":1})", R"("address" must be a string)"},
      {R"({"name":"s","id":"i","address":"h"})", R"(neither "port" nor "sslPort")"},
      {R"({"name":"s","id":"i","address":"h","port":null,"sslPort":null})",
       R"(neither "port" nor "sslPort")"},
      {R"({"name":"s","id":"i","address":"h","port":8000.5})", R"("port" must be an integer)"},
      {R"({"name":"s","id":"i","address":"h","port":0})", R"("port" 0 is outside 1..65535)"},
      {R"({"name":"s","id":"i","address":"h","port":70000})", "outside 1..65535"},
      {R"({"name":"s","id":"i","address":"h","port":-1})", "outside 1..65535"},
      {R"({"name":"s","id":"i","address":"h","port":1,"sslPort":{}})",
       R"("sslPort" must be an integer or null, got object)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"registrationTimeUTC":"yesterday"})",
       R"("registrationTimeUTC" must be an integer)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"registrationTimeUTC":1.7e12})",
       R"("registrationTimeUTC" must be an integer)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"registrationTimeUTC":18446744073709551615})",
       R"("registrationTimeUTC" must be an integer)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"serviceType":3})",
       R"("serviceType" must be a string)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"uriSpec":"http"})",
       R"("uriSpec" must be an object or null)"},
      {R"({"name":"s","id":"i","address":"h","port":1,"enabled":"yes"})",
       R"("enabled" must be a boolean, got "yes")"},
      {R"({"name":"s","id":"i","address":"h","port":1,"enabled":2})",
       R"("enabled" must be a boolean, got number)"},
      {R"({"name":"s","id":"i","address":" 127.0.0.1 ","port":1})",
       R"("address" holds whitespace: " 127.0.0.1 ")"},
      {R"({"name":"s","id":"i","address":"h","port":"80a"})",
       R"("port" must be an integer or null, got string)"},
      {R"({"name":"s","id":"i","address":"h","port":"99999"})", "outside 1..65535"},
  };
  for (const auto& [json, reason] : cases) {
    std::string error;
    const std::optional<ServiceInstance> instance = parse_curator_json(json, &error);
    EXPECT_FALSE(instance.has_value()) << json;
    EXPECT_NE(error.find(reason), std::string::npos)
        << "input: " << json << "\nwanted: " << reason << "\ngot: " << error;
    EXPECT_NE(error.find("bad Curator service instance"), std::string::npos) << error;
  }
}

// Jackson, Curator's reader, coerces these strings; a Java service sees them
// as booleans, so percore does too. null (or no key) is enabled.
TEST(ServiceInstanceTest, EnabledAsJacksonReadsIt) {
  const std::pair<const char*, std::optional<bool>> cases[] = {
      {"true", true},       {"false", false},     {R"("true")", true},   {R"("True")", true},
      {R"("TRUE")", true},  {R"("false")", false}, {R"("False")", false}, {R"("FALSE")", false},
      {"null", std::nullopt}, {"0", false}, {"1", true},
  };
  for (const auto& [value, expected] : cases) {
    const std::string json =
        std::string(R"({"name":"s","id":"i","address":"h","port":1,"enabled":)") + value + "}";
    std::string error;
    const std::optional<ServiceInstance> instance = parse_curator_json(json, &error);
    ASSERT_TRUE(instance.has_value()) << json << ": " << error;
    EXPECT_EQ(instance->enabled, expected) << json;
  }
}

TEST(ServiceInstanceTest, PortAsAStringOfDigitsIsReadAsJacksonReadsIt) {
  const std::optional<ServiceInstance> instance = parse_curator_json(
      R"({"name":"s","id":"i","address":"h","port":"8080","sslPort":"443"})", nullptr);
  ASSERT_TRUE(instance.has_value());
  EXPECT_EQ(instance->port, 8080);
  EXPECT_EQ(instance->ssl_port, 443);
}

// 100,000 levels of payload (200 KB, under ZooKeeper's 1 MiB node limit)
// once crashed every client that read the node (the serializer recursed per
// level). Rejected before parsing; 64 levels are fine.
TEST(ServiceInstanceTest, DeeplyNestedJsonIsRejectedNotACrash) {
  for (const auto& [open, close] : {std::pair{"[", "]"}, std::pair{R"({"a":)", "}"}}) {
    std::string deep;
    for (int i = 0; i < 100000; ++i)
      deep += open;
    deep += "1";
    for (int i = 0; i < 100000; ++i)
      deep += close;
    const std::string json =
        R"({"name":"s","id":"i","address":"h","port":1,"payload":)" + deep + "}";
    std::string error;
    EXPECT_FALSE(parse_curator_json(json, &error).has_value());
    EXPECT_NE(error.find("nests deeper than 64 levels"), std::string::npos) << error;
  }
  std::string ok;
  for (int i = 0; i < 63; ++i)
    ok += "[";
  for (int i = 0; i < 63; ++i)
    ok += "]";
  const std::optional<ServiceInstance> shallow = parse_curator_json(
      R"({"name":"s","id":"i","address":"h","port":1,"payload":)" + ok + "}", nullptr);
  ASSERT_TRUE(shallow.has_value());
  EXPECT_EQ(shallow->payload_json, ok);
  // Brackets inside strings do not count.
  std::string text(1000, '[');
  EXPECT_TRUE(parse_curator_json(
                  R"({"name":"s","id":"i","address":"h","port":1,"payload":")" + text + R"("})",
                  nullptr)
                  .has_value());
  ServiceInstance too_deep;
  too_deep.name = "s";
  too_deep.id = "i";
  too_deep.address = "h";
  too_deep.port = 1;
  too_deep.payload_json = std::string(65, '[') + std::string(65, ']');
  EXPECT_THROW(to_curator_json(too_deep), std::invalid_argument);
}

TEST(ServiceInstanceTest, NullErrorPointerIsAllowed) {
  EXPECT_FALSE(parse_curator_json("nope", nullptr).has_value());
  EXPECT_FALSE(parse_curator_json("{}", nullptr).has_value());
  EXPECT_TRUE(parse_curator_json(kCurator4, nullptr).has_value());
}

// --- ids and times -------------------------------------------------------------

TEST(ServiceInstanceTest, InstanceIdIsALowercaseVersion4Uuid) {
  const std::regex uuid4("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
  for (int i = 0; i < 100; ++i) {
    const std::string id = make_instance_id();
    EXPECT_EQ(id.size(), 36u) << id;
    EXPECT_TRUE(std::regex_match(id, uuid4)) << id;
  }
}

TEST(ServiceInstanceTest, InstanceIdsAreUnique) {
  std::set<std::string> ids;
  for (int i = 0; i < 1000; ++i)
    ids.insert(make_instance_id());
  EXPECT_EQ(ids.size(), 1000u);
}

TEST(ServiceInstanceTest, NowIsMillisecondsSinceTheUnixEpoch) {
  const int64_t now = now_utc_millis();
  EXPECT_GT(now, 1700000000000);  // after November 2023
  EXPECT_LT(now, 4102444800000);  // before 2100
  EXPECT_LE(now, now_utc_millis());
}

}  // namespace
}  // namespace percore
