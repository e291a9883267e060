// The server side of brpc's Streaming RPC, driven over a raw TCP socket
// that writes and reads the frames byte by byte: a call that attaches a
// stream is answered inside a DATA frame carrying the server's settings,
// messages are echoed in order, the server's window bounds what it writes
// without FEEDBACK, unknown streams are answered RST, errors before the
// handler are wrapped too, and the stream ends cleanly when the connection
// breaks or the server stops. The echo service is registered inline and on
// the worker pool.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/detail/stream_frame.h>
#include <percore/proto/echo.pb.h>
#include <percore/proto/error_code.h>
#include <percore/server_io/server.h>
#include "examples/echo_service.h"
#include "test/support/blocking_client.h"
#include "test/support/bytes.h"
#include "test/support/eventually.h"
#include "test/support/process_children.h"
#include "test/support/slack.h"
#include "test/support/wait_readable.h"

namespace percore {

// For the test names and failure messages.
void PrintTo(ExecutionMode mode, std::ostream* out) {
  *out << (mode == ExecutionMode::kInline ? "inline" : "worker pool");
}

namespace {

using std::chrono::milliseconds;
using testing::BlockingClient;
using testing::scaled;

constexpr size_t kNoLimit = ~size_t{0} >> 1;
// The server's window: StreamOptions::max_buf_size's default.
constexpr size_t kServerWindow = 2u << 20;

// One frame read from the server: a PRPC frame or a STRM frame.
struct Incoming {
  bool stream = false;
  wire::RpcMeta meta;                 // PRPC.
  std::string message;                // PRPC.
  wire::StreamFrameMeta stream_meta;  // STRM.
  std::string data;                   // STRM.

  wire::FrameType type() const { return stream_meta.frame_type(); }
};

enum class Read { kFrame, kClosed, kTimedOut, kRejected };

// A decoded PRPC answer (the data of the DATA frame that wraps it).
struct Answer {
  wire::RpcMeta meta;
  std::string message;
};

std::optional<Answer> decode_answer(const std::string& bytes) {
  FrameDecoder decoder;
  decoder.feed(bytes);
  Frame frame;
  if (decoder.next(frame) != DecodeStatus::kFrame || decoder.buffered_bytes() != 0)
    return std::nullopt;
  return Answer{frame.meta, std::string(frame.message)};
}

std::string to_bytes(GatherBuffer& buffer) {
  return testing::flatten(buffer);
}

std::string stream_frame(const wire::StreamFrameMeta& meta, std::string data = {}) {
  GatherBuffer buffer;
  EXPECT_EQ(encode_stream_frame(meta, std::move(data), kNoLimit, buffer), EncodeStatus::kOk);
  return to_bytes(buffer);
}

// A request frame of `service`.`method` with an EchoRequest of `message`,
// attaching the client's stream `client_stream` (none if negative).
std::string stream_request(int64_t correlation_id, StreamId client_stream,
                           const std::string& message,
                           const std::string& service = "example.EchoService",
                           const std::string& method = "Echo", bool need_feedback = true) {
  wire::RpcMeta meta;
  meta.set_correlation_id(correlation_id);
  meta.mutable_request()->set_service_name(service);
  meta.mutable_request()->set_method_name(method);
  if (client_stream >= 0) {
    wire::StreamSettings* settings = meta.mutable_stream_settings();
    settings->set_stream_id(client_stream);
    settings->set_need_feedback(need_feedback);
    settings->set_writable(true);
  }
  example::EchoRequest request;
  request.set_message(message);
  GatherBuffer buffer;
  EXPECT_EQ(encode_frame(meta, &request, std::string(), kNoLimit, buffer), EncodeStatus::kOk);
  return to_bytes(buffer);
}

// The raw client: a socket (BlockingClient's) read with a decoder that
// accepts stream frames.
class RawStreamClient {
 public:
  bool connect(int port) {
    std::string error;
    const bool ok = socket_.connect("127.0.0.1", port, &error);
    EXPECT_TRUE(ok) << error;
    FrameDecoderOptions options;
    options.max_body_bytes = kDefaultMaxBodyBytes + kStreamWrapBytes;
    options.accept_stream_frames = true;
    decoder_.emplace(options);
    return ok;
  }
  bool send(std::string_view bytes) { return socket_.send_bytes(bytes); }
  void close() { socket_.close(); }
  BlockingClient& socket() { return socket_; }

