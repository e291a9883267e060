#include "client_proxy/detail/receive_thread.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "client_proxy/controller.h"
#include "proto/assert.h"

namespace percore::detail {
namespace {

constexpr size_t kReadBytes = 64 * 1024;
constexpr int kMaxEvents = 64;
constexpr uint64_t kNotifierTag = 0;

}  // namespace

ReceiveThread::ReceiveThread(GroupState& group)
    : group_(group), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  PERCORE_ASSERT(epoll_fd_ >= 0);
  epoll_event event{};
  event.events = EPOLLIN;
  event.data.u64 = kNotifierTag;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, group_.receive_notifier.fd(), &event);
}

ReceiveThread::~ReceiveThread() {
  ::close(epoll_fd_);
}

void ReceiveThread::assert_in_receive_thread() const {
  PERCORE_ASSERT(std::this_thread::get_id() == thread_id_);
}

void ReceiveThread::run() {
  thread_id_ = std::this_thread::get_id();
  epoll_event events[kMaxEvents];
  while (running_) {
    if (process_commands())
      continue;
    group_.receive_notifier.prepare_to_park();
    if (group_.receive_commands.size_approx() > 0) {
      group_.receive_notifier.cancel_park();
      continue;
    }
    const int count = ::epoll_wait(epoll_fd_, events, kMaxEvents, -1);
    group_.receive_notifier.cancel_park();
    for (int i = 0; i < count; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kNotifierTag) {
        group_.receive_notifier.consume();
        continue;
      }
      // Looked up, not taken from the event: the connection may have been let
      // go earlier in this batch.
      const auto found = adopted_.find(tag);
      if (found != adopted_.end())
        read(*found->second);
    }
  }
}

bool ReceiveThread::process_commands() {
  ReceiveCommand command;
  bool any = false;
  while (group_.receive_commands.try_dequeue(command)) {
    any = true;
    switch (command.kind) {
      case ReceiveCommand::Kind::kAdopt: {
        ClientConnection& connection = *command.connection;
        epoll_event event{};
        event.events = EPOLLIN;
        event.data.u64 = connection.id;
        if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, connection.fd, &event) != 0) {
          SendCommand released;
          released.kind = SendCommand::Kind::kReleased;
          released.connection_id = connection.id;
          released.reason = std::string("epoll: ") + std::strerror(errno);
          group_.post_to_send_thread(std::move(released));
          break;
        }
        adopted_.emplace(connection.id, &connection);
        break;
      }
      case ReceiveCommand::Kind::kRelease: {
        const auto found = adopted_.find(command.connection_id);
        // Already let go (it failed here first): the send thread has been told.
        if (found != adopted_.end())
          let_go(*found->second, std::string());
        break;
      }
      case ReceiveCommand::Kind::kShutdown:
        running_ = false;
        return true;
    }
  }
  return any;
}

void ReceiveThread::read(ClientConnection& connection) {
  assert_in_receive_thread();
  for (;;) {
    std::span<char> space = connection.decoder.prepare(kReadBytes);
    const ssize_t bytes = ::read(connection.fd, space.data(), space.size());
    if (bytes < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      let_go(connection, std::string("read failed: ") + std::strerror(errno));
      return;
    }
    if (bytes == 0) {
      let_go(connection, "closed by the server");
      return;
    }
    connection.decoder.commit(static_cast<size_t>(bytes));
    for (;;) {
      const DecodeStatus status = connection.decoder.next(connection.frame);
      if (status == DecodeStatus::kNeedMore)
        break;
      if (is_rejection(status)) {
        group_.counters.malformed_responses.fetch_add(1, std::memory_order_relaxed);
        let_go(connection,
               "malformed frame from the server: " + std::string(decode_status_text(status)));
        return;
      }
      if (!handle_frame(connection, connection.frame))
        return;
    }
    // A short read means the socket is drained; epoll will say when more comes.
    if (static_cast<size_t>(bytes) < space.size())
      return;
  }
}

bool ReceiveThread::handle_frame(ClientConnection& connection, const Frame& frame) {
  if (frame.is_request()) {
    group_.counters.malformed_responses.fetch_add(1, std::memory_order_relaxed);
    let_go(connection, "the server sent a request frame");
    return false;
  }
  const CallTable::Slot slot = CallTable::slot_of(frame.meta.correlation_id());
  const int32_t code = frame.meta.response().error_code();
  if (code == to_int(ErrorCode::kServerStopping)) {
    // The server did not run it: the send thread sends it elsewhere.
    if (group_.table.is_pending(slot)) {
      SendCommand resend;
      resend.kind = SendCommand::Kind::kResend;
      resend.slot = slot;
      resend.connection_id = connection.id;
      group_.post_to_send_thread(std::move(resend));
    } else {
      group_.counters.stale_replies.fetch_add(1, std::memory_order_relaxed);
    }
    return true;
  }
  if (!group_.table.try_complete(slot)) {
    group_.counters.stale_replies.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  connection.outstanding.fetch_sub(1, std::memory_order_relaxed);
  CallRecord& record = group_.records[slot.index];
  if (code != 0) {
    CallCompleter::finish(group_, slot, static_cast<ErrorCode>(code),
                          frame.meta.response().error_text(), connection.remote_side);
    return true;
  }
  if (frame.meta.compress_type() != 0) {
    CallCompleter::finish(group_, slot, ErrorCode::kBadResponse,
                          "response uses compress_type " +
                              std::to_string(frame.meta.compress_type()) +
                              ", which percore does not support",
                          connection.remote_side);
    return true;
  }
  std::string parse_error;
  if (record.response != nullptr &&
      !response_parser_.parse(frame.message, *record.response, &parse_error)) {
    CallCompleter::finish(group_, slot, ErrorCode::kBadResponse, "response " + parse_error,
                          connection.remote_side);
    return true;
  }
  record.controller->response_attachment().assign(frame.attachment.data(), frame.attachment.size());
  CallCompleter::finish(group_, slot, ErrorCode::kOk, std::string(), connection.remote_side);
  return true;
}

void ReceiveThread::let_go(ClientConnection& connection, std::string reason) {
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, connection.fd, nullptr);
  adopted_.erase(connection.id);
  SendCommand released;
  released.kind = SendCommand::Kind::kReleased;
  released.connection_id = connection.id;
  released.reason = std::move(reason);
  group_.post_to_send_thread(std::move(released));
  // `connection` may be freed by the send thread from here on.
}

}  // namespace percore::detail
