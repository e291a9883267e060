#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace percore {

// One registration in Apache Curator's ServiceDiscovery layout: the data of
// the znode `/<base path>/<service name>/<instance id>`, as Curator's
// JsonInstanceSerializer writes it for a ServiceInstance<T>:
//
//   {"name":"example.EchoService","id":"<uuid>","address":"127.0.0.1",
//    "port":8000,"sslPort":null,"payload":null,
//    "registrationTimeUTC":1700000000000,"serviceType":"DYNAMIC",
//    "uriSpec":null}
//
// Curator 5 (after CURATOR-275) adds "enabled":true unless its serializer is
// in compatible mode. Java services registered through Curator and percore
// servers read each other's instances, so the keys, JSON types and nulls
// must match exactly. `payload` (Jackson-typed, e.g. {"@class":"...",...})
// and `uriSpec` belong to their writers: percore keeps them as raw JSON text
// and writes them back unchanged, without interpreting them.
//
// A plain value: no threads, no shared state.
struct ServiceInstance {
  std::string name;     // the service, e.g. "example.EchoService"
  std::string id;       // the znode name; Curator uses a random UUID
  std::string address;  // host or IP the clients connect to
  std::optional<int> port;
  std::optional<int> ssl_port;
  std::string payload_json = "null";  // any JSON value
  int64_t registration_time_utc = 0;  // milliseconds since the Unix epoch
  // DYNAMIC (ephemeral, the usual), STATIC, PERMANENT or DYNAMIC_SEQUENTIAL.
  std::string service_type = "DYNAMIC";
  std::string uri_spec_json = "null";  // a JSON object or null
  // Curator 5's flag; unset = the key is absent (Curator 4, compatible mode).
  std::optional<bool> enabled;

  bool operator==(const ServiceInstance&) const = default;
};

// Curator's JSON for `instance`, keys in Curator's order; "enabled" only when
// set. `payload_json` and `uri_spec_json` must hold valid JSON text (empty
// counts as null); otherwise throws std::invalid_argument.
std::string to_curator_json(const ServiceInstance& instance);

// Reads an instance that Curator (4 or 5) or percore wrote. Unknown keys and
// any payload are accepted; a missing serviceType reads as DYNAMIC, a missing
// registrationTimeUTC as 0 (Jackson's defaults); "enabled" may be a boolean,
// null or absent (both: enabled) or, as Jackson coerces, "true"/"false" or
// 0/1; a port may be a string of digits, as Jackson coerces. Text nesting
// arrays or objects deeper than 64 levels is rejected before parsing (the
// serializer would recurse once per level). nullopt with the reason in
// *error (which may be null) when the text is not a JSON object, when name,
// id or address is missing, empty, not a string or holds whitespace, when a
// known key has the wrong JSON type, when a port is outside 1..65535, or
// when neither port nor sslPort is set (a client needs some port).
std::optional<ServiceInstance> parse_curator_json(std::string_view json, std::string* error);

// A random RFC 4122 version-4 UUID, lowercase, as Curator's instance ids
// ("xxxxxxxx-xxxx-4xxx-Yxxx-xxxxxxxxxxxx", Y one of 8, 9, a, b).
std::string make_instance_id();

// The current wall-clock time in milliseconds since the Unix epoch, as
// Curator's registrationTimeUTC (Java's System.currentTimeMillis()).
int64_t now_utc_millis();

}  // namespace percore