  Read receive(Incoming& in, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const DecodeStatus status = decoder_->next(frame_, stream_frame_);
      if (status == DecodeStatus::kFrame) {
        in.stream = false;
        in.meta = frame_.meta;
        in.message.assign(frame_.message);
        return Read::kFrame;
      }
      if (status == DecodeStatus::kStreamFrame) {
        in.stream = true;
        in.stream_meta = stream_frame_.meta;
        in.data.assign(stream_frame_.data);
        return Read::kFrame;
      }
      if (is_rejection(status))
        return Read::kRejected;
      if (!testing::wait_readable(socket_.fd(), deadline))
        return Read::kTimedOut;
      std::span<char> space = decoder_->prepare(64 * 1024);
      const ssize_t bytes = ::recv(socket_.fd(), space.data(), space.size(), 0);
      if (bytes < 0 && errno == EINTR)
        continue;
      if (bytes <= 0)
        return Read::kClosed;
      decoder_->commit(static_cast<size_t>(bytes));
    }
  }

  // The next frame that is not a FEEDBACK (FEEDBACK frames met on the way
  // are noted in last_feedback_, by stream). False on a timeout, the end of
  // the connection or a rejection (last_read() says which).
  bool receive_non_feedback(Incoming& in, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      const Read read = receive(in, left);
      if (read != Read::kFrame) {
        last_read_ = read;
        return false;
      }
      if (in.stream && in.type() == wire::FRAME_TYPE_FEEDBACK) {
        int64_t& last = last_feedback_[in.stream_meta.stream_id()];
        EXPECT_GE(in.stream_meta.feedback().consumed_size(), last) << "FEEDBACK went back";
        last = in.stream_meta.feedback().consumed_size();
        continue;
      }
      return true;
    }
  }

  // The last FEEDBACK's consumed_size to the client's `stream` (0: none).
  int64_t last_feedback(StreamId stream) const {
    const auto found = last_feedback_.find(stream);
    return found == last_feedback_.end() ? 0 : found->second;
  }
  Read last_read() const { return last_read_; }

 private:
  BlockingClient socket_;
  std::optional<FrameDecoder> decoder_;
  Frame frame_;
  StreamFrame stream_frame_;
  std::map<StreamId, int64_t> last_feedback_;
  Read last_read_ = Read::kFrame;
};

class ServerStreamTest : public ::testing::TestWithParam<ExecutionMode> {
 protected:
  static constexpr StreamId kClientStream = 4242;
  const milliseconds kTimeout = scaled(milliseconds(5000));

  void SetUp() override {
    ServerOptions options;
    options.io_threads = 2;
    options.workers = 2;
    options.process_workers = 4;  // One per stream of the interleaving test.
    server_ = std::make_unique<Server>(options);
    ServiceOptions service_options;
    service_options.default_mode = GetParam();
    ASSERT_TRUE(server_->AddService(&echo_, service_options));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }
  void TearDown() override { server_.reset(); }

  std::unique_ptr<RawStreamClient> connect() {
    auto client = std::make_unique<RawStreamClient>();
    client->connect(server_->port());
    return client;
  }

