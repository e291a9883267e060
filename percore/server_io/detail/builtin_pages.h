#pragma once

#include <string>
#include <string_view>

namespace percore::detail {

struct ServerCore;

// The pages every server answers over HTTP on its port, on the I/O thread:
//   /health   200 "OK" while serving, 503 "stopping" once Stop() began;
//   /status   services, methods, counters and connections: HTML, or JSON
//             when the request accepts application/json (or ?format=json);
//   /metrics  Prometheus text exposition (format 0.0.4) of the server's
//             counters and of every Channel in the process.
struct BuiltinPage {
  unsigned status = 200;
  std::string body;
  std::string content_type;
};

// Whether `path` names a built-in page (then *page is filled). `query` and
// `accept` are the request's query string and Accept header.
bool serve_builtin_page(const ServerCore& core, std::string_view path, std::string_view query,
                        std::string_view accept, BuiltinPage* page);

}  // namespace percore::detail
