#include "test/support/scripted_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <memory>
#include <stdexcept>
#include <vector>

#include <percore/proto/error_code.h>
#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/frame_encoder.h>
#include <percore/proto/health.pb.h>
#include <percore/proto/detail/health_check.h>

namespace percore::testing {
namespace {

std::string encode_answer(int64_t correlation_id, int32_t code, const std::string& text,
                          const google::protobuf::MessageLite* message) {
  wire::RpcMeta meta;
  meta.set_correlation_id(correlation_id);
  if (code != 0) {
    meta.mutable_response()->set_error_code(code);
    meta.mutable_response()->set_error_text(text);
  }
  std::string bytes;
  encode_frame_head(meta, message, 0, 64 << 20, bytes);
  return bytes;
}

void send_all(int fd, const std::string& bytes) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return;
    sent += static_cast<size_t>(n);
  }
}

}  // namespace

ScriptedServer::ScriptedServer(Answer answer, bool answer_health_checks)
    : answer_(answer), answer_health_checks_(answer_health_checks) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listen_fd_ < 0 || ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      ::pipe2(wake_fds_, O_CLOEXEC) != 0) {
    throw std::runtime_error("ScriptedServer: cannot listen on loopback");
  }
  port_ = ntohs(address.sin_port);
  thread_ = std::thread([this] { run(); });
}

ScriptedServer::~ScriptedServer() {
  const char byte = 0;
  (void)!::write(wake_fds_[1], &byte, 1);
  thread_.join();
  ::close(listen_fd_);
  ::close(wake_fds_[0]);
  ::close(wake_fds_[1]);
}

void ScriptedServer::run() {
  std::map<int, std::unique_ptr<FrameDecoder>> decoders;
  grpc::health::v1::HealthCheckResponse serving;
  serving.set_status(grpc::health::v1::HealthCheckResponse::SERVING);
  for (;;) {
    std::vector<pollfd> fds{{wake_fds_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    for (const auto& [fd, decoder] : decoders)
      fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), 1000) < 0 && errno != EINTR)
      break;
    if (fds[0].revents != 0)
      break;
    if (fds[1].revents != 0) {
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) {
        ++connections_;
        decoders.emplace(fd, std::make_unique<FrameDecoder>());
      }
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (fds[i].revents == 0)
        continue;
      const int fd = fds[i].fd;
      FrameDecoder& decoder = *decoders.at(fd);
      std::span<char> space = decoder.prepare(64 * 1024);
      const ssize_t bytes = ::read(fd, space.data(), space.size());
      if (bytes <= 0) {
        ::close(fd);
        decoders.erase(fd);
        continue;
      }
      decoder.commit(static_cast<size_t>(bytes));
      Frame frame;
      while (decoder.next(frame) == DecodeStatus::kFrame) {
        const int64_t id = frame.meta.correlation_id();
        if (frame.meta.request().service_name() == kHealthService) {
          ++health_checks_;
          if (answer_health_checks_)
            send_all(fd, encode_answer(id, 0, "", &serving));
          continue;
        }
        ++requests_;
        if (answer_ == Answer::kOk)
          send_all(fd, encode_answer(id, 0, "", nullptr));
        else if (answer_ == Answer::kServerStopping)
          send_all(fd, encode_answer(id, to_int(ErrorCode::kServerStopping), "server is stopping",
                                     nullptr));
      }
    }
  }
  for (const auto& [fd, decoder] : decoders)
    ::close(fd);
}

}  // namespace percore::testing