  // Calls Echo with a stream attached and checks the answer: a DATA frame to
  // the client's stream from the server's, whose data is the whole OK
  // answer carrying the server's settings. Returns the server's stream id
  // (-1 on failure).
  StreamId open_stream(RawStreamClient& client, int64_t correlation_id,
                       StreamId client_stream = kClientStream) {
    EXPECT_TRUE(client.send(stream_request(correlation_id, client_stream, "open")));
    Incoming in;
    if (!client.receive_non_feedback(in, kTimeout)) {
      ADD_FAILURE() << "no answer to the stream call";
      return -1;
    }
    EXPECT_TRUE(in.stream) << "the answer is not wrapped in a STRM frame";
    if (!in.stream)
      return -1;
    EXPECT_EQ(in.type(), wire::FRAME_TYPE_DATA);
    EXPECT_EQ(in.stream_meta.stream_id(), client_stream);
    EXPECT_TRUE(in.stream_meta.has_source_stream_id());
    const StreamId server_stream = in.stream_meta.source_stream_id();
    EXPECT_GT(server_stream, 0);
    const std::optional<Answer> answer = decode_answer(in.data);
    EXPECT_TRUE(answer.has_value()) << "the DATA frame's data is not one PRPC frame";
    if (!answer)
      return -1;
    EXPECT_EQ(answer->meta.correlation_id(), correlation_id);
    EXPECT_TRUE(answer->meta.has_response());
    EXPECT_EQ(answer->meta.response().error_code(), 0) << answer->meta.response().error_text();
    EXPECT_TRUE(answer->meta.has_stream_settings());
    EXPECT_EQ(answer->meta.stream_settings().stream_id(), server_stream);
    EXPECT_TRUE(answer->meta.stream_settings().need_feedback());
    EXPECT_TRUE(answer->meta.stream_settings().writable());
    example::EchoResponse response;
    EXPECT_TRUE(response.ParseFromString(answer->message));
    EXPECT_EQ(response.message(), "open");
    return server_stream;
  }

  // Reads echoes until `expected` have arrived (skipping FEEDBACK), each a
  // DATA frame to the client's stream from `server_stream`.
  void expect_echoes(RawStreamClient& client, StreamId server_stream,
                     const std::vector<std::string>& expected,
                     StreamId client_stream = kClientStream) {
    for (size_t i = 0; i < expected.size(); ++i) {
      Incoming in;
      ASSERT_TRUE(client.receive_non_feedback(in, kTimeout)) << "echo " << i << " missing";
      ASSERT_TRUE(in.stream);
      ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA) << "echo " << i;
      EXPECT_EQ(in.stream_meta.stream_id(), client_stream);
      EXPECT_EQ(in.stream_meta.source_stream_id(), server_stream);
      EXPECT_FALSE(in.stream_meta.has_continuation());
      EXPECT_EQ(in.data, expected[i]) << "echo " << i;
    }
  }

  examples::EchoServiceImpl echo_;
  std::unique_ptr<Server> server_;
};

// 1. The call is answered inside DATA with the server's settings; messages
// come back in order; the server reports what it consumed; CLOSE from the
// client ends the stream, and a later DATA to it is answered RST.
TEST_P(ServerStreamTest, EchoesMessagesInOrderAndEndsOnTheClientsClose) {
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  EXPECT_EQ(server_->stats().streams_accepted, 1u);

  std::vector<std::string> messages;
  std::string batch;
  size_t total = 0;
  for (int i = 0; i < 20; ++i) {
    messages.push_back("message " + std::to_string(i) + " " +
                       testing::patterned_bytes(100 + i * 37, i + 1));
    total += messages.back().size();
    batch += stream_frame(data_frame_meta(server_stream, kClientStream), messages.back());
  }
  // Half in one write (one read pass), half one by one.
  ASSERT_TRUE(client->send(batch.substr(0, batch.size() / 2)));
  ASSERT_TRUE(client->send(batch.substr(batch.size() / 2)));
  expect_echoes(*client, server_stream, messages);
  // The server tells what it consumed (cumulative), as the client asked.
  ASSERT_TRUE(testing::eventually(
      [&] {
        Incoming in;
        client->receive(in, milliseconds(50));
        if (in.stream && in.type() == wire::FRAME_TYPE_FEEDBACK) {
          EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
          EXPECT_EQ(in.stream_meta.source_stream_id(), server_stream);
          return in.stream_meta.feedback().consumed_size() == static_cast<int64_t>(total);
        }
        return client->last_feedback(kClientStream) == static_cast<int64_t>(total);
      },
      milliseconds(3000)))
      << "last FEEDBACK: " << client->last_feedback(kClientStream) << " of " << total;

  ASSERT_TRUE(client->send(stream_frame(feedback_frame_meta(server_stream, kClientStream, total))));
  // More after the FEEDBACK.
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "after")));
  expect_echoes(*client, server_stream, {"after"});

  const uint64_t unknown_before = server_->stats().stream_frames_for_unknown_streams;
  ASSERT_TRUE(client->send(stream_frame(close_frame_meta(server_stream, kClientStream))));
  // The stream is gone: DATA to it is answered RST to the client's stream,
  // and is not echoed.
  ASSERT_TRUE(
      client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "too late")));
  Incoming in;
  ASSERT_TRUE(client->receive_non_feedback(in, kTimeout));
  ASSERT_TRUE(in.stream);
  EXPECT_EQ(in.type(), wire::FRAME_TYPE_RST) << "got " << in.type() << " data " << in.data;
  EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
  EXPECT_FALSE(in.stream_meta.has_source_stream_id());
  EXPECT_EQ(server_->stats().stream_frames_for_unknown_streams, unknown_before + 1);

  // The connection still serves calls, with and without a stream.
  BlockingClient& socket = client->socket();
  ASSERT_TRUE(socket.send_bytes(stream_request(2, -1, "plain")));
  ASSERT_TRUE(client->receive_non_feedback(in, kTimeout));
  EXPECT_FALSE(in.stream);
  EXPECT_EQ(in.meta.correlation_id(), 2);
  EXPECT_FALSE(in.meta.has_stream_settings());
  const StreamId second = open_stream(*client, 3, kClientStream + 1);
  EXPECT_GT(second, 0);
  EXPECT_NE(second, server_stream);
}

