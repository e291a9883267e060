#pragma once

#include <google/protobuf/message.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace percore::detail {

// How calls travel over HTTP/1.1 with JSON bodies (brpc serves the same on
// its baidu_std port): the request message from a JSON body or from a query
// string, the response message as JSON, and percore's error codes as HTTP
// status codes.

// The HTTP status of an answer with percore error `code` (0: 200). The table,
// after brpc's ErrorCodeToStatusCode (http_status_code.cpp), with the
// gateway's upstream failures as 502:
//   0 → 200;  1001, 1002 → 404;  1003 → 400;  1004 → 403;  1008 → 504;
//   1011, 2003, 2004 → 503;  112, 1009, 2002 → 502;  2001 and any other → 500.
unsigned http_status_for(int32_t code);

// The JSON body of an error answer: {"code":N,"error":"text"}.
std::string error_json(int32_t code, std::string_view text);

// Arrays and objects nest at most this deep in a JSON body (protobuf's own
// binary parser stops at 100 levels of messages).
inline constexpr size_t kMaxJsonDepth = 100;

// Fills `message` from a JSON object (protobuf's JSON mapping; field names
// as in the .proto or in lowerCamelCase; an unknown field, or nesting past
// kMaxJsonDepth, is an error). False with the reason in *error.
bool message_from_json(std::string_view json, google::protobuf::Message& message,
                       std::string* error);

// Fills `message` from a URL query ("field=value&...", percent-encoded):
// scalar and enum fields only (a repeated one by repeating its name); a
// message field, an unknown name or a value of the wrong type is an error.
bool message_from_query(std::string_view query, google::protobuf::Message& message,
                        std::string* error);

// The message as JSON, every field printed (zero values too: `false` is an
// answer), names in lowerCamelCase as protobuf's JSON mapping writes them.
bool message_to_json(const google::protobuf::Message& message, std::string* json,
                     std::string* error);

// Percent-decoding of a URL component ('+' is a space). False on a bad escape.
bool url_decode(std::string_view text, std::string* decoded);

}  // namespace percore::detail
