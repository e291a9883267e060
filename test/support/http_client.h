#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace percore::testing {

// An HTTP/1.1 answer as a test sees it.
struct HttpAnswer {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // Names in lower case.
  std::string body;
  bool keep_alive = false;
};

// A blocking HTTP/1.1 client over one keep-alive connection (Boost.Beast),
// every operation bounded by `timeout`. For tests.
//
// Owns: its socket. Threads: one at a time.
class HttpClient {
 public:
  HttpClient(const std::string& host, int port,
             std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  bool connected() const;
  // Sends one request and reads its answer; nullopt on a timeout, a closed
  // connection or an unparsable answer (error() says which).
  std::optional<HttpAnswer> request(const std::string& method, const std::string& target,
                                    const std::string& body = {},
                                    const std::map<std::string, std::string>& headers = {});
  // Writes raw bytes (pipelined requests, malformed ones).
  bool send_raw(const std::string& bytes);
  // Reads one answer; an answer to HEAD has headers only (RFC 9110, 9.3.2),
  // which the caller must say: nothing in the answer does.
  std::optional<HttpAnswer> read_answer(bool to_head = false);
  // Whether the server closed the connection (end of stream within the
  // timeout, with no more bytes).
  bool closed_by_peer();
  const std::string& error() const { return error_; }

 private:
  struct State;
  State* state_;
  std::string error_;
};

// GET/POST on a fresh connection.
std::optional<HttpAnswer> http_get(int port, const std::string& target,
                                   const std::map<std::string, std::string>& headers = {});
std::optional<HttpAnswer> http_post(int port, const std::string& target, const std::string& body,
                                    const std::map<std::string, std::string>& headers = {});

}  // namespace percore::testing