// 2. Without FEEDBACK the server writes at most its window (2 MiB) plus one
// message, then stops; a FEEDBACK lets it go on until every message is
// echoed, in order.
TEST_P(ServerStreamTest, ServerStopsAtItsWindowWithoutFeedbackAndResumesAfterIt) {
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);

  constexpr size_t kMessageBytes = 60 * 1024;
  // 2.6 MiB: past the window (2 MiB), and what waits beyond it stays under
  // the echo service's backlog bound (8 MiB), so the stream stays open.
  constexpr int kMessages = 45;
  std::vector<std::string> messages;
  std::string all;
  for (int i = 0; i < kMessages; ++i) {
    messages.push_back(testing::patterned_bytes(kMessageBytes, 100 + i));
    all += stream_frame(data_frame_meta(server_stream, kClientStream), messages.back());
  }
  ASSERT_TRUE(client->send(all));

  // Read until the window's worth has come and the server then falls silent.
  size_t received = 0;
  size_t echoed_bytes = 0;
  const milliseconds silence = scaled(milliseconds(700));
  for (;;) {
    Incoming in;
    if (!client->receive_non_feedback(in, echoed_bytes < kServerWindow ? kTimeout : silence))
      break;
    ASSERT_TRUE(in.stream);
    ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA);
    ASSERT_LT(received, messages.size());
    ASSERT_EQ(in.data, messages[received]) << "echo " << received;
    ++received;
    echoed_bytes += in.data.size();
  }
  ASSERT_EQ(client->last_read(), Read::kTimedOut);
  // Every message was read by the server (it reports them consumed) ...
  EXPECT_EQ(client->last_feedback(kClientStream), static_cast<int64_t>(kMessages * kMessageBytes));
  // ... but it wrote only its window plus at most one message.
  EXPECT_GE(echoed_bytes, kServerWindow) << received << " echoes";
  EXPECT_LE(echoed_bytes, kServerWindow + kMessageBytes) << received << " echoes";
  EXPECT_LT(received, messages.size());

  // FEEDBACK for what arrived: the server goes on. Keep acknowledging until
  // every echo is in.
  ASSERT_TRUE(
      client->send(stream_frame(feedback_frame_meta(server_stream, kClientStream, echoed_bytes))));
  while (received < messages.size()) {
    Incoming in;
    ASSERT_TRUE(client->receive_non_feedback(in, kTimeout))
        << "stalled after " << received << " echoes";
    ASSERT_TRUE(in.stream);
    ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA);
    ASSERT_EQ(in.data, messages[received]) << "echo " << received;
    ++received;
    echoed_bytes += in.data.size();
    ASSERT_TRUE(client->send(
        stream_frame(feedback_frame_meta(server_stream, kClientStream, echoed_bytes))));
  }
  Incoming extra;
  EXPECT_FALSE(client->receive_non_feedback(extra, milliseconds(200))) << "an echo too many";
}

