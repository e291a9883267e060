// Streams over a WebSocket (GET /ws/<package.Service>/<Method>), driven by
// Boost.Beast's WebSocket client over loopback: the call's response comes
// first, then each stream message is one WebSocket message each way (raw
// for example.EchoService.Echo, JSON of the registered types for
// prime.PrimeService.FindPrimes); failures close with a code and a reason;
// the handler's stream ends once, for the reason the WebSocket gave; a
// client that does not read fills the handler's window instead of the
// server's memory.

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <google/protobuf/util/json_util.h>

#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <percore/proto/closure_guard.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/prime.pb.h>
#include <percore/server_io/server.h>
#include "examples/echo_service.h"
#include "examples/prime_service.h"
#include "test/support/eventually.h"
#include "test/support/slack.h"

namespace percore {
namespace {

namespace websocket = boost::beast::websocket;
using std::chrono::milliseconds;
using testing::eventually;
using testing::scaled;

// One message read from the server.
struct WsMessage {
  std::string data;
  bool text = true;
};

// A blocking WebSocket client whose every operation is bounded: it runs the
// asynchronous operation on its own io_context for at most the timeout,
// and closes the socket past it.
class WsClient {
 public:
  // `receive_buffer_bytes` > 0: SO_RCVBUF before connecting (a small window
  // for a client that does not read).
  bool connect(int port, const std::string& target, int receive_buffer_bytes = 0) {
    boost::system::error_code error;
    auto& socket = ws_.next_layer();
    socket.open(boost::asio::ip::tcp::v4(), error);
    if (receive_buffer_bytes > 0)
      socket.set_option(boost::asio::socket_base::receive_buffer_size(receive_buffer_bytes), error);
    socket.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)},
                   error);
    if (error) {
      error_ = error;
      return false;
    }
    ws_.read_message_max(64u << 20);
    bool done = false;
    ws_.async_handshake("127.0.0.1", target, [&](const boost::system::error_code& result) {
      error_ = result;
      done = true;
    });
    return run(done, scaled(milliseconds(5000))) && !error_;
  }

  // The next message, or nullopt (closed: see close_code(); or an error).
  std::optional<WsMessage> read(milliseconds timeout = milliseconds(5000)) {
    bool done = false;
    buffer_.consume(buffer_.size());
    ws_.async_read(buffer_, [&](const boost::system::error_code& result, size_t) {
      error_ = result;
      done = true;
    });
    if (!run(done, scaled(timeout)) || error_)
      return std::nullopt;
    const auto bytes = buffer_.cdata();
    return WsMessage{std::string(static_cast<const char*>(bytes.data()), bytes.size()),
                     ws_.got_text()};
  }

  bool write(const std::string& data, bool text = true) {
    bool done = false;
    ws_.text(text);
    ws_.async_write(boost::asio::buffer(data), [&](const boost::system::error_code& result, size_t) {
      error_ = result;
      done = true;
    });
    return run(done, scaled(milliseconds(5000))) && !error_;
  }

  // Sends the first fragment of a text message and nothing more.
  bool write_first_fragment(const std::string& data) {
    bool done = false;
    ws_.text(true);
    ws_.async_write_some(false, boost::asio::buffer(data),
                         [&](const boost::system::error_code& result, size_t) {
                           error_ = result;
                           done = true;
                         });
    return run(done, scaled(milliseconds(5000))) && !error_;
  }

  // Writes `bytes` to the socket as they are (frames made by hand).
  bool write_raw(const std::string& bytes) {
    boost::system::error_code error;
    boost::asio::write(ws_.next_layer(), boost::asio::buffer(bytes), error);
    error_ = error;
    return !error;
  }

  // Reads the socket's bytes (frames unparsed, the close unanswered) until
  // the server ends the TCP connection: "fin", "reset" or "timeout".
  std::string read_raw_until_end(milliseconds timeout) {
    const int fd = ws_.next_layer().native_handle();
    const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
    char buffer[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd readable{fd, POLLIN, 0};
      if (::poll(&readable, 1, 50) <= 0)
        continue;
      const ssize_t got = ::recv(fd, buffer, sizeof(buffer), 0);
      if (got > 0)
        continue;
      if (got == 0)
        return "fin";
      if (errno == ECONNRESET)
        return "reset";
      if (errno != EAGAIN && errno != EINTR)
        return std::strerror(errno);
    }
    return "timeout";
  }

  // Sends a close frame and waits for the server's.
  bool close(websocket::close_code code = websocket::close_code::normal) {
    bool done = false;
    ws_.async_close(code, [&](const boost::system::error_code& result) {
      error_ = result;
      done = true;
    });
    return run(done, scaled(milliseconds(5000))) && !error_;
  }

  // Closes the TCP connection without a close frame: a reset (`reset`) or
  // a FIN.
  void drop(bool reset) {
    boost::system::error_code ignored;
    if (reset)
      ws_.next_layer().set_option(boost::asio::socket_base::linger(true, 0), ignored);
    ws_.next_layer().close(ignored);
  }

  // Reads until the server's close frame; its code (0 if none came).
  uint16_t read_until_closed(milliseconds timeout = milliseconds(5000)) {
    const auto deadline = std::chrono::steady_clock::now() + scaled(timeout);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!read(timeout))
        break;
    }
    return close_code();
  }
  uint16_t close_code() const {
    return error_ == websocket::error::closed ? static_cast<uint16_t>(ws_.reason().code) : 0;
  }
  std::string close_text() const { return std::string(ws_.reason().reason.c_str()); }
  const boost::system::error_code& error() const { return error_; }

 private:
  bool run(bool& done, milliseconds timeout) {
    context_.restart();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done && std::chrono::steady_clock::now() < deadline) {
      context_.run_for(milliseconds(20));
      if (context_.stopped())
        context_.restart();
    }
    if (done)
      return true;
    boost::system::error_code ignored;
    ws_.next_layer().close(ignored);  // The operation completes, aborted.
    context_.restart();
    context_.run_for(milliseconds(1000));
    error_ = boost::asio::error::timed_out;
    return false;
  }

  boost::asio::io_context context_;
  websocket::stream<boost::asio::ip::tcp::socket> ws_{context_};
  boost::beast::flat_buffer buffer_;
  boost::system::error_code error_;
};

