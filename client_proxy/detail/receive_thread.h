#pragma once

#include <thread>
#include <unordered_map>

#include "client_proxy/detail/client_connection.h"
#include "client_proxy/detail/group_state.h"
#include "proto/peer_message.h"

namespace percore::detail {

// The receive thread of one group: epoll over the group's ready connections;
// reads as much as a read gives, decodes every complete frame and completes
// the calls (the table's compare-and-swap decides against timeouts). On EOF,
// an error or a malformed frame it stops reading the connection and tells the
// send thread, which fails the calls and closes the socket.
//
// Owns: the read side of adopted connections (not the connections).
// Threads: run() is the thread body; every other method runs on it (checked).
class ReceiveThread {
 public:
  explicit ReceiveThread(GroupState& group);
  ~ReceiveThread();
  ReceiveThread(const ReceiveThread&) = delete;
  ReceiveThread& operator=(const ReceiveThread&) = delete;

  void run();

 private:
  void assert_in_receive_thread() const;
  bool process_commands();
  void read(ClientConnection& connection);
  // False if the frame broke the connection.
  bool handle_frame(ClientConnection& connection, const Frame& frame);
  void let_go(ClientConnection& connection, std::string reason);

  GroupState& group_;
  int epoll_fd_ = -1;
  bool running_ = true;
  std::thread::id thread_id_;
  std::unordered_map<uint64_t, ClientConnection*> adopted_;
  // Responses are a peer's input: parsed without protobuf's own log lines.
  PeerMessageParser response_parser_;
};

}  // namespace percore::detail