// A client that writes on and never acknowledges its echoes: the server
// still writes no more than its window, and the echo service closes the
// stream once its backlog passes its bound (8 MiB): the echoes written
// come first, then CLOSE; the connection goes on serving.
TEST_P(ServerStreamTest, NeverAcknowledgingClientGetsWindowThenClose) {
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  constexpr size_t kMessageBytes = 256 * 1024;
  constexpr int kMessages = 80;  // 20 MiB: past the window and the backlog bound.
  const std::string message = testing::patterned_bytes(kMessageBytes, 3);
  const std::string frame = stream_frame(data_frame_meta(server_stream, kClientStream), message);
  std::string all;
  for (int i = 0; i < kMessages; ++i)
    all += frame;
  ASSERT_TRUE(client->send(all));
  size_t echoed_bytes = 0;
  bool closed = false;
  while (!closed) {
    Incoming in;
    ASSERT_TRUE(client->receive_non_feedback(in, kTimeout))
        << "no CLOSE after " << echoed_bytes << " bytes of echoes";
    ASSERT_TRUE(in.stream);
    EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
    EXPECT_EQ(in.stream_meta.source_stream_id(), server_stream);
    if (in.type() == wire::FRAME_TYPE_CLOSE) {
      closed = true;
    } else {
      ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA);
      EXPECT_TRUE(in.data == message);
      echoed_bytes += in.data.size();
    }
  }
  EXPECT_GE(echoed_bytes, kServerWindow);
  EXPECT_LE(echoed_bytes, kServerWindow + kMessageBytes);
  // The stream is gone on the server: what the client wrote after the
  // server closed it (the messages still in flight, then one more) is
  // answered RST, frame by frame, and nothing else comes.
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "more")));
  int resets = 0;
  Incoming in;
  while (client->receive_non_feedback(in, scaled(milliseconds(500)))) {
    ASSERT_TRUE(in.stream);
    ASSERT_EQ(in.type(), wire::FRAME_TYPE_RST);
    EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
    ++resets;
  }
  ASSERT_EQ(client->last_read(), Read::kTimedOut);
  EXPECT_GE(resets, 1);
  EXPECT_LE(resets, kMessages + 1);
  const StreamId second = open_stream(*client, 2, kClientStream + 1);
  ASSERT_GT(second, 0);
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(second, kClientStream + 1), "again")));
  expect_echoes(*client, second, {"again"}, kClientStream + 1);
}

// 3. Frames for a stream the server does not know: DATA (and CLOSE) are
// answered RST to their source, RST is never answered; each is counted.
TEST_P(ServerStreamTest, UnknownStreamsAreAnsweredRstAndCounted) {
  auto client = connect();
  const uint64_t before = server_->stats().stream_frames_for_unknown_streams;
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(987654, 55), "nobody")));
  Incoming in;
  ASSERT_TRUE(client->receive_non_feedback(in, kTimeout));
  ASSERT_TRUE(in.stream);
  EXPECT_EQ(in.type(), wire::FRAME_TYPE_RST);
  EXPECT_EQ(in.stream_meta.stream_id(), 55);
  EXPECT_FALSE(in.stream_meta.has_source_stream_id());
  EXPECT_TRUE(in.data.empty());

  ASSERT_TRUE(client->send(stream_frame(close_frame_meta(987655, 56))));
  ASSERT_TRUE(client->receive_non_feedback(in, kTimeout));
  ASSERT_TRUE(in.stream);
  EXPECT_EQ(in.type(), wire::FRAME_TYPE_RST);
  EXPECT_EQ(in.stream_meta.stream_id(), 56);

  // RST: nothing back. A plain call after it must be the next frame.
  ASSERT_TRUE(client->send(stream_frame(rst_frame_meta(987656))));
  ASSERT_EQ(client->receive(in, milliseconds(300)), Read::kTimedOut) << "the RST was answered";
  ASSERT_TRUE(client->send(stream_request(9, -1, "still here")));
  ASSERT_EQ(client->receive(in, kTimeout), Read::kFrame);
  EXPECT_FALSE(in.stream) << "type " << in.type();
  EXPECT_EQ(in.meta.correlation_id(), 9);
  EXPECT_EQ(in.meta.response().error_code(), 0);
  EXPECT_EQ(server_->stats().stream_frames_for_unknown_streams, before + 3);
  EXPECT_EQ(server_->stats().streams_accepted, 0u);
}