// What the recording echo's streams saw.
struct StreamLog {
  std::mutex mutex;
  std::vector<StreamEndReason> ends;
  std::shared_ptr<Stream> stream;
  int full_writes = 0;
  uint64_t max_outstanding = 0;

  std::vector<StreamEndReason> ends_now() {
    std::lock_guard lock(mutex);
    return ends;
  }
};

constexpr size_t kFloodMessageBytes = 16 * 1024;
constexpr uint64_t kHandlerWindow = 256 * 1024;

// Echoes every message; "flood" makes it write kFloodMessageBytes messages
// until its Write says kFull, and again at each on_writable.
class RecordingHandler final : public StreamHandler {
 public:
  explicit RecordingHandler(std::shared_ptr<StreamLog> log) : log_(std::move(log)) {}
  void on_received_messages(Stream& stream, std::span<std::string> messages) override {
    for (std::string& message : messages) {
      if (message == "flood") {
        flooding_ = true;
        flood(stream);
      } else {
        stream.Write(std::move(message));
      }
    }
  }
  void on_writable(Stream& stream) override {
    if (flooding_)
      flood(stream);
  }
  void on_closed(Stream&, StreamEndReason reason) override {
    std::lock_guard lock(log_->mutex);
    log_->ends.push_back(reason);
  }

 private:
  void flood(Stream& stream) {
    for (int i = 0; i < 1000; ++i) {
      const StreamWriteStatus status = stream.Write(std::string(kFloodMessageBytes, 'f'));
      std::lock_guard lock(log_->mutex);
      log_->max_outstanding = std::max(log_->max_outstanding,
                                       stream.bytes_written() - stream.bytes_acknowledged());
      if (status == StreamWriteStatus::kFull) {
        ++log_->full_writes;
        return;
      }
      if (status != StreamWriteStatus::kOk)
        return;
    }
  }

  std::shared_ptr<StreamLog> log_;
  bool flooding_ = false;  // Callbacks are serialized.
};

// example.EchoService whose Echo accepts the stream (unless the message is
// "no stream") with a RecordingHandler.
class RecordingEchoService final : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    ClosureGuard guard(done);
    response->set_message(request->message());
    auto* server_controller = static_cast<ServerController*>(controller);
    if (request->message() == "no stream" || !server_controller->has_remote_stream())
      return;
    StreamOptions options;
    options.handler = std::make_shared<RecordingHandler>(log);
    options.max_buf_size = kHandlerWindow;
    options.idle_timeout_ms = idle_timeout_ms;
    std::shared_ptr<Stream> stream;
    if (server_controller->AcceptStream(options, &stream)) {
      std::lock_guard lock(log->mutex);
      log->stream = stream;
    }
  }
  std::shared_ptr<StreamLog> log = std::make_shared<StreamLog>();
  int idle_timeout_ms = 0;
};

