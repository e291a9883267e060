#include <percore/server_io/detail/http_mapping.h>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <map>
#include <vector>

#include <percore/proto/error_code.h>

namespace percore::detail {
namespace {

void append_json_string(std::string_view text, std::string& out) {
  out += '"';
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static const char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[(c >> 4) & 0xF];
          out += kHex[c & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

// A query value as a JSON value for `field`: strings, bytes and enums quoted,
// numbers and booleans as written (the JSON parser then checks them).
bool append_json_value(const google::protobuf::FieldDescriptor& field, const std::string& value,
                       std::string& out, std::string* error) {
  using Type = google::protobuf::FieldDescriptor::CppType;
  switch (field.cpp_type()) {
    case Type::CPPTYPE_STRING:
    case Type::CPPTYPE_ENUM:
      append_json_string(value, out);
      return true;
    case Type::CPPTYPE_MESSAGE:
      *error = "field " + field.name() + " is a message: send it in a JSON body (POST)";
      return false;
    default:
      if (value.empty() || value.find_first_of("\"{}[],:") != std::string::npos) {
        *error = "field " + field.name() + ": '" + value + "' is not a " + field.cpp_type_name();
        return false;
      }
      // 64-bit integers are quoted in protobuf's JSON: either form parses.
      out += value;
      return true;
  }
}

}  // namespace

unsigned http_status_for(int32_t code) {
  switch (static_cast<ErrorCode>(code)) {
    case ErrorCode::kOk:
      return 200;
    case ErrorCode::kNoService:
    case ErrorCode::kNoMethod:
      return 404;
    case ErrorCode::kBadRequest:
      return 400;
    case ErrorCode::kUnauthorized:
      return 403;
    case ErrorCode::kTimedOut:
      return 504;
    case ErrorCode::kOvercrowded:
    case ErrorCode::kServerStopping:
    case ErrorCode::kServerLimitReached:
      return 503;
    case ErrorCode::kHostDown:
    case ErrorCode::kBrokenConnection:
    case ErrorCode::kBadResponse:
      return 502;
    default:
      return 500;
  }
}

std::string error_json(int32_t code, std::string_view text) {
  std::string out = "{\"code\":" + std::to_string(code) + ",\"error\":";
  append_json_string(text, out);
  out += "}\n";
  return out;
}

// Depth of the deepest array or object, strings skipped. protobuf's JSON
// parser takes time quadratic in it (google.protobuf.Value nests freely), on
// the I/O thread: a depth past the limit is refused before parsing.
size_t json_depth(std::string_view json) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

bool message_from_json(std::string_view json, google::protobuf::Message& message,
                       std::string* error) {
  if (json_depth(json) > kMaxJsonDepth) {
    *error = "nests JSON deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return false;
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &message, options);
  if (!status.ok()) {
    std::string_view reason(status.message().data(), status.message().size());
    while (!reason.empty() && (reason.front() == ':' || reason.front() == ' '))
      reason.remove_prefix(1);
    std::string text(reason);
    // protobuf's parser draws a caret under the error on a second line.
    for (char& c : text) {
      if (c == '\n' || c == '\r')
        c = ' ';
    }
    *error = "is not valid JSON for " + message.GetDescriptor()->full_name() + ": " + text;
    return false;
  }
  return true;
}

bool url_decode(std::string_view text, std::string* decoded) {
  decoded->clear();
  decoded->reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      *decoded += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size())
        return false;
      const int high = hex_value(text[i + 1]);
      const int low = hex_value(text[i + 2]);
      if (high < 0 || low < 0)
        return false;
      *decoded += static_cast<char>(high * 16 + low);
      i += 2;
    } else {
      *decoded += c;
    }
  }
  return true;
}

bool message_from_query(std::string_view query, google::protobuf::Message& message,
                        std::string* error) {
  const google::protobuf::Descriptor& descriptor = *message.GetDescriptor();
  // Field -> values, in the order the query names them.
  std::vector<const google::protobuf::FieldDescriptor*> order;
  std::map<const google::protobuf::FieldDescriptor*, std::vector<std::string>> values;
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty())
      continue;
    const size_t equals = pair.find('=');
    std::string name;
    std::string value;
    if (!url_decode(pair.substr(0, equals), &name) ||
        !url_decode(equals == std::string_view::npos ? std::string_view() : pair.substr(equals + 1),
                    &value)) {
      *error = "has a bad percent-escape in its query";
      return false;
    }
    const google::protobuf::FieldDescriptor* field = descriptor.FindFieldByName(name);
    if (field == nullptr)
      field = descriptor.FindFieldByCamelcaseName(name);
    if (field == nullptr) {
      *error = "names no field '" + name + "' of " + descriptor.full_name();
      return false;
    }
    if (!field->is_repeated() && values.count(field) > 0) {
      *error = "names field " + field->name() + " twice";
      return false;
    }
    if (values.count(field) == 0)
      order.push_back(field);
    values[field].push_back(std::move(value));
  }
  std::string json = "{";
  for (const google::protobuf::FieldDescriptor* field : order) {
    if (json.size() > 1)
      json += ',';
    append_json_string(field->name(), json);
    json += ':';
    const std::vector<std::string>& list = values[field];
    if (field->is_repeated())
      json += '[';
    for (size_t i = 0; i < list.size(); ++i) {
      if (i > 0)
        json += ',';
      std::string reason;
      if (!append_json_value(*field, list[i], json, &reason)) {
        *error = "query " + reason;
        return false;
      }
    }
    if (field->is_repeated())
      json += ']';
  }
  json += '}';
  return message_from_json(json, message, error);
}

bool message_to_json(const google::protobuf::Message& message, std::string* json,
                     std::string* error) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  json->clear();
  const auto status = google::protobuf::util::MessageToJsonString(message, json, options);
  if (!status.ok()) {
    *error = "response cannot be written as JSON: " + std::string(status.message());
    return false;
  }
  *json += '\n';
  return true;
}

}  // namespace percore::detail