// 4. An error answered before any handler runs (no such method, no such
// service) still travels in a DATA frame to the client's stream, from -1.
TEST_P(ServerStreamTest, ErrorsBeforeTheHandlerAreWrappedInDataFromNoStream) {
  auto client = connect();
  const std::vector<std::pair<std::string, std::pair<std::string, ErrorCode>>> cases = {
      {"example.EchoService", {"NoSuchMethod", ErrorCode::kNoMethod}},
      {"example.NoSuchService", {"Echo", ErrorCode::kNoService}}};
  int64_t id = 0;
  for (const auto& [service, method_and_code] : cases) {
    const auto& [method, code] = method_and_code;
    ++id;
    ASSERT_TRUE(client->send(stream_request(id, kClientStream + id, "x", service, method)));
    Incoming in;
    ASSERT_TRUE(client->receive_non_feedback(in, kTimeout)) << method;
    ASSERT_TRUE(in.stream) << "the error answer is not wrapped: " << method;
    EXPECT_EQ(in.type(), wire::FRAME_TYPE_DATA);
    EXPECT_EQ(in.stream_meta.stream_id(), kClientStream + id);
    EXPECT_EQ(in.stream_meta.source_stream_id(), kInvalidStreamId);
    const std::optional<Answer> answer = decode_answer(in.data);
    ASSERT_TRUE(answer.has_value());
    EXPECT_EQ(answer->meta.correlation_id(), id);
    EXPECT_EQ(answer->meta.response().error_code(), to_int(code)) << method;
    EXPECT_FALSE(answer->meta.has_stream_settings());
  }
  EXPECT_EQ(server_->stats().streams_accepted, 0u);
}

// 5a. The client drops the connection in the middle of a stream (data in
// flight both ways): the server forgets the stream and keeps serving.
TEST_P(ServerStreamTest, ClientDisconnectMidStreamLeavesTheServerServing) {
  for (int round = 0; round < 2; ++round) {
    auto client = connect();
    const StreamId server_stream = open_stream(*client, 1);
    ASSERT_GT(server_stream, 0);
    std::string burst;
    for (int i = 0; i < 50; ++i)
      burst += stream_frame(data_frame_meta(server_stream, kClientStream),
                            testing::patterned_bytes(50 * 1024, i));
    ASSERT_TRUE(client->send(burst));
    Incoming in;
    ASSERT_TRUE(client->receive_non_feedback(in, kTimeout));  // Echoes are flowing.
    if (round == 0) {
      client->close();
    } else {
      client->socket().reset();
    }
  }
  ASSERT_TRUE(testing::eventually([&] { return server_->stats().connections_open == 0; },
                                  milliseconds(5000)))
      << server_->stats().connections_open << " connections open";

  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "alive")));
  expect_echoes(*client, server_stream, {"alive"});
  EXPECT_EQ(server_->stats().streams_accepted, 3u);
}

// 5b. Stop() with a stream open: the client's stream gets CLOSE before the
// connection's FIN.
TEST_P(ServerStreamTest, StopClosesOpenStreamsBeforeTheFin) {
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "one")));
  expect_echoes(*client, server_stream, {"one"});

  auto stopped = std::async(std::launch::async, [&] { server_->Stop(scaled(milliseconds(3000))); });
  bool closed_stream = false;
  Read end = Read::kFrame;
  for (;;) {
    Incoming in;
    end = client->receive(in, kTimeout);
    if (end != Read::kFrame)
      break;
    ASSERT_TRUE(in.stream) << "unexpected PRPC frame";
    if (in.type() == wire::FRAME_TYPE_FEEDBACK)
      continue;
    EXPECT_FALSE(closed_stream) << "a frame after CLOSE, type " << in.type();
    EXPECT_EQ(in.type(), wire::FRAME_TYPE_CLOSE);
    EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
    EXPECT_EQ(in.stream_meta.source_stream_id(), server_stream);
    closed_stream = true;
  }
  EXPECT_EQ(end, Read::kClosed) << "no FIN";
  EXPECT_TRUE(closed_stream) << "no CLOSE before the FIN";
  client->close();
  EXPECT_EQ(stopped.wait_for(scaled(milliseconds(10000))), std::future_status::ready);
}