class WebSocketTest : public ::testing::Test {
 protected:
  void start(ServerOptions options = {}, ServiceOptions echo_options = {},
             ExecutionMode prime_mode = ExecutionMode::kWorkerPool) {
    options.io_threads = 2;
    options.workers = 2;
    options.process_workers = 1;
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(&echo_, echo_options));
    ServiceOptions prime_options;
    prime_options.default_mode = prime_mode;
    prime_options.method_stream_types["FindPrimes"] = {"prime.PrimeChunk",
                                                       "prime.PrimeStreamReply"};
    ASSERT_TRUE(server_->AddService(&prime_, prime_options));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }
  void TearDown() override { server_.reset(); }

  // Connects to /ws/example.EchoService/Echo?message=open and reads the
  // call's response.
  void open_echo(WsClient& client, int receive_buffer_bytes = 0) {
    ASSERT_TRUE(client.connect(server_->port(), "/ws/example.EchoService/Echo?message=open",
                               receive_buffer_bytes))
        << client.error().message();
    const std::optional<WsMessage> response = client.read();
    ASSERT_TRUE(response.has_value()) << client.error().message() << " " << client.close_text();
    EXPECT_TRUE(response->text);
    EXPECT_EQ(response->data, R"({"message":"open"})");
  }

  bool ended_once_with(StreamEndReason reason) {
    const bool ended =
        eventually([&] { return !echo_.log->ends_now().empty(); }, milliseconds(5000));
    // A second end would come at once: give it a moment to show.
    std::this_thread::sleep_for(milliseconds(50));
    const std::vector<StreamEndReason> ends = echo_.log->ends_now();
    EXPECT_TRUE(ended);
    EXPECT_EQ(ends.size(), 1u);
    return ends.size() == 1 && ends[0] == reason;
  }

  RecordingEchoService echo_;
  examples::PrimeServiceImpl prime_;
  std::unique_ptr<Server> server_;
};

TEST_F(WebSocketTest, EchoesMessagesInOrderThenTheClientsCloseEndsTheStreamOnce) {
  start();
  WsClient client;
  open_echo(client);
  EXPECT_EQ(server_->stats().web_sockets_accepted, 1u);
  EXPECT_EQ(server_->stats().web_sockets_open, 1u);
  EXPECT_EQ(server_->stats().streams_accepted, 1u);
  std::vector<WsMessage> sent;
  for (int i = 0; i < 20; ++i)
    sent.push_back({"message " + std::to_string(i) + std::string(static_cast<size_t>(i) * 100, 'x'), true});
  sent.push_back({std::string("\xff\xfe binary \x00 bytes", 17), false});
  for (const WsMessage& message : sent)
    ASSERT_TRUE(client.write(message.data, message.text));
  for (size_t i = 0; i < sent.size(); ++i) {
    const std::optional<WsMessage> echo = client.read();
    ASSERT_TRUE(echo.has_value()) << "echo " << i << ": " << client.error().message();
    EXPECT_EQ(echo->data, sent[i].data) << "echo " << i;
    EXPECT_EQ(echo->text, sent[i].text) << "echo " << i;
  }
  EXPECT_TRUE(client.close()) << client.error().message();
  EXPECT_TRUE(ended_once_with(StreamEndReason::kClosedByPeer));
  EXPECT_TRUE(eventually([&] { return server_->stats().web_sockets_open == 0; }, milliseconds(5000)));
}

// FindPrimes over a WebSocket: JSON chunks in, JSON replies and a summary
// out, then the server's normal close.
void find_primes_over_a_web_socket(uint16_t port) {
  WsClient client;
  ASSERT_TRUE(client.connect(port, "/ws/prime.PrimeService/FindPrimes"))
      << client.error().message();
  const std::optional<WsMessage> response = client.read();
  ASSERT_TRUE(response.has_value()) << client.close_code() << " " << client.close_text();
  EXPECT_EQ(response->data, "{}");
  ASSERT_TRUE(client.write(R"({"numbers":[2,3,4,5,97,100],"last":false})"));
  ASSERT_TRUE(client.write(R"({"numbers":["7919","7920"],"last":true})"));
  std::vector<prime::PrimeStreamReply> replies;
  for (int i = 0; i < 3; ++i) {
    const std::optional<WsMessage> message = client.read();
    ASSERT_TRUE(message.has_value()) << "reply " << i << ": " << client.close_code() << " "
                                     << client.close_text();
    EXPECT_TRUE(message->text);
    prime::PrimeStreamReply reply;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(message->data, &reply).ok())
        << message->data;
    replies.push_back(reply);
  }
  ASSERT_TRUE(replies[0].has_found());
  EXPECT_EQ(replies[0].found().chunk(), 0u);
  EXPECT_EQ(std::vector<uint64_t>(replies[0].found().primes().begin(),
                                  replies[0].found().primes().end()),
            (std::vector<uint64_t>{2, 3, 5, 97}));
  ASSERT_TRUE(replies[1].has_found());
  EXPECT_EQ(replies[1].found().chunk(), 1u);
  EXPECT_EQ(std::vector<uint64_t>(replies[1].found().primes().begin(),
                                  replies[1].found().primes().end()),
            (std::vector<uint64_t>{7919}));
  ASSERT_TRUE(replies[2].has_summary());
  EXPECT_EQ(replies[2].summary().chunks(), 2u);
  EXPECT_EQ(replies[2].summary().numbers_checked(), 8u);
  EXPECT_EQ(replies[2].summary().primes_found(), 5u);
  EXPECT_EQ(replies[2].summary().error(), "");
  EXPECT_FALSE(client.read().has_value());
  EXPECT_EQ(client.close_code(), websocket::close_code::normal) << client.close_text();
}

