// Fuzz target: arbitrary bytes, split at arbitrary points, through the frame
// decoder and the request dispatch of a real server connection. The server
// is a real percore::Server in this process; each input gets a new
// connection over a socketpair (Server::AddConnection: no network), is
// written in pieces, each piece read by the server before the next is sent,
// and ends with a half-close. Then the server's promises are checked:
//   - every request frame before the first bad frame is answered exactly
//     once (correlation ids compared as multisets), with a well-formed
//     response frame, and nothing else is sent;
//   - the connection ends (the server's FIN) within a bound.
// A broken promise aborts, which libFuzzer records as a crash.
//
// Input: byte 0 chooses how the rest is split (0: one write; otherwise
// pieces of 1..2*byte0 bytes from a generator seeded by it); the rest is the
// byte stream.
//
// Built as a libFuzzer target with clang (-DPERCORE_FUZZ=ON) and, in every
// build, as a replay program that runs the seed corpus and every input that
// ever crashed (test/fuzz/regressions) under ctest.

// Boost 1.74's Asio needs <utility> first under GCC 12 in C++20.
#include <utility>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "examples/echo_service.h"
#include <percore/proto/detail/frame_decoder.h>
#include <percore/server_io/server.h>
#include "test/support/test_service_impl.h"

namespace {

using Clock = std::chrono::steady_clock;

// Small limits, so that inputs reach them: the body limit, the in-flight
// limit (dispatch pauses) and the unwritten-bytes limit (back-pressure).
constexpr size_t kMaxBodyBytes = 8192;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "server_connection_fuzzer: %s\n", what.c_str());
  std::abort();
}

// Sleep capped at 2 ms and Bulk at 64 KiB: the fuzzer picks the numbers.
class CappedTestService : public percore::testing::TestServiceImpl {
 public:
  void Bulk(google::protobuf::RpcController* controller, const percore::test::BulkRequest* request,
            percore::test::BulkResponse* response, google::protobuf::Closure* done) override {
    percore::test::BulkRequest capped = *request;
    capped.set_bytes(std::min<uint32_t>(request->bytes(), 64 * 1024));
    TestServiceImpl::Bulk(controller, &capped, response, done);
  }
  void Sleep(google::protobuf::RpcController* controller,
             const percore::test::SleepRequest* request, percore::test::SleepResponse* response,
             google::protobuf::Closure* done) override {
    percore::test::SleepRequest capped = *request;
    capped.set_milliseconds(std::min<uint32_t>(request->milliseconds(), 2));
    TestServiceImpl::Sleep(controller, &capped, response, done);
  }
};

percore::Server& server() {
  static percore::examples::EchoServiceImpl echo;
  static CappedTestService test_service;
  static percore::Server* instance = [] {
    percore::ServerOptions options;
    options.io_threads = 1;
    options.workers = 2;
    options.max_body_bytes = kMaxBodyBytes;
    options.max_inflight_per_connection = 4;
    options.max_unwritten_bytes_per_connection = kMaxBodyBytes;
    options.partial_frame_timeout_ms = 0;  // Time would make runs differ.
    auto* created = new percore::Server(options);
    percore::ServiceOptions test_options;
    test_options.method_modes["Sleep"] = percore::ExecutionMode::kWorkerPool;
    test_options.method_modes["WhoAmI"] = percore::ExecutionMode::kWorkerPool;
    test_options.method_modes["Bulk"] = percore::ExecutionMode::kWorkerPool;
    std::string error;
    if (!created->AddService(&echo) || !created->AddService(&test_service, test_options) ||
        !created->Start("127.0.0.1:0", &error)) {
      fail("cannot start the server: " + error);
    }
    return created;
  }();
  return *instance;
}

// The correlation ids the server owes answers for: the request frames
// before the first frame it must reject (the server's decoder has the same
// options, so it sees the same frames).
std::multiset<int64_t> owed_answers(std::string_view stream) {
  percore::FrameDecoder decoder(percore::FrameDecoderOptions{kMaxBodyBytes});
  decoder.feed(stream);
  percore::Frame frame;
  std::multiset<int64_t> owed;
  while (decoder.next(frame) == percore::DecodeStatus::kFrame) {
    if (!frame.is_request())
      break;  // A response sent to a server is rejected like a bad frame.
    owed.insert(frame.meta.correlation_id());
  }
  return owed;
}

uint64_t next_random(uint64_t& state) {  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The client end of one connection: writes pieces, collects the answers.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) { ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK); }
  ~Peer() { ::close(fd_); }

  // Writes `bytes` whole, reading answers meanwhile; false if the server
  // closed its end (it may, after a bad frame).
  bool write_all(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
      const ssize_t written = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (written > 0) {
        bytes.remove_prefix(static_cast<size_t>(written));
        continue;
      }
      if (written < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
      if (!read_available(10) || Clock::now() > deadline)
        return false;
    }
    return true;
  }

  // Waits until the server has read everything written (or stops taking
  // it for a while: a server that pauses reading is allowed to).
  void wait_taken() {
    const auto give_up = Clock::now() + std::chrono::milliseconds(20);
    for (;;) {
      int queued = 0;
      if (::ioctl(fd_, SIOCOUTQ, &queued) != 0 || queued == 0 || Clock::now() > give_up)
        return;
      read_available(0);
      std::this_thread::yield();
    }
  }

  // Reads what has arrived, waiting up to `wait_ms` for something; false at
  // the end of stream.
  bool read_available(int wait_ms) {
    pollfd poll_fd{fd_, POLLIN, 0};
    if (::poll(&poll_fd, 1, wait_ms) <= 0)
      return !ended_;
    char buffer[16384];
    for (;;) {
      const ssize_t bytes = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (bytes > 0) {
        received_.append(buffer, static_cast<size_t>(bytes));
        continue;
      }
      if (bytes == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        ended_ = true;
      return !ended_;
    }
  }

  void half_close() { ::shutdown(fd_, SHUT_WR); }
  bool ended() const { return ended_; }
  const std::string& received() const { return received_; }

 private:
  int fd_;
  std::string received_;
  bool ended_ = false;
};

