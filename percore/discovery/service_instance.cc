#include <percore/discovery/service_instance.h>

#include <array>
#include <chrono>
#include <limits>
#include <random>
#include <stdexcept>

#include <nlohmann/json.hpp>

namespace percore {
namespace {

// ordered_json keeps keys in insertion order: we write Curator's order, and a
// payload read from others is written back with its keys as they came
// (Jackson puts "@class" first; some readers care).
using Json = nlohmann::ordered_json;

// Compact, UTF-8 as is (as Jackson writes); bad UTF-8 in our own strings is
// replaced rather than thrown from a serializer.
std::string dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// How deep an instance's JSON may nest. Curator writes 2 levels plus the
// payload's own (a Jackson bean: a few); nlohmann's serializer recurses once
// per level, so a node nesting 100,000 levels (200 KB, under ZooKeeper's
// 1 MiB) would overflow the stack of every client that reads it.
constexpr int kMaxNesting = 64;

// True when `text` nests arrays and objects deeper than kMaxNesting. One
// pass, no recursion, before the parser sees it.
bool nests_too_deep(std::string_view text) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // The escaped character cannot end the string.
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting)
        return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

Json parse_raw_field(const std::string& text, const char* what) {
  if (text.empty())
    return nullptr;
  if (nests_too_deep(text)) {
    throw std::invalid_argument(std::string("ServiceInstance::") + what + " nests deeper than " +
                                std::to_string(kMaxNesting) + " levels");
  }
  try {
    return Json::parse(text);
  } catch (const Json::parse_error& parse_error) {
    throw std::invalid_argument(std::string("ServiceInstance::") + what +
                                " is not valid JSON: " + parse_error.what());
  }
}

// Sets *error and returns nullopt, for one-line rejections.
std::optional<ServiceInstance> reject(std::string* error, const std::string& reason) {
  if (error != nullptr)
    *error = "bad Curator service instance: " + reason;
  return std::nullopt;
}

const char* type_name(const Json& value) {
  return value.type_name();
}

// An integer JSON number that fits int64_t; false for floats and the rest.
bool read_int64(const Json& value, int64_t* out) {
  if (value.is_number_unsigned()) {
    const uint64_t unsigned_value = value.get<uint64_t>();
    if (unsigned_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return false;
    *out = static_cast<int64_t>(unsigned_value);
    return true;
  }
  if (value.is_number_integer()) {
    *out = value.get<int64_t>();
    return true;
  }
  return false;
}

}  // namespace

std::string to_curator_json(const ServiceInstance& instance) {
  Json json = Json::object();
  json["name"] = instance.name;
  json["id"] = instance.id;
  json["address"] = instance.address;
  json["port"] = instance.port ? Json(*instance.port) : Json(nullptr);
  json["sslPort"] = instance.ssl_port ? Json(*instance.ssl_port) : Json(nullptr);
  json["payload"] = parse_raw_field(instance.payload_json, "payload_json");
  json["registrationTimeUTC"] = instance.registration_time_utc;
  json["serviceType"] = instance.service_type;
  json["uriSpec"] = parse_raw_field(instance.uri_spec_json, "uri_spec_json");
  if (instance.enabled)
    json["enabled"] = *instance.enabled;
  return dump(json);
}

std::optional<ServiceInstance> parse_curator_json(std::string_view text, std::string* error) {
  if (nests_too_deep(text)) {
    return reject(error,
                  std::string("nests deeper than ") + std::to_string(kMaxNesting) + " levels");
  }
  Json json;
  try {
    json = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& parse_error) {
    return reject(error, std::string("not JSON: ") + parse_error.what());
  }
  if (!json.is_object())
    return reject(error, std::string("expected a JSON object, got ") + type_name(json));

  ServiceInstance instance;
  // name, id and address: required non-empty strings (Curator always writes
  // them; an instance without them cannot be named or reached).
  for (auto [key, field] : {std::pair{"name", &instance.name}, std::pair{"id", &instance.id},
                            std::pair{"address", &instance.address}}) {
    const auto it = json.find(key);
    if (it == json.end() || it->is_null())
      return reject(error, std::string("\"") + key + "\" is missing");
    if (!it->is_string()) {
      return reject(error, std::string("\"") + key + "\" must be a string, got " + type_name(*it));
    }
    *field = it->get<std::string>();
    if (field->empty())
      return reject(error, std::string("\"") + key + "\" is empty");
    if (field->find_first_of(" \t\r\n") != std::string::npos)
      return reject(error, std::string("\"") + key + "\" holds whitespace: " + it->dump());
  }

  // port and sslPort: Java Integers, so a number or null; Jackson also takes
  // a string of digits.
  for (auto [key, field] :
       {std::pair{"port", &instance.port}, std::pair{"sslPort", &instance.ssl_port}}) {
    const auto it = json.find(key);
    if (it == json.end() || it->is_null())
      continue;
    int64_t port = 0;
    const bool digits = it->is_string() && !it->get_ref<const std::string&>().empty() &&
                        it->get_ref<const std::string&>().size() <= 9 &&
                        it->get_ref<const std::string&>().find_first_not_of("0123456789") ==
                            std::string::npos;
    if (digits) {
      port = std::stoll(it->get<std::string>());
    } else if (!read_int64(*it, &port)) {
      return reject(error, std::string("\"") + key + "\" must be an integer or null, got " +
                               (it->is_number() ? it->dump() : type_name(*it)));
    }
    if (port < 1 || port > 65535)
      return reject(
          error, std::string("\"") + key + "\" " + std::to_string(port) + " is outside 1..65535");
    *field = static_cast<int>(port);
  }
  if (!instance.port && !instance.ssl_port)
    return reject(error, "neither \"port\" nor \"sslPort\" is set");

  if (const auto it = json.find("registrationTimeUTC"); it != json.end() && !it->is_null()) {
    if (!read_int64(*it, &instance.registration_time_utc)) {
      return reject(error, std::string("\"registrationTimeUTC\" must be an integer, got ") +
                               (it->is_number() ? it->dump() : type_name(*it)));
    }
  }

  // Any string is kept: a newer Curator may add service types, and percore
  // does not act on the type.
  if (const auto it = json.find("serviceType"); it != json.end() && !it->is_null()) {
    if (!it->is_string()) {
      return reject(error, std::string("\"serviceType\" must be a string, got ") + type_name(*it));
    }
    instance.service_type = it->get<std::string>();
  }

  // The payload is whatever the writer's Jackson made of its T: any value.
  if (const auto it = json.find("payload"); it != json.end())
    instance.payload_json = dump(*it);

  // Curator's UriSpec is a bean: an object or null.
  if (const auto it = json.find("uriSpec"); it != json.end()) {
    if (!it->is_null() && !it->is_object()) {
      return reject(error,
                    std::string("\"uriSpec\" must be an object or null, got ") + type_name(*it));
    }
    instance.uri_spec_json = dump(*it);
  }

  // A boolean; Jackson (Curator's reader) also takes the strings "true" and
  // "false" in any of its three spellings, and 0 and 1, so a Java service
  // may see those.
  if (const auto it = json.find("enabled"); it != json.end() && !it->is_null()) {
    if (it->is_boolean()) {
      instance.enabled = it->get<bool>();
    } else if (it->is_string() && (*it == "true" || *it == "True" || *it == "TRUE")) {
      instance.enabled = true;
    } else if (it->is_string() && (*it == "false" || *it == "False" || *it == "FALSE")) {
      instance.enabled = false;
    } else if (it->is_number_integer() && (*it == 0 || *it == 1)) {
      instance.enabled = *it == 1;
    } else {
      return reject(error, std::string("\"enabled\" must be a boolean, got ") +
                               (it->is_string() ? it->dump() : type_name(*it)));
    }
  }
  return instance;
}

std::string make_instance_id() {
  // A fresh generator per call: ids are made rarely (one per registration),
  // and no state is shared between threads or carried over a fork().
  std::random_device device;
  std::array<std::seed_seq::result_type, 8> seed_words;
  for (auto& word : seed_words)
    word = device();
  std::seed_seq seed(seed_words.begin(), seed_words.end());
  std::mt19937_64 generator(seed);

  std::array<uint8_t, 16> bytes;
  for (size_t i = 0; i < bytes.size(); i += 8) {
    const uint64_t random = generator();
    for (size_t j = 0; j < 8; ++j)
      bytes[i + j] = static_cast<uint8_t>(random >> (8 * j));
  }
  bytes[6] = static_cast<uint8_t>((bytes[6] & 0x0f) | 0x40);  // version 4
  bytes[8] = static_cast<uint8_t>((bytes[8] & 0x3f) | 0x80);  // variant 10xx (RFC 4122)

  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(36);
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      id.push_back('-');
    id.push_back(kHex[bytes[i] >> 4]);
    id.push_back(kHex[bytes[i] & 0x0f]);
  }
  return id;
}

int64_t now_utc_millis() {
  // Since C++20 system_clock's epoch is the Unix epoch, as Java's.
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace percore