TEST_F(WebSocketTest, FindPrimesSpeaksJsonAndTheServerClosesNormally) {
  start();
  find_primes_over_a_web_socket(server_->port());
}

// The same from a worker process (kProcessPool): the server relays the
// worker's stream to the WebSocket; the worker is free again afterwards.
TEST_F(WebSocketTest, FindPrimesInAWorkerProcessOverAWebSocket) {
  start({}, {}, ExecutionMode::kProcessPool);
  find_primes_over_a_web_socket(server_->port());
  find_primes_over_a_web_socket(server_->port());  // The one worker again.
  EXPECT_EQ(server_->stats().streams_accepted, 2u);
}

TEST_F(WebSocketTest, UnknownMethodClosesWithTheError) {
  start();
  WsClient client;
  ASSERT_TRUE(client.connect(server_->port(), "/ws/example.EchoService/Nope"));
  EXPECT_FALSE(client.read().has_value());
  EXPECT_EQ(client.close_code(), websocket::close_code::policy_error);
  EXPECT_EQ(client.close_text(), "code 1002: no such method: example.EchoService.Nope");

  WsClient other;
  ASSERT_TRUE(other.connect(server_->port(), "/ws/nope.Service/Echo"));
  EXPECT_FALSE(other.read().has_value());
  EXPECT_EQ(other.close_code(), websocket::close_code::policy_error);
  EXPECT_EQ(other.close_text(), "code 1001: no such service: nope.Service");

  WsClient bad_query;
  ASSERT_TRUE(bad_query.connect(server_->port(), "/ws/example.EchoService/Echo?nope=1"));
  EXPECT_FALSE(bad_query.read().has_value());
  EXPECT_EQ(bad_query.close_code(), websocket::close_code::policy_error);
  EXPECT_NE(bad_query.close_text().find("code 1003: "), std::string::npos) << bad_query.close_text();
}

TEST_F(WebSocketTest, AMethodThatDoesNotAcceptTheStreamAnswersThenCloses) {
  start();
  WsClient client;
  ASSERT_TRUE(client.connect(server_->port(), "/ws/prime.PrimeService/IsPrime?number=7919"));
  const std::optional<WsMessage> response = client.read();
  ASSERT_TRUE(response.has_value()) << client.close_text();
  EXPECT_EQ(response->data, R"({"isPrime":true})");
  EXPECT_FALSE(client.read().has_value());
  EXPECT_EQ(client.close_code(), websocket::close_code::policy_error);
  EXPECT_EQ(client.close_text(), "the handler did not accept a stream");

  WsClient echo;
  ASSERT_TRUE(echo.connect(server_->port(), "/ws/example.EchoService/Echo?message=no%20stream"));
  ASSERT_TRUE(echo.read().has_value());
  EXPECT_FALSE(echo.read().has_value());
  EXPECT_EQ(echo.close_code(), websocket::close_code::policy_error);
}

TEST_F(WebSocketTest, MalformedJsonClosesWithBadPayload) {
  start();
  WsClient client;
  ASSERT_TRUE(client.connect(server_->port(), "/ws/prime.PrimeService/FindPrimes"));
  ASSERT_TRUE(client.read().has_value());
  ASSERT_TRUE(client.write(R"({"numbers":[2,3)"));
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::bad_payload);
  EXPECT_NE(client.close_text().find("not a prime.PrimeChunk"), std::string::npos)
      << client.close_text();

  WsClient unknown_field;
  ASSERT_TRUE(unknown_field.connect(server_->port(), "/ws/prime.PrimeService/FindPrimes"));
  ASSERT_TRUE(unknown_field.read().has_value());
  ASSERT_TRUE(unknown_field.write(R"({"nope":1})"));
  EXPECT_EQ(unknown_field.read_until_closed(), websocket::close_code::bad_payload);
}

