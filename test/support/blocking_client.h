#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/rpc_meta.pb.h>

namespace google::protobuf {
class MessageLite;
}

namespace percore::testing {

// A frame received by BlockingClient, copied out of the decoder.
struct ReceivedFrame {
  wire::RpcMeta meta;
  std::string message;
  std::string attachment;

  int64_t correlation_id() const { return meta.correlation_id(); }
  int32_t error_code() const { return meta.response().error_code(); }
  const std::string& error_text() const { return meta.response().error_text(); }
};

// What a request frame carries, for encode_request().
struct RequestParts {
  int64_t correlation_id = 0;
  std::string service;
  std::string method;
  const google::protobuf::MessageLite* message = nullptr;
  std::string attachment;
  int32_t timeout_ms = 0;
  int64_t log_id = 0;
  std::string authentication_data;  // RpcMeta field 7; empty: absent.
};

enum class ReceiveStatus { kFrame, kClosed, kTimedOut, kRejected };

// A small blocking baidu_std client over one raw TCP socket: the tests' probe
// of the server (and the pre-client-proxy demo's load). It writes whatever
// bytes it is given (well-formed or not) and reads frames with a deadline.
//
// Owns: the socket. Threads: one at a time.
class BlockingClient {
 public:
  BlockingClient() = default;
  ~BlockingClient();
  BlockingClient(const BlockingClient&) = delete;
  BlockingClient& operator=(const BlockingClient&) = delete;

  // Connects to host:port (IPv4 literal). False with the reason in *error.
  // receive_buffer_bytes > 0 sets SO_RCVBUF before the handshake, so the
  // window scale fits the small buffer (set after it, the kernel may open the
  // window only on the peer's zero-window probes, 200 ms and more apart).
  bool connect(const std::string& host, int port, std::string* error = nullptr,
               int receive_buffer_bytes = 0);
  void close();
  // Closes with a reset (SO_LINGER 0) instead of a FIN.
  void reset();
  // shutdown(SHUT_WR): sends FIN, keeps reading. False on error.
  bool shutdown_write();
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // The bytes of one request frame.
  static std::string encode_request(const RequestParts& parts);

  // Writes all of `bytes`; false if the connection broke.
  bool send_bytes(std::string_view bytes);
  bool send_request(const RequestParts& parts) { return send_bytes(encode_request(parts)); }

  // Waits up to `timeout` for the next frame.
  ReceiveStatus receive(ReceivedFrame& frame, std::chrono::milliseconds timeout);
  DecodeStatus last_rejection() const { return last_rejection_; }

  // True if the peer closes the connection within `timeout` (bytes received
  // meanwhile are discarded).
  bool wait_closed(std::chrono::milliseconds timeout);

 private:
  int fd_ = -1;
  std::optional<FrameDecoder> decoder_;  // Fresh for every connection.
  Frame frame_;
  DecodeStatus last_rejection_ = DecodeStatus::kNeedMore;
};

}  // namespace percore::testing
