#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "proto/frame_decoder.h"
#include "proto/gather_buffer.h"
#include "server_io/detail/asio.h"
#include "server_io/detail/server_call.h"

namespace percore::detail {

class IoThread;
struct ServerCore;

// One accepted TCP connection: reads and decodes requests, dispatches them,
// and writes answers, as many as are ready per gathered write (one write in
// flight at a time, the next batch collecting meanwhile).
//
// Owns: the socket, the decoder and the output buffers. Kept alive by its I/O
// thread's table and by its own pending Asio operations (shared_ptr); others
// refer to it by id.
// Threads: its I/O thread only (checked).
class ServerConnection : public std::enable_shared_from_this<ServerConnection> {
 public:
  ServerConnection(IoThread& io_thread, ServerCore& core, boost::asio::ip::tcp::socket socket,
                   uint64_t id);

  void start();
  uint64_t id() const { return id_; }
  const std::string& peer() const { return peer_; }

  // Where answers are encoded; call answer_queued() after each.
  GatherBuffer& output() { return pending_output_; }
  void answer_queued();
  // A dispatched call of this connection was answered.
  void call_answered();

  // Stop(): stops reading, closes once every queued answer is written.
  void close_after_flush();
  // Closes at once; queued answers are lost.
  void close();
  bool closed() const { return closed_; }

 private:
  void read_more();
  void on_read(const boost::system::error_code& error, size_t bytes);
  // Decodes and dispatches buffered frames while the in-flight limit allows.
  void process_frames();
  void dispatch(const Frame& frame);
  void reject(DecodeStatus status);
  void flush();
  void on_written(const boost::system::error_code& error);

  IoThread& io_thread_;
  ServerCore& core_;
  boost::asio::ip::tcp::socket socket_;
  const uint64_t id_;
  std::string peer_;

  FrameDecoder decoder_;
  Frame frame_;  // Reused for every frame.
  ServerCall::Clock::time_point last_read_at_;

  GatherBuffer pending_output_;  // Answers not yet handed to the socket.
  GatherBuffer writing_output_;  // Answers of the write in flight.
  std::vector<boost::asio::const_buffer> write_buffers_;

  int in_flight_calls_ = 0;
  bool reading_ = false;       // An async read is outstanding.
  bool read_paused_ = false;   // Stopped at max_inflight_per_connection.
  bool in_read_pass_ = false;  // Inside process_frames(): flush at its end.
  bool writing_ = false;       // An async write is outstanding.
  bool closing_ = false;       // close_after_flush() was called.
  bool closed_ = false;
};

}  // namespace percore::detail