TEST_F(WebSocketTest, TypedMessagesConvertBothWaysAndBadJsonResetsTheStreamOnce) {
  ServiceOptions echo_options;
  echo_options.default_mode = ExecutionMode::kWorkerPool;
  echo_options.method_stream_types["Echo"] = {"example.EchoRequest", "example.EchoResponse"};
  start({}, echo_options);
  WsClient client;
  open_echo(client);
  ASSERT_TRUE(client.write(R"({"message":"typed"})"));
  const std::optional<WsMessage> echo = client.read();
  ASSERT_TRUE(echo.has_value()) << client.close_text();
  EXPECT_TRUE(echo->text);
  EXPECT_EQ(echo->data, R"({"message":"typed"})");
  // A binary message is the message's protobuf bytes, unchanged.
  example::EchoRequest request;
  request.set_message("binary");
  ASSERT_TRUE(client.write(request.SerializeAsString(), /*text=*/false));
  const std::optional<WsMessage> binary_echo = client.read();
  ASSERT_TRUE(binary_echo.has_value());
  EXPECT_EQ(binary_echo->data, R"({"message":"binary"})");
  // A required field missing, then JSON that does not parse.
  ASSERT_TRUE(client.write("{}"));
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::bad_payload);
  EXPECT_NE(client.close_text().find("not a example.EchoRequest"), std::string::npos)
      << client.close_text();
  EXPECT_TRUE(ended_once_with(StreamEndReason::kResetByPeer));

  echo_.log = std::make_shared<StreamLog>();
  WsClient other;
  open_echo(other);
  ASSERT_TRUE(other.write("{\"message\":"));
  EXPECT_EQ(other.read_until_closed(), websocket::close_code::bad_payload);
  EXPECT_TRUE(ended_once_with(StreamEndReason::kResetByPeer));
}

TEST_F(WebSocketTest, AMessageOverMaxBodyBytesIsRefused) {
  ServerOptions options;
  options.max_body_bytes = 64 * 1024;
  start(options);
  WsClient client;
  open_echo(client);
  ASSERT_TRUE(client.write("small"));
  const std::optional<WsMessage> echo = client.read();
  ASSERT_TRUE(echo.has_value());
  EXPECT_EQ(echo->data, "small");
  client.write(std::string(100 * 1024, 'b'), false);  // The server may close while it is sent.
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::too_big) << client.error().message();
  EXPECT_EQ(client.close_text(),
            "a message exceeds 65496 bytes (max_body_bytes less 40 for the stream frame)");
  EXPECT_TRUE(ended_once_with(StreamEndReason::kMessageTooLarge));
  EXPECT_GE(server_->stats().rejected_frames_total(), 1u);
}

TEST_F(WebSocketTest, AClientThatNeverReadsFillsTheHandlersWindowNotTheServer) {
  ServerOptions options;
  options.socket_send_buffer_bytes = 1;  // The kernel's smallest: the window fills sooner.
  start(options);
  WsClient client;
  open_echo(client, /*receive_buffer_bytes=*/1);
  ASSERT_TRUE(client.write("flood"));
  // The client reads nothing from now on.
  ASSERT_TRUE(eventually(
      [&] {
        std::lock_guard lock(echo_.log->mutex);
        return echo_.log->full_writes > 0;
      },
      milliseconds(5000)));
  std::shared_ptr<Stream> stream;
  {
    std::lock_guard lock(echo_.log->mutex);
    stream = echo_.log->stream;
    EXPECT_LE(echo_.log->max_outstanding, kHandlerWindow + kFloodMessageBytes);
  }
  ASSERT_NE(stream, nullptr);
  // What the handler could write stops growing: the window, plus what the
  // socket buffers took.
  std::this_thread::sleep_for(milliseconds(300));
  const uint64_t written = stream->bytes_written();
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(stream->bytes_written(), written);
  EXPECT_LE(stream->bytes_written() - stream->bytes_acknowledged(),
            kHandlerWindow + kFloodMessageBytes);
  EXPECT_LT(written, kHandlerWindow + (8u << 20)) << "the server kept taking messages";
  EXPECT_FALSE(stream->end_reason().has_value());
  client.drop(/*reset=*/true);
  EXPECT_TRUE(ended_once_with(StreamEndReason::kConnectionBroken));
}

TEST_F(WebSocketTest, AnAbruptCloseMidStreamEndsItBrokenOnce) {
  start();
  for (const bool reset : {true, false}) {
    SCOPED_TRACE(reset ? "reset" : "FIN");
    echo_.log = std::make_shared<StreamLog>();
    WsClient client;
    open_echo(client);
    ASSERT_TRUE(client.write("one"));
    ASSERT_TRUE(client.read().has_value());
    client.drop(reset);
    EXPECT_TRUE(ended_once_with(StreamEndReason::kConnectionBroken));
  }
  EXPECT_TRUE(eventually([&] { return server_->stats().web_sockets_open == 0; }, milliseconds(5000)));
}