// 6. A message split over DATA frames with has_continuation is one message.
TEST_P(ServerStreamTest, ContinuationFramesAreJoinedIntoOneMessage) {
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  const std::string big = testing::patterned_bytes(300 * 1024, 7);
  std::string bytes;
  bytes += stream_frame(data_frame_meta(server_stream, kClientStream, true), "abc");
  bytes += stream_frame(data_frame_meta(server_stream, kClientStream, true), "def");
  bytes += stream_frame(data_frame_meta(server_stream, kClientStream, false), "ghi");
  ASSERT_TRUE(client->send(bytes));
  // Parts in separate writes (separate read passes) too.
  ASSERT_TRUE(client->send(
      stream_frame(data_frame_meta(server_stream, kClientStream, true), big.substr(0, 1000))));
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream, true),
                                        big.substr(1000, 200 * 1024))));
  std::this_thread::sleep_for(milliseconds(50));
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream, false),
                                        big.substr(1000 + 200 * 1024))));
  ASSERT_TRUE(client->send(stream_frame(data_frame_meta(server_stream, kClientStream), "single")));
  expect_echoes(*client, server_stream, {"abcdefghi", big, "single"});
  ASSERT_TRUE(testing::eventually(
      [&] {
        Incoming in;
        client->receive(in, milliseconds(50));
        if (in.stream && in.type() == wire::FRAME_TYPE_FEEDBACK)
          return in.stream_meta.feedback().consumed_size() ==
                 static_cast<int64_t>(9 + big.size() + 6);
        return client->last_feedback(kClientStream) == static_cast<int64_t>(9 + big.size() + 6);
      },
      milliseconds(3000)));
}

// Several streams on one connection, their frames interleaved in the same
// writes: each is echoed in order to its own client stream id.
TEST_P(ServerStreamTest, InterleavedStreamsOnOneConnectionStayApart) {
  auto client = connect();
  constexpr int kStreams = 4;
  constexpr int kMessages = 30;
  std::vector<StreamId> server_streams;
  for (int s = 0; s < kStreams; ++s) {
    server_streams.push_back(open_stream(*client, 10 + s, kClientStream + s));
    ASSERT_GT(server_streams.back(), 0);
  }
  std::vector<std::vector<std::string>> expected(kStreams);
  std::string bytes;
  for (int i = 0; i < kMessages; ++i) {
    for (int s = 0; s < kStreams; ++s) {
      // Built by appends: GCC 12's -O3 -Wrestrict misreads "s" + string.
      std::string message = std::string("s") + std::to_string(s);
      message += "m";
      message += std::to_string(i);
      message += testing::patterned_bytes(10 + i * 13, s * 100 + i);
      expected[s].push_back(std::move(message));
      bytes +=
          stream_frame(data_frame_meta(server_streams[s], kClientStream + s), expected[s].back());
    }
  }
  ASSERT_TRUE(client->send(bytes));
  std::vector<size_t> next(kStreams, 0);
  for (int received = 0; received < kStreams * kMessages; ++received) {
    Incoming in;
    ASSERT_TRUE(client->receive_non_feedback(in, kTimeout)) << received << " echoes";
    ASSERT_TRUE(in.stream);
    ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA);
    const int s = static_cast<int>(in.stream_meta.stream_id() - kClientStream);
    ASSERT_TRUE(s >= 0 && s < kStreams) << in.stream_meta.stream_id();
    EXPECT_EQ(in.stream_meta.source_stream_id(), server_streams[s]);
    ASSERT_LT(next[s], expected[s].size());
    EXPECT_EQ(in.data, expected[s][next[s]]) << "stream " << s << " echo " << next[s];
    ++next[s];
  }
  EXPECT_EQ(server_->stats().streams_accepted, static_cast<uint64_t>(kStreams));
}

