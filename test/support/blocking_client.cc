#include "test/support/blocking_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <percore/proto/detail/frame_encoder.h>
#include "test/support/wait_readable.h"

namespace percore::testing {

BlockingClient::~BlockingClient() {
  close();
}

bool BlockingClient::connect(const std::string& host, int port, std::string* error,
                             int receive_buffer_bytes) {
  close();
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
    if (error != nullptr)
      *error = "not an IPv4 address: " + host;
    return false;
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ >= 0 && receive_buffer_bytes > 0) {
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes, sizeof(receive_buffer_bytes));
  }
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    if (error != nullptr)
      *error = std::string("connect: ") + std::strerror(errno);
    close();
    return false;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  decoder_.emplace();
  return true;
}

void BlockingClient::close() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

void BlockingClient::reset() {
  if (fd_ >= 0) {
    const linger immediate{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &immediate, sizeof(immediate));
  }
  close();
}

bool BlockingClient::shutdown_write() {
  return fd_ >= 0 && ::shutdown(fd_, SHUT_WR) == 0;
}

std::string BlockingClient::encode_request(const RequestParts& parts) {
  wire::RpcMeta meta;
  meta.set_correlation_id(parts.correlation_id);
  wire::RpcRequestMeta* request = meta.mutable_request();
  request->set_service_name(parts.service);
  request->set_method_name(parts.method);
  if (parts.log_id != 0)
    request->set_log_id(parts.log_id);
  if (parts.timeout_ms != 0)
    request->set_timeout_ms(parts.timeout_ms);
  if (!parts.authentication_data.empty())
    meta.set_authentication_data(parts.authentication_data);
  GatherBuffer buffer;
  std::string attachment = parts.attachment;
  encode_frame(meta, parts.message, std::move(attachment), ~size_t{0} >> 1, buffer);
  std::string bytes;
  for (size_t i = 0; i < buffer.chunk_count(); ++i)
    bytes.append(buffer.chunk(i));
  return bytes;
}

bool BlockingClient::send_bytes(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t written = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (written < 0) {
      if (errno == EINTR)
        continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(written));
  }
  return true;
}

ReceiveStatus BlockingClient::receive(ReceivedFrame& frame, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const DecodeStatus status = decoder_->next(frame_);
    if (status == DecodeStatus::kFrame) {
      frame.meta = frame_.meta;
      frame.message.assign(frame_.message);
      frame.attachment.assign(frame_.attachment);
      return ReceiveStatus::kFrame;
    }
    if (is_rejection(status)) {
      last_rejection_ = status;
      return ReceiveStatus::kRejected;
    }
    if (!wait_readable(fd_, deadline))
      return ReceiveStatus::kTimedOut;
    std::span<char> space = decoder_->prepare(64 * 1024);
    const ssize_t bytes = ::recv(fd_, space.data(), space.size(), 0);
    if (bytes < 0 && errno == EINTR)
      continue;
    if (bytes <= 0)
      return ReceiveStatus::kClosed;
    decoder_->commit(static_cast<size_t>(bytes));
  }
}

bool BlockingClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char discard[4096];
  for (;;) {
    if (!wait_readable(fd_, deadline))
      return false;
    const ssize_t bytes = ::recv(fd_, discard, sizeof(discard), 0);
    if (bytes < 0 && errno == EINTR)
      continue;
    if (bytes <= 0)
      return true;
  }
}

}  // namespace percore::testing