TEST_F(WebSocketTest, StopClosesAnOpenWebSocketGoingAway) {
  start();
  WsClient client;
  open_echo(client);
  ASSERT_TRUE(client.write("before stop"));
  ASSERT_TRUE(client.read().has_value());
  auto stopped = std::async(std::launch::async, [&] { server_->Stop(milliseconds(1000)); });
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::going_away) << client.close_text();
  stopped.wait();
  EXPECT_TRUE(ended_once_with(StreamEndReason::kClosedByUs));
}

TEST_F(WebSocketTest, TheStreamsIdleTimeoutClosesTheWebSocket) {
  echo_.idle_timeout_ms = 200;
  start();
  WsClient client;
  open_echo(client);
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::normal);
  EXPECT_EQ(client.close_text(), "idle timeout");
  EXPECT_TRUE(ended_once_with(StreamEndReason::kIdleTimeout));
}

// Writes `request` on a new connection and reads the answer until the
// server closes (bounded).
std::string raw_http_answer(uint16_t port, const std::string& request) {
  boost::asio::io_context context;
  boost::asio::ip::tcp::socket socket(context);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  // Bounded: a server that never answers fails the test instead of hanging it.
  const timeval timeout{static_cast<time_t>(scaled(milliseconds(5000)).count() / 1000), 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  boost::asio::write(socket, boost::asio::buffer(request));
  std::string answer;
  boost::system::error_code error;
  char buffer[4096];
  for (;;) {
    const size_t n = socket.read_some(boost::asio::buffer(buffer), error);
    if (error)
      break;
    answer.append(buffer, n);
  }
  return answer;
}

TEST_F(WebSocketTest, APlainGetOfAWebSocketPathIsRefused) {
  start();
  const std::string answer = raw_http_answer(
      static_cast<uint16_t>(server_->port()),
      "GET /ws/example.EchoService/Echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 400") << answer;
  EXPECT_NE(answer.find("Upgrade: websocket"), std::string::npos) << answer;
}

// RFC 6455 4.2.1: a key that is not 16 bytes in base64, or two keys, are
// refused before the upgrade.
TEST_F(WebSocketTest, AnInvalidKeyIsRefusedBeforeTheUpgrade) {
  start();
  for (const std::string& keys :
       {std::string("Sec-WebSocket-Key: abc\r\n"),
        std::string("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\r\n"),
        std::string("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")}) {
    std::string request = "GET /ws/example.EchoService/Echo?message=x HTTP/1.1\r\nHost: x\r\n";
    request += "Upgrade: websocket\r\nConnection: Upgrade, close\r\nSec-WebSocket-Version: 13\r\n";
    request += keys;
    request += "\r\n";
    const std::string answer = raw_http_answer(static_cast<uint16_t>(server_->port()), request);
    EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 400") << keys << answer;
    EXPECT_NE(answer.find("Sec-WebSocket-Key"), std::string::npos) << answer;
  }
  EXPECT_EQ(server_->stats().web_sockets_accepted, 0u);
}

// A close reason is UTF-8 even when the error names bytes of the query that
// are not (a conforming client would fail the connection otherwise).
TEST_F(WebSocketTest, ACloseReasonIsUtf8WhateverTheQueryHeld) {
  start();
  WsClient client;
  ASSERT_TRUE(client.connect(server_->port(), "/ws/example.EchoService/Echo?message=%FF%FE"))
      << client.error().message();
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::policy_error)
      << client.error().message();
  EXPECT_NE(client.close_text().find("\\xFF"), std::string::npos) << client.close_text();
}

// A message begun and not finished within partial_frame_timeout_ms closes
// the WebSocket 1008, as a request begun and not finished does over HTTP;
// the handler's stream is reset, once.
TEST_F(WebSocketTest, AMessageBegunAndNotFinishedInTimeIsClosed) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 300;
  start(options);
  WsClient client;
  open_echo(client);
  ASSERT_TRUE(client.write_first_fragment("the first half"));
  const auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::policy_error)
      << client.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, milliseconds(300));
  EXPECT_NE(client.close_text().find("partial_frame_timeout_ms"), std::string::npos)
      << client.close_text();
  EXPECT_TRUE(ended_once_with(StreamEndReason::kResetByPeer));
}