// A client stream that does not ask for feedback gets none; the server
// still says need_feedback for its own side.
TEST_P(ServerStreamTest, NoFeedbackToAClientThatDidNotAskForIt) {
  auto client = connect();
  ASSERT_TRUE(client->send(stream_request(1, kClientStream, "open", "example.EchoService", "Echo",
                                          /*need_feedback=*/false)));
  Incoming in;
  ASSERT_EQ(client->receive(in, kTimeout), Read::kFrame);
  ASSERT_TRUE(in.stream);
  const StreamId server_stream = in.stream_meta.source_stream_id();
  ASSERT_GT(server_stream, 0);
  const std::optional<Answer> answer = decode_answer(in.data);
  ASSERT_TRUE(answer.has_value());
  EXPECT_TRUE(answer->meta.stream_settings().need_feedback());
  std::string bytes;
  for (int i = 0; i < 10; ++i)
    bytes += stream_frame(data_frame_meta(server_stream, kClientStream), "m" + std::to_string(i));
  ASSERT_TRUE(client->send(bytes));
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(client->receive(in, kTimeout), Read::kFrame);
    ASSERT_TRUE(in.stream);
    ASSERT_EQ(in.type(), wire::FRAME_TYPE_DATA) << "frame " << i;
    EXPECT_EQ(in.data, "m" + std::to_string(i));
  }
  EXPECT_EQ(client->receive(in, milliseconds(300)), Read::kTimedOut)
      << "unasked-for frame of type " << in.type();
}

// A stream in a worker process: a client that writes past the worker's
// window while the worker reads nothing (stopped) is reset, not held in the
// server's memory; the worker goes on once it runs again.
TEST_P(ServerStreamTest, AClientPastTheWindowOfAStoppedWorkerIsReset) {
  if (GetParam() != ExecutionMode::kProcessPool)
    GTEST_SKIP() << "the relay to a worker process only";
  auto client = connect();
  const StreamId server_stream = open_stream(*client, 1);
  ASSERT_GT(server_stream, 0);
  const std::set<pid_t> zygotes = testing::children_of(::getpid());
  ASSERT_EQ(zygotes.size(), 1u);
  const std::set<pid_t> workers = testing::children_of(*zygotes.begin());
  ASSERT_FALSE(workers.empty());  // The stream's worker among them.
  for (const pid_t worker : workers)
    ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  // 2 MiB window + 64 MiB message + allowance: 80 MiB of 1 MiB messages
  // passes the bound whatever the socket buffers hold.
  const std::string message(1 << 20, 'w');
  bool reset = false;
  for (int i = 0; i < 80 && !reset; ++i) {
    if (!client->send(stream_frame(data_frame_meta(server_stream, kClientStream), message)))
      break;
    reset = server_->stats().stream_window_overruns > 0;
  }
  Incoming in;
  const bool got = client->receive_non_feedback(in, kTimeout);
  for (const pid_t worker : workers)
    ::kill(worker, SIGCONT);
  ASSERT_TRUE(got);
  ASSERT_TRUE(in.stream);
  EXPECT_EQ(in.type(), wire::FRAME_TYPE_RST);
  EXPECT_EQ(in.stream_meta.stream_id(), kClientStream);
  EXPECT_EQ(server_->stats().stream_window_overruns, 1u);
  // The server serves on: a new stream on a new connection is echoed.
  auto next = connect();
  const StreamId next_stream = open_stream(*next, 2);
  ASSERT_GT(next_stream, 0);
  ASSERT_TRUE(next->send(stream_frame(data_frame_meta(next_stream, kClientStream), "again")));
  expect_echoes(*next, next_stream, {"again"});
}

INSTANTIATE_TEST_SUITE_P(Modes, ServerStreamTest,
                         ::testing::Values(ExecutionMode::kInline, ExecutionMode::kWorkerPool,
                                           ExecutionMode::kProcessPool),
                         [](const ::testing::TestParamInfo<ExecutionMode>& info) {
                           return info.param == ExecutionMode::kInline       ? "Inline"
                                  : info.param == ExecutionMode::kWorkerPool ? "WorkerPool"
                                                                             : "ProcessPool";
                         });

}  // namespace
}  // namespace percore
