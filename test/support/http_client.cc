#include "test/support/http_client.h"

// Boost 1.74's Asio needs <utility> first under GCC 12 in C++20.
#include <utility>

#include <cctype>
#include <sstream>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace percore::testing {

namespace http = boost::beast::http;

struct HttpClient::State {
  boost::asio::io_context context;
  boost::asio::ip::tcp::socket socket{context};
  boost::beast::flat_buffer buffer;
  std::chrono::milliseconds timeout;
  bool connected = false;

  // Runs the posted operation until it completes or the timeout passes.
  bool run(bool& done) {
    context.restart();
    context.run_for(timeout);
    if (!done) {
      boost::system::error_code ignored;
      socket.cancel(ignored);
      context.restart();
      context.run();
      return false;
    }
    return true;
  }
};

HttpClient::HttpClient(const std::string& host, int port, std::chrono::milliseconds timeout)
    : state_(new State) {
  state_->timeout = timeout;
  boost::system::error_code error;
  state_->socket.connect(
      boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host), static_cast<uint16_t>(port)),
      error);
  state_->connected = !error;
  if (error)
    error_ = "connect: " + error.message();
}

HttpClient::~HttpClient() { delete state_; }

bool HttpClient::connected() const { return state_->connected; }

bool HttpClient::send_raw(const std::string& bytes) {
  bool done = false;
  boost::system::error_code result;
  boost::asio::async_write(state_->socket, boost::asio::buffer(bytes),
                           [&](const boost::system::error_code& error, size_t) {
                             result = error;
                             done = true;
                           });
  if (!state_->run(done)) {
    error_ = "write timed out";
    return false;
  }
  if (result) {
    error_ = "write: " + result.message();
    return false;
  }
  return true;
}

std::optional<HttpAnswer> HttpClient::read_answer(bool to_head) {
  http::response_parser<http::string_body> parser;
  parser.skip(to_head);
  parser.body_limit(1 << 30);
  bool done = false;
  boost::system::error_code result;
  http::async_read(state_->socket, state_->buffer, parser,
                   [&](const boost::system::error_code& error, size_t) {
                     result = error;
                     done = true;
                   });
  if (!state_->run(done)) {
    error_ = "no answer within the timeout";
    return std::nullopt;
  }
  if (result) {
    error_ = "read: " + result.message();
    return std::nullopt;
  }
  http::response<http::string_body> response = parser.release();
  HttpAnswer answer;
  answer.status = response.result_int();
  for (const auto& field : response) {
    std::string name(field.name_string());
    for (char& c : name)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    answer.headers[name] = std::string(field.value());
  }
  answer.body = std::move(response.body());
  answer.keep_alive = response.keep_alive();
  return answer;
}

std::optional<HttpAnswer> HttpClient::request(const std::string& method, const std::string& target,
                                              const std::string& body,
                                              const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> request(http::string_to_verb(method), target, 11);
  request.set(http::field::host, "localhost");
  for (const auto& [name, value] : headers)
    request.set(name, value);
  if (method == "POST" || !body.empty()) {
    request.body() = body;
    request.prepare_payload();
  }
  std::ostringstream text;
  text << request;
  if (!send_raw(text.str()))
    return std::nullopt;
  return read_answer(method == "HEAD");
}

bool HttpClient::closed_by_peer() {
  char byte;
  bool done = false;
  boost::system::error_code result;
  size_t got = 0;
  state_->socket.async_read_some(boost::asio::buffer(&byte, 1),
                                 [&](const boost::system::error_code& error, size_t bytes) {
                                   result = error;
                                   got = bytes;
                                   done = true;
                                 });
  if (!state_->run(done))
    return false;
  return state_->buffer.size() == 0 && got == 0 &&
         (result == boost::asio::error::eof || result == boost::asio::error::connection_reset);
}

std::optional<HttpAnswer> http_get(int port, const std::string& target,
                                   const std::map<std::string, std::string>& headers) {
  HttpClient client("127.0.0.1", port);
  return client.request("GET", target, {}, headers);
}

std::optional<HttpAnswer> http_post(int port, const std::string& target, const std::string& body,
                                    const std::map<std::string, std::string>& headers) {
  HttpClient client("127.0.0.1", port);
  return client.request("POST", target, body, headers);
}

}  // namespace percore::testing