// A client frame made by hand: `first` is FIN, RSV and the opcode; the
// payload is masked (RFC 6455 5.3).
std::string client_frame(uint8_t first, const std::string& payload) {
  static constexpr uint8_t kMask[4] = {0xA1, 0xB2, 0xC3, 0xD4};
  std::string out;
  out += static_cast<char>(first);
  if (payload.size() > 0xFFFF) {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8)
      out += static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xFF);
  } else if (payload.size() > 125) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xFF);
  } else {
    out += static_cast<char>(0x80 | payload.size());
  }
  for (const uint8_t byte : kMask)
    out += static_cast<char>(byte);
  for (size_t i = 0; i < payload.size(); ++i)
    out += static_cast<char>(static_cast<uint8_t>(payload[i]) ^ kMask[i % 4]);
  return out;
}

// Each frame RFC 6455 forbids closes with its code and a reason that names
// the fault, at once (well before partial_frame_timeout_ms), and ends the
// handler's stream once.
TEST_F(WebSocketTest, AFrameThatBreaksTheProtocolClosesWithItsCodeAndAReason) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 20000;
  start(options);
  struct Case {
    const char* name;
    std::string bytes;
    uint16_t code;
    const char* reason_part;
  };
  std::string unmasked = client_frame(0x81, "hi");
  unmasked[1] = static_cast<char>(unmasked[1] & 0x7F);
  const Case cases[] = {
      {"reserved bits", client_frame(0xC1, "x"), 1002, "reserved bits"},
      {"reserved opcode", client_frame(0x83, "x"), 1002, "reserved opcode 3"},
      {"unmasked", unmasked, 1002, "unmasked"},
      {"fragmented ping", client_frame(0x09, "p"), 1002, "fragmented control frame"},
      // Only the first 3 bytes of the header: refused without the rest.
      {"64-bit length, top bit set", std::string("\x82\xFF\x80", 3), 1002,
       "most significant bit"},
      {"continuation alone", client_frame(0x80, "x"), 1002, "no message begun"},
      {"close code 1005", client_frame(0x88, std::string("\x03\xED", 2)), 1002,
       "close code 1005"},
      {"text not UTF-8", client_frame(0x81, "ok \xC3\x28"), 1007, "not UTF-8"},
      {"close reason not UTF-8", client_frame(0x88, "\x03\xE8\xC3\x28"), 1007,
       "reason is not UTF-8"},
      // The header of a 1 GiB message, and nothing of its payload.
      {"1 GiB declared",
       std::string("\x82\xFF\x00\x00\x00\x00\x40\x00\x00\x00\x01\x02\x03\x04", 14), 1009,
       "max_body_bytes"},
  };
  for (const Case& bad : cases) {
    SCOPED_TRACE(bad.name);
    echo_.log = std::make_shared<StreamLog>();
    WsClient client;
    open_echo(client);
    ASSERT_TRUE(client.write("before"));
    const std::optional<WsMessage> echo = client.read();
    ASSERT_TRUE(echo.has_value()) << client.error().message();
    EXPECT_EQ(echo->data, "before");
    const auto sent = std::chrono::steady_clock::now();
    ASSERT_TRUE(client.write_raw(bad.bytes));
    EXPECT_EQ(client.read_until_closed(), bad.code) << client.error().message();
    EXPECT_LT(std::chrono::steady_clock::now() - sent, scaled(milliseconds(3000)));
    EXPECT_NE(client.close_text().find(bad.reason_part), std::string::npos)
        << client.close_text();
    EXPECT_TRUE(ended_once_with(bad.code == 1009 ? StreamEndReason::kMessageTooLarge
                                                 : StreamEndReason::kResetByPeer));
  }
  EXPECT_EQ(server_->stats().web_socket_messages_rejected, std::size(cases));
}

// The client's close frame, right behind its messages (one write): the
// handler's echo of each goes out before the close is answered, whatever
// the execution mode.
TEST_F(WebSocketTest, AClientsCloseIsAnsweredAfterWhatTheHandlerWroteBeforeIt) {
  for (const ExecutionMode mode : {ExecutionMode::kInline, ExecutionMode::kWorkerPool}) {
    SCOPED_TRACE(mode == ExecutionMode::kInline ? "inline" : "worker pool");
    server_.reset();
    echo_.log = std::make_shared<StreamLog>();
    ServiceOptions echo_options;
    echo_options.default_mode = mode;
    start({}, echo_options);
    for (const int count : {1, 2, 20}) {
      SCOPED_TRACE(count);
      echo_.log = std::make_shared<StreamLog>();
      WsClient client;
      open_echo(client);
      std::string bytes;
      for (int i = 0; i < count; ++i)
        bytes += client_frame(0x81, "m" + std::to_string(i));
      bytes += client_frame(0x88, std::string("\x03\xE8", 2) + "bye");
      ASSERT_TRUE(client.write_raw(bytes));
      for (int i = 0; i < count; ++i) {
        const std::optional<WsMessage> echo = client.read();
        ASSERT_TRUE(echo.has_value()) << "echo " << i << ": " << client.close_code() << " "
                                      << client.close_text();
        EXPECT_EQ(echo->data, "m" + std::to_string(i));
      }
      EXPECT_FALSE(client.read().has_value());
      EXPECT_EQ(client.close_code(), websocket::close_code::normal) << client.error().message();
      EXPECT_TRUE(ended_once_with(StreamEndReason::kClosedByPeer));
    }
  }
}

