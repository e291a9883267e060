#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <percore/proto/detail/frame_decoder.h>
#include <percore/proto/detail/gather_buffer.h>

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace percore::detail {

class TlsContext;

// The TLS state of one client connection (ChannelOptions::tls): OpenSSL's
// SSL object over two memory BIOs, so that the group's own threads keep
// doing the socket's I/O with epoll and non-blocking calls, as in clear
// text. The send thread, which owns the socket's writes, encrypts
// (encrypt(): SSL_write, and it takes every byte OpenSSL has to send,
// handshake messages and alerts included); the receive thread, which owns
// its reads, hands in what it read and decrypts (decrypt(): SSL_read).
//
// An SSL object may not be used by two threads at once, and either
// direction may touch the other's state (the handshake, a TLS 1.3 key
// update, an alert), so each call holds the session's mutex: held for one
// batch of OpenSSL calls on one connection and wanted only by the two
// threads of the connection's own group, so groups still share nothing.
// When decrypt() leaves bytes to send (the handshake's next flight, a key
// update's answer) it says so, and the receive thread asks the send thread
// to flush the connection.
//
// Owns: the SSL object and its BIOs. Threads: the connection's send thread
// (encrypt) and receive thread (decrypt), serialized by the mutex;
// handshake_done() any.
class TlsSession {
 public:
  enum class Status {
    kOk,      // Progress (or nothing to do).
    kClosed,  // decrypt(): the server's close_notify; no more plaintext.
    kFailed,  // The handshake or the record layer failed: *failure says why.
  };

  // A session to `host` ("ip:port" as dialled; the name checked against the
  // certificate is TlsOptions::server_name, else that host). Null, with
  // *error, when OpenSSL cannot make one.
  static std::unique_ptr<TlsSession> create(const TlsContext& context, const std::string& remote,
                                            std::string* error);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  // Send thread. Drives the handshake, encrypts what it may of `plain`
  // (nothing before the handshake is done: it stays queued) and moves every
  // byte OpenSSL has to send into `cipher`. *taken: plaintext bytes
  // consumed from `plain`.
  Status encrypt(GatherBuffer& plain, GatherBuffer& cipher, size_t* taken, std::string* failure);
  // Receive thread. Hands `bytes` read from the socket to OpenSSL and
  // decrypts all it can into `decoder`; *plain_bytes: how many.
  // *wants_flush: the send thread has bytes to send, or the handshake just
  // finished (calls queued behind it may be encrypted now).
  Status decrypt(std::string_view bytes, FrameDecoder& decoder, size_t* plain_bytes,
                 bool* wants_flush, std::string* failure);
  // Receive thread: whether the handshake has finished.
  bool handshake_done();

 private:
  TlsSession(SSL* ssl, BIO* network_in, BIO* network_out, std::string remote)
      : ssl_(ssl), network_in_(network_in), network_out_(network_out), remote_(std::move(remote)) {}
  // Moves OpenSSL's output into `cipher`. Under mutex_.
  void take_output(GatherBuffer& cipher);
  std::string failure_text();
  // Moves the handshake on if it is not done; false (with *failure) when it
  // failed. Under mutex_.
  bool advance_handshake(std::string* failure);

  std::mutex mutex_;
  SSL* const ssl_;
  BIO* const network_in_;   // Ciphertext read from the socket; OpenSSL reads it.
  BIO* const network_out_;  // Ciphertext OpenSSL wrote; the send thread sends it.
  const std::string remote_;
  std::string staging_;  // Small chunks gathered into one record (send thread).
  bool handshake_done_ = false;
};

}  // namespace percore::detail