void check_answers(const std::string& received, std::multiset<int64_t> owed) {
  percore::FrameDecoder decoder(percore::FrameDecoderOptions{~size_t{0} >> 1});
  decoder.feed(received);
  percore::Frame frame;
  for (;;) {
    const percore::DecodeStatus status = decoder.next(frame);
    if (status == percore::DecodeStatus::kNeedMore)
      break;
    if (status != percore::DecodeStatus::kFrame)
      fail(std::string("the server wrote a malformed frame: ") +
           std::string(percore::decode_status_text(status)));
    if (frame.is_request())
      fail("the server wrote a request frame");
    const auto owed_one = owed.find(frame.meta.correlation_id());
    if (owed_one == owed.end())
      fail("answer for correlation id " + std::to_string(frame.meta.correlation_id()) +
           " that was not owed (or answered twice)");
    owed.erase(owed_one);
  }
  if (decoder.buffered_bytes() != 0)
    fail("the server's output ends in the middle of a frame");
  if (!owed.empty())
    fail(std::to_string(owed.size()) + " request(s) never answered, e.g. correlation id " +
         std::to_string(*owed.begin()));
}

// Whether the server takes the stream for HTTP: it starts with a request
// line's method and a space (ServerConnection::sniff_protocol).
bool is_http(std::string_view stream) {
  for (const std::string_view method : {"GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ",
                                         "PATCH ", "TRACE ", "CONNECT "}) {
    if (stream.substr(0, method.size()) == method)
      return true;
  }
  return false;
}

// An HTTP stream's promises: the output is whole HTTP/1.1 answers and
// nothing else, at most one per request the input holds plus one for the
// malformed request that ends it. The requests are parsed with the server's
// limits, so the n-th answer is to the n-th request; an answer to HEAD has
// no body (RFC 9110, 9.3.2), and only the request list says which those are.
void check_http_answers(std::string_view input, const std::string& received) {
  namespace http = boost::beast::http;
  std::vector<bool> head_requests;
  {
    boost::beast::flat_buffer buffer;
    auto space = buffer.prepare(input.size());
    std::memcpy(space.data(), input.data(), input.size());
    buffer.commit(input.size());
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(kMaxBodyBytes);
      parser.header_limit(
          static_cast<std::uint32_t>(percore::ServerOptions{}.max_http_header_bytes));
      boost::system::error_code error;
      while (buffer.size() > 0 && !parser.is_done()) {
        const size_t used = parser.put(buffer.data(), error);
        buffer.consume(used);
        if (error || used == 0)
          break;
      }
      if (!parser.is_done())
        break;
      head_requests.push_back(parser.get().method() == http::verb::head);
    }
  }
  const size_t requests = head_requests.size();
  boost::beast::flat_buffer buffer;
  auto space = buffer.prepare(received.size());
  std::memcpy(space.data(), received.data(), received.size());
  buffer.commit(received.size());
  size_t answers = 0;
  while (buffer.size() > 0) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(~std::uint64_t{0});
    if (answers < requests && head_requests[answers])
      parser.skip(true);
    boost::system::error_code error;
    while (buffer.size() > 0 && !parser.is_done()) {
      const size_t used = parser.put(buffer.data(), error);
      buffer.consume(used);
      if (error && error != http::error::need_more)
        fail("the server wrote a malformed HTTP answer: " + error.message());
      if (used == 0)
        break;
    }
    if (!parser.is_done())
      fail("the server's HTTP output ends in the middle of an answer");
    const unsigned status = parser.get().result_int();
    if (status != 200 && (status < 400 || status > 599))
      fail("the server answered HTTP status " + std::to_string(status));
    ++answers;
  }
  if (answers > requests + 1)
    fail(std::to_string(answers) + " HTTP answers to " + std::to_string(requests) + " requests");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  const uint8_t split = data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::multiset<int64_t> owed = owed_answers(stream);

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    fail("socketpair failed");
  if (!server().AddConnection(fds[0]))
    fail("the server refused the connection");
  Peer peer(fds[1]);
  const auto deadline = Clock::now() + std::chrono::seconds(10);

  uint64_t random = split;
  size_t offset = 0;
  bool writable = true;
  while (offset < stream.size() && writable) {
    size_t piece = stream.size() - offset;
    if (split != 0)
      piece = std::min<size_t>(piece, 1 + next_random(random) % (2 * size_t{split}));
    writable = peer.write_all(stream.substr(offset, piece), deadline);
    offset += piece;
    if (split != 0)
      peer.wait_taken();
  }
  peer.half_close();
  while (!peer.ended()) {
    if (Clock::now() > deadline)
      fail("the connection did not end within 10 s of the half-close");
    peer.read_available(50);
  }
  if (is_http(stream)) {
    check_http_answers(stream, peer.received());
  } else {
    check_answers(peer.received(), owed);
  }
  return 0;
}
