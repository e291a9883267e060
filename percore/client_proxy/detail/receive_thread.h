#pragma once

#include <memory>
#include <cstdint>
#include <string>
#include <unordered_map>

#include <percore/client_proxy/detail/client_connection.h>
#include <percore/client_proxy/detail/connection_pool.h>
#include <percore/client_proxy/detail/group_state.h>
#include <percore/proto/detail/peer_message.h>

namespace percore::detail {

class SendThread;

// The receive thread of one group: its loop (GroupState::receive_loop)
// watches the group's adopted connections; it reads as much as a read
// gives, decodes every complete frame and completes the calls (the table's
// compare-and-swap decides against timeouts). On end of stream, an error or
// a malformed frame it stops reading the connection and tells the send
// thread, which settles the calls and closes the socket. Stream frames
// (brpc's Streaming RPC) are decoded beside responses: a stream call's
// response comes inside its stream's first DATA frame and connects the
// stream; later frames go to the stream, whose messages are delivered at the
// end of each read.
//
// Owns: the read side of adopted connections (not the connections).
// Threads: post_*() from the send thread or the group's owner; run() is the
// thread body; every other method on the receive thread (checked).
class ReceiveThread : private EventLoop::Owner {
 public:
  ReceiveThread(GroupState& group, SendThread& send);
  ReceiveThread(const ReceiveThread&) = delete;
  ReceiveThread& operator=(const ReceiveThread&) = delete;

  void run();

  // Start reading `connection` on `fd` (connected by the send thread).
  void post_adopt(ClientConnection& connection, int fd);
  // Stop reading `connection_id` and say so to the send thread.
  void post_release(uint64_t connection_id);
  void post_shutdown();

 private:
  void on_event(uint64_t tag, uint32_t events) override;

  void adopt(ClientConnection& connection, int fd);
  void release(uint64_t connection_id);
  void read(ClientConnection& connection);
  // ChannelOptions::tls: decrypts `bytes` read from the socket into the
  // decoder and decodes the frames. False when the connection was let go.
  bool decrypt(ClientConnection& connection, std::string_view bytes);
  // Decodes and handles the decoder's complete frames. False when the
  // connection was let go.
  bool decode_frames(ClientConnection& connection);
  // False if the frame broke the connection. `stream_call`: the response
  // came inside a stream's DATA frame (its call is never sent again).
  bool handle_frame(ClientConnection& connection, const Frame& frame, bool stream_call = false);
  // A STRM frame: the response of a call that attached a stream (the
  // stream's first DATA), or a frame of a connected stream; RST for a stream
  // this group does not know on this connection. False if it broke the
  // connection.
  bool handle_stream_frame(ClientConnection& connection, const StreamFrame& frame);
  // Writes a stream frame of this thread's (an RST) through the send thread.
  void send_rst(uint64_t connection_id, const GatherBuffer& frame);
  // Hands the messages of this read to their streams' handlers.
  void deliver_stream_input();
  void let_go(ClientConnection& connection, ConnectionPool::LetGo how, std::string reason);

  GroupState& group_;
  SendThread& send_;
  EventLoop& loop_;
  std::unordered_map<uint64_t, ClientConnection*> adopted_;
  std::vector<std::shared_ptr<StreamCore>> streams_with_input_;
  // Where TLS connections' records are read (made with the first one).
  std::unique_ptr<char[]> tls_input_;
  // Responses are a peer's input: parsed without protobuf's own log lines.
  PeerMessageParser response_parser_;
};

}  // namespace percore::detail