// A close the client never answers: once everything (the close frame
// included) has left the server, the connection ends with a FIN, not a
// reset, after close_linger_ms.
TEST_F(WebSocketTest, AnUnansweredCloseEndsWithAFinOnceAllIsSent) {
  ServerOptions options;
  options.close_linger_ms = 200;
  start(options);
  for (int i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    WsClient client;
    ASSERT_TRUE(client.connect(server_->port(), "/ws/prime.PrimeService/IsPrime?number=7"));
    const std::optional<WsMessage> response = client.read();
    ASSERT_TRUE(response.has_value()) << client.close_text();
    EXPECT_EQ(client.read_raw_until_end(milliseconds(3000)), "fin");
  }
}

// The example echo service: a client that reads, only after it wrote a
// burst of large messages, gets every one back.
TEST(WebSocketEchoExampleTest, ABurstOfLargeMessagesFromAReadingClientIsEchoedWhole) {
  ServerOptions options;
  options.io_threads = 1;
  Server server(options);
  examples::EchoServiceImpl echo;
  ASSERT_TRUE(server.AddService(&echo));
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  WsClient client;
  ASSERT_TRUE(client.connect(server.port(), "/ws/example.EchoService/Echo?message=hi"));
  ASSERT_TRUE(client.read().has_value()) << client.close_text();
  constexpr int kMessages = 5;
  constexpr size_t kMessageBytes = 1000000;
  std::string burst;
  for (int i = 0; i < kMessages; ++i)
    burst += client_frame(0x82, std::string(kMessageBytes, static_cast<char>('a' + i)));
  ASSERT_TRUE(client.write_raw(burst)) << client.error().message();
  for (int i = 0; i < kMessages; ++i) {
    const std::optional<WsMessage> message = client.read();
    ASSERT_TRUE(message.has_value()) << "echo " << i << ": " << client.close_code() << " "
                                     << client.close_text();
    EXPECT_EQ(message->data, std::string(kMessageBytes, static_cast<char>('a' + i)));
  }
  EXPECT_TRUE(client.close());
  server.Stop();
}

// A frame header cut short is a message begun: timed out as any other.
TEST_F(WebSocketTest, HalfAFrameHeaderIsTimedOutAsAMessageBegun) {
  ServerOptions options;
  options.partial_frame_timeout_ms = 300;
  start(options);
  WsClient client;
  open_echo(client);
  ASSERT_TRUE(client.write_raw(std::string("\x81", 1)));
  const auto sent = std::chrono::steady_clock::now();
  EXPECT_EQ(client.read_until_closed(), websocket::close_code::policy_error)
      << client.error().message();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, milliseconds(300));
  EXPECT_NE(client.close_text().find("partial_frame_timeout_ms"), std::string::npos)
      << client.close_text();
  EXPECT_TRUE(ended_once_with(StreamEndReason::kResetByPeer));
}

TEST(WebSocketOptionsTest, AddServiceRefusesUnknownStreamTypesAndMethods) {
  Server server;
  examples::PrimeServiceImpl prime;
  std::string error;
  ServiceOptions unknown_type;
  unknown_type.method_stream_types["FindPrimes"] = {"prime.NoSuchChunk", "prime.PrimeStreamReply"};
  EXPECT_FALSE(server.AddService(&prime, unknown_type, &error));
  EXPECT_NE(error.find("prime.NoSuchChunk"), std::string::npos) << error;
  ServiceOptions unknown_method;
  unknown_method.method_stream_types["NoSuchMethod"] = {"prime.PrimeChunk", ""};
  EXPECT_FALSE(server.AddService(&prime, unknown_method, &error));
  EXPECT_NE(error.find("NoSuchMethod"), std::string::npos) << error;
  ServiceOptions output_only;
  output_only.method_stream_types["FindPrimes"] = {"", "prime.PrimeStreamReply"};
  EXPECT_TRUE(server.AddService(&prime, output_only, &error)) << error;
}

}  // namespace
}  // namespace percore
