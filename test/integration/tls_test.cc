// TLS (ServerOptions::tls, ChannelOptions::tls): percore to percore, curl
// and openssl s_client on the same port as clear text, a TLS-only server,
// certificates that must be refused (expired, another CA, another name) and
// mutual TLS. Certificates are made at test time with `openssl req`.

#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <percore/client_proxy/channel.h>
#include <percore/proto/echo.pb.h>
#include <percore/server_io/server.h>
#include "test/support/child_process.h"
#include "test/support/eventually.h"
#include "test/support/slack.h"

namespace percore::testing {
namespace {

using std::chrono::milliseconds;

std::string run(const std::string& command) {
  return command_output(command);
}

// A test CA, a second CA that signed nothing here, and certificates signed by
// the first: the server's (127.0.0.1 and localhost), an expired one, and a
// client's (CN=client-a) for mutual TLS. EC keys: made in milliseconds.
class Certificates {
 public:
  Certificates() {
    char pattern[] = "/tmp/percore-tls-XXXXXX";
    dir_ = mkdtemp(pattern);
    const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = "set -e; cd " + dir_ + "; exec 2>openssl.log;";
    for (const char* ca : {"ca", "other-ca"}) {
      script += "openssl req -x509 " + key + " -keyout " + ca + ".key -out " + ca +
                ".pem -days 2 -subj /CN=percore-test-" + ca + ";";
    }
    script += "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > server.ext;";
    script += "printf 'extendedKeyUsage=clientAuth\\n' > client.ext;";
    auto sign = [&](const std::string& name, const std::string& subject, int days,
                    const std::string& ext) {
      script += "openssl req " + key + " -keyout " + name + ".key -out " + name + ".csr -subj " +
                subject + ";";
      script += "openssl x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out " +
                name + ".pem -days " + std::to_string(days) + " -extfile " + ext + ";";
    };
    sign("server", "/CN=localhost", 2, "server.ext");
    sign("expired", "/CN=localhost", 0, "server.ext");  // notAfter = now.
    sign("client", "/O=percore-test/CN=client-a", 2, "client.ext");
    made_ = std::system(("bash -c \"" + script + "\"").c_str()) == 0;
  }
  ~Certificates() { std::filesystem::remove_all(dir_); }

  bool made() const { return made_; }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }

 private:
  std::string dir_;
  bool made_ = false;
};

// Echoes the message, or, for "who", the client certificate's subject.
class SubjectEcho final : public example::EchoService {
 public:
  void Echo(google::protobuf::RpcController* controller, const example::EchoRequest* request,
            example::EchoResponse* response, google::protobuf::Closure* done) override {
    if (request->message() == "who") {
      const std::string& subject =
          static_cast<ServerController*>(controller)->peer_certificate_subject();
      response->set_message(subject.empty() ? "no certificate" : subject);
    } else {
      response->set_message(request->message());
    }
    done->Run();
  }
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certificates_ = new Certificates(); }
  static void TearDownTestSuite() {
    delete certificates_;
    certificates_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(certificates_->made())
        << "openssl could not make the test certificates: "
        << run("cat " + certificates_->path("openssl.log"));
  }
  void TearDown() override { server_.reset(); }

  static std::string path(const std::string& name) { return certificates_->path(name); }

  static TlsOptions server_tls(const std::string& certificate = "server") {
    TlsOptions tls;
    tls.certificate_file = path(certificate + ".pem");
    tls.private_key_file = path(certificate + ".key");
    return tls;
  }
  static TlsOptions client_tls(const std::string& ca = "ca") {
    TlsOptions tls;
    tls.ca_file = path(ca + ".pem");
    return tls;
  }

  void start(ServerOptions options) {
    server_ = std::make_unique<Server>(options);
    ASSERT_TRUE(server_->AddService(&echo_));
    std::string error;
    ASSERT_TRUE(server_->Start("127.0.0.1:0", &error)) << error;
  }

  std::unique_ptr<Channel> channel(std::optional<TlsOptions> tls) {
    ChannelOptions options;
    options.tls = std::move(tls);
    options.private_groups = ClientRuntimeOptions{.groups = 1};
    options.timeout_ms = static_cast<int>(scaled(milliseconds(3000)).count());
    options.max_retry = 0;
    auto channel = std::make_unique<Channel>();
    std::string error;
    EXPECT_TRUE(channel->Init(address(), options, &error)) << error;
    return channel;
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(server_->port()); }

  struct Outcome {
    int code = -1;
    std::string text;
    std::string message;
  };
  // Calls Echo once per message, in turn; the outcome of each, by index.
  static std::vector<Outcome> echo(Channel& channel, const std::vector<std::string>& messages) {
    std::vector<Outcome> outcomes;
    example::EchoService_Stub stub(&channel);
    for (const std::string& message : messages) {
      Controller controller;
      example::EchoRequest request;
      request.set_message(message);
      example::EchoResponse response;
      stub.Echo(&controller, &request, &response, nullptr);
      outcomes.push_back({controller.ErrorCode(), controller.ErrorText(), response.message()});
    }
    return outcomes;
  }
  static std::vector<std::string> numbered(int calls) {
    std::vector<std::string> messages;
    for (int i = 0; i < calls; ++i)
      messages.push_back("call " + std::to_string(i));
    return messages;
  }

  static Certificates* certificates_;
  SubjectEcho echo_;
  std::unique_ptr<Server> server_;
};

Certificates* TlsTest::certificates_ = nullptr;

TEST_F(TlsTest, PercoreCallsPercoreOverTlsAndClearTextStillWorksOnTheSamePort) {
  ServerOptions options;
  options.tls = server_tls();
  start(options);
  auto tls = channel(client_tls());
  const std::vector<std::string> messages = numbered(50);
  const std::vector<Outcome> outcomes = echo(*tls, messages);
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(outcomes[i].code, 0) << "call " << i << ": " << outcomes[i].text;
    EXPECT_EQ(outcomes[i].message, messages[i]) << "call " << i;
  }
  // A large message crosses many TLS records both ways.
  const std::string large(300 * 1024, 'x');
  const std::vector<Outcome> big = echo(*tls, {large});
  EXPECT_EQ(big[0].code, 0) << big[0].text;
  EXPECT_EQ(big[0].message.size(), large.size());
  EXPECT_EQ(big[0].message == large, true);
  EXPECT_EQ(echo(*tls, {"who"})[0].message, "no certificate");

  auto clear = channel(std::nullopt);
  const std::vector<Outcome> clear_outcomes = echo(*clear, numbered(5));
  for (size_t i = 0; i < clear_outcomes.size(); ++i)
    EXPECT_EQ(clear_outcomes[i].code, 0) << "call " << i << ": " << clear_outcomes[i].text;
  // The client closes TLS with a FIN and no close_notify: counted as the
  // peer's close, not as an error.
  tls.reset();
  clear.reset();
  eventually([&] { return server_->stats().connections_closed >= 2; }, milliseconds(5000));
  const ServerStats stats = server_->stats();
  EXPECT_GE(stats.tls_handshakes, 1u);
  EXPECT_EQ(stats.tls_handshake_failures, 0u);
  EXPECT_GE(stats.closes_by_reason.at(CloseReason::kPeerClosed), 2u);
  EXPECT_EQ(stats.closes_by_reason.count(CloseReason::kConnectionError) == 0 ||
                stats.closes_by_reason.at(CloseReason::kConnectionError) == 0,
            true);
}

TEST_F(TlsTest, CurlOverHttpsAndOpenSslClientReachTheSamePort) {
  ServerOptions options;
  options.tls = server_tls();
  start(options);
  const std::string base = "https://127.0.0.1:" + std::to_string(server_->port());
  EXPECT_EQ(run("curl -s -S --max-time 10 -w ' %{http_code}' --cacert " + path("ca.pem") +
                " -H 'Content-Type: application/json' -d '{\"message\":\"over https\"}' '" +
                base + "/example.EchoService/Echo' 2>&1"),
            "{\"message\":\"over https\"}\n 200");
  // By name too: the certificate carries DNS:localhost.
  EXPECT_EQ(run("curl -s -S --max-time 10 -o /dev/null -w '%{http_code}' --cacert " +
                path("ca.pem") + " 'https://localhost:" + std::to_string(server_->port()) +
                "/health' 2>&1"),
            "200");
  // curl refuses a server its CA list does not vouch for.
  const std::string untrusted =
      run("curl -s -S --max-time 10 --cacert " + path("other-ca.pem") + " '" + base +
          "/health' 2>&1; echo \" exit=$?\"");
  EXPECT_NE(untrusted.find("exit=60"), std::string::npos) << untrusted;

  const std::string handshake =
      run("openssl s_client -connect 127.0.0.1:" + std::to_string(server_->port()) +
          " -CAfile " + path("ca.pem") + " -verify_return_error -brief </dev/null 2>&1");
  EXPECT_NE(handshake.find("Verification: OK"), std::string::npos) << handshake;
  EXPECT_NE(handshake.find("TLSv1.3"), std::string::npos) << handshake;
  // Two curls and s_client completed theirs; the untrusting curl failed its.
  eventually([&] { return server_->stats().tls_handshake_failures >= 1; }, milliseconds(5000));
  EXPECT_EQ(server_->stats().tls_handshakes, 3u);
  EXPECT_EQ(server_->stats().tls_handshake_failures, 1u);
}

TEST_F(TlsTest, ATlsOnlyServerRefusesClearTextAndServesTls) {
  ServerOptions options;
  options.tls = server_tls();
  options.tls_required = true;
  start(options);
  auto clear = channel(std::nullopt);
  const std::vector<Outcome> refused = echo(*clear, numbered(3));
  for (size_t i = 0; i < refused.size(); ++i)
    EXPECT_NE(refused[i].code, 0) << "call " << i;
  EXPECT_EQ(run("curl -s --max-time 10 -o /dev/null -w '%{http_code}' 'http://" + address() +
                "/health'"),
            "000");
  eventually([&] { return server_->stats().clear_text_refused >= 2; }, milliseconds(5000));
  EXPECT_GE(server_->stats().clear_text_refused, 2u);

  auto tls = channel(client_tls());
  const std::vector<Outcome> served = echo(*tls, numbered(5));
  for (size_t i = 0; i < served.size(); ++i)
    EXPECT_EQ(served[i].code, 0) << "call " << i << ": " << served[i].text;
}

// Start() of a server with `options`: its error, or "started" (a failure of
// the calling test).
std::string start_error(const ServerOptions& options) {
  Server server(options);
  std::string error;
  if (server.Start("127.0.0.1:0", &error)) {
    ADD_FAILURE() << "the server started";
    return "started";
  }
  return error;
}

TEST_F(TlsTest, TlsRequiredWithoutTlsAndUnreadableFilesFailAtStartAndInit) {
  ServerOptions required;
  required.tls_required = true;
  std::string error = start_error(required);
  EXPECT_NE(error.find("tls_required needs tls"), std::string::npos) << error;

  ServerOptions missing;
  missing.tls = server_tls();
  missing.tls->private_key_file = path("no-such.key");
  error = start_error(missing);
  EXPECT_NE(error.find("no-such.key"), std::string::npos) << error;

  ServerOptions mismatched;
  mismatched.tls = server_tls();
  mismatched.tls->private_key_file = path("client.key");
  error = start_error(mismatched);
  EXPECT_NE(error.find("key values mismatch"), std::string::npos) << error;

  ChannelOptions client;
  client.tls = client_tls();
  client.tls->ca_file = path("no-such-ca.pem");
  Channel channel;
  error.clear();
  EXPECT_FALSE(channel.Init("127.0.0.1:1", client, &error));
  EXPECT_NE(error.find("no-such-ca.pem"), std::string::npos) << error;
}

// Each refused certificate: every call fails 1016 and says why; none is
// served.
TEST_F(TlsTest, CertificatesTheClientMustRefuseEndCallsWithTheReason) {
  struct Case {
    const char* what;
    std::string server_certificate;
    std::string client_ca;
    std::string server_name;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"expired", "expired", "ca", "", "certificate has expired"},
      {"another CA", "server", "other-ca", "", "unable to get local issuer certificate"},
      {"another name", "server", "ca", "other.example", "hostname mismatch"},
  };
  // The expired certificate's notAfter is the second it was made.
  std::this_thread::sleep_for(milliseconds(1100));
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    ServerOptions options;
    options.tls = server_tls(c.server_certificate);
    start(options);
    TlsOptions tls = client_tls(c.client_ca);
    tls.server_name = c.server_name;
    auto client = channel(tls);
    const std::vector<Outcome> outcomes = echo(*client, numbered(4));
    for (size_t i = 0; i < outcomes.size(); ++i) {
      EXPECT_EQ(outcomes[i].code, 1016) << "call " << i << ": " << outcomes[i].text;
      EXPECT_NE(outcomes[i].text.find(c.reason), std::string::npos)
          << "call " << i << ": " << outcomes[i].text;
      EXPECT_NE(outcomes[i].text.find("TLS handshake with " + address() + " failed"),
                std::string::npos)
          << "call " << i << ": " << outcomes[i].text;
    }
    EXPECT_EQ(server_->stats().methods["example.EchoService.Echo"].calls, 0u);
    eventually([&] { return server_->stats().tls_handshake_failures >= 1; }, milliseconds(5000));
    EXPECT_GE(server_->stats().tls_handshake_failures, 1u);
    client.reset();
    server_.reset();
  }
}

TEST_F(TlsTest, ATlsClientOfAClearTextServerIsToldTheServerDoesNotServeTls) {
  start(ServerOptions{});
  auto client = channel(client_tls());
  const std::vector<Outcome> outcomes = echo(*client, numbered(3));
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].code, 1016) << "call " << i << ": " << outcomes[i].text;
    EXPECT_NE(outcomes[i].text.find("does it serve TLS on this port?"), std::string::npos)
        << "call " << i << ": " << outcomes[i].text;
  }
  EXPECT_EQ(server_->stats().methods["example.EchoService.Echo"].calls, 0u);
}

TEST_F(TlsTest, MutualTlsServesAClientCertificateAndRefusesNone) {
  ServerOptions options;
  options.tls = server_tls();
  options.tls->ca_file = path("ca.pem");
  options.tls->verify_client = true;
  start(options);

  TlsOptions with_certificate = client_tls();
  with_certificate.certificate_file = path("client.pem");
  with_certificate.private_key_file = path("client.key");
  auto trusted = channel(with_certificate);
  const std::vector<Outcome> who = echo(*trusted, {"who", "hello"});
  EXPECT_EQ(who[0].code, 0) << who[0].text;
  EXPECT_EQ(who[0].message, "/O=percore-test/CN=client-a");
  EXPECT_EQ(who[1].message, "hello");

  auto anonymous = channel(client_tls());
  const std::vector<Outcome> refused = echo(*anonymous, numbered(3));
  for (size_t i = 0; i < refused.size(); ++i) {
    EXPECT_EQ(refused[i].code, 1016) << "call " << i << ": " << refused[i].text;
    EXPECT_NE(refused[i].text.find("certificate required"), std::string::npos)
        << "call " << i << ": " << refused[i].text;
  }
  EXPECT_EQ(run("curl -s --max-time 10 -o /dev/null -w '%{http_code}' --cacert " +
                path("ca.pem") + " 'https://" + address() + "/health'"),
            "000");
  EXPECT_EQ(run("curl -s --max-time 10 -o /dev/null -w '%{http_code}' --cacert " +
                path("ca.pem") + " --cert " + path("client.pem") + " --key " +
                path("client.key") + " 'https://" + address() + "/health'"),
            "200");
  EXPECT_GE(server_->stats().tls_handshake_failures, 2u);
  // A resumed session (curl resumes for its second URL) is served too.
  EXPECT_EQ(run("curl -s --max-time 10 -o /dev/null -o /dev/null -w '%{http_code} ' -H "
                "'Connection: close' --cacert " + path("ca.pem") + " --cert " +
                path("client.pem") + " --key " + path("client.key") + " 'https://" + address() +
                "/health' 'https://" + address() + "/health'"),
            "200 200 ");
  // Clear text has no certificate: refused, as with tls_required.
  EXPECT_EQ(run("curl -s --max-time 10 -o /dev/null -w '%{http_code}' 'http://" + address() +
                "/health'"),
            "000");
  auto clear = channel(std::nullopt);
  const std::vector<Outcome> clear_outcomes = echo(*clear, numbered(2));
  for (size_t i = 0; i < clear_outcomes.size(); ++i)
    EXPECT_NE(clear_outcomes[i].code, 0) << "call " << i;
  EXPECT_GE(server_->stats().clear_text_refused, 2u);
}

// Python's ssl module as the peer: it can stop inside a record, and it tells
// a close_notify from a bare FIN.
class TlsPeerTest : public TlsTest {
 protected:
  std::string python(const std::string& script) {
    const std::string file = path("peer.py");
    FILE* out = std::fopen(file.c_str(), "w");
    std::fputs(script.c_str(), out);
    std::fclose(out);
    return run("timeout 60 python3 " + file + " 2>&1");
  }
  std::string connect_script() const {
    return "import socket, ssl, sys, time\n"
           "ctx = ssl.create_default_context(cafile='" + path("ca.pem") + "')\n"
           "sock = socket.create_connection(('127.0.0.1', " + std::to_string(server_->port()) +
           "))\n"
           "incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()\n"
           "tls = ctx.wrap_bio(incoming, outgoing, server_hostname='localhost')\n"
           "while True:\n"
           "    try:\n"
           "        tls.do_handshake(); break\n"
           "    except ssl.SSLWantReadError:\n"
           "        sock.sendall(outgoing.read()); incoming.write(sock.recv(65536))\n"
           "sock.sendall(outgoing.read())\n";
  }
  // Reads to the end and says how it ended: close_notify makes
  // SSLObject.read() return b'', a bare FIN ends the socket first.
  static std::string read_to_the_end() {
    return "received = b''\n"
           "while True:\n"
           "    try:\n"
           "        chunk = tls.read(65536)\n"
           "        if not chunk: print('close_notify after', received); sys.exit(0)\n"
           "        received += chunk\n"
           "    except ssl.SSLWantReadError:\n"
           "        data = sock.recv(65536)\n"
           "        if not data: print('bare FIN after', received); sys.exit(0)\n"
           "        incoming.write(data)\n";
  }
};

TEST_F(TlsPeerTest, ARecordLeftIncompleteIsBoundedByThePartialFrameTimeout) {
  ServerOptions options;
  options.tls = server_tls();
  options.partial_frame_timeout_ms = 300;
  start(options);
  // A whole request's record less its last 5 bytes, then silence.
  const std::string output = python(
      connect_script() +
      "tls.write(b'POST /example.EchoService/Echo HTTP/1.1\\r\\nContent-Length: 2\\r\\n\\r\\n{}')\n"
      "record = outgoing.read(); sock.sendall(record[:-5])\n"
      "started = time.time(); sock.settimeout(30)\n"
      "while sock.recv(65536): pass\n"
      "print('closed after %.1f s' % (time.time() - started))\n");
  ASSERT_NE(output.find("closed after"), std::string::npos) << output;
  const double seconds = std::stod(output.substr(output.find("after") + 6));
  EXPECT_LT(seconds, scaled(milliseconds(5000)).count() / 1000.0) << output;
  EXPECT_GE(server_->stats().incomplete_frames, 1u);
}

TEST_F(TlsPeerTest, AnsweredConnectionsEndWithCloseNotify) {
  ServerOptions options;
  options.tls = server_tls();
  start(options);
  // HTTP with Connection: close, then a read to the end.
  const std::string http = python(
      connect_script() +
      "tls.write(b'GET /health HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n')\n"
      "sock.sendall(outgoing.read())\n" +
      read_to_the_end());
  EXPECT_NE(http.find("close_notify after b'HTTP/1.1 200"), std::string::npos) << http;
  // baidu_std: an echo call answered, then the idle timeout closes the
  // connection (the read in flight is cancelled for close_notify).
  server_.reset();
  options.idle_timeout_ms = 300;
  start(options);
  const std::string baidu_std = python(
      connect_script() +
      "def field(number, value):\n"
      "    return bytes([number << 3 | 2, len(value)]) + value\n"
      "meta = field(1, field(1, b'example.EchoService') + field(2, b'Echo')) + bytes([4 << 3, 1])\n"
      "message = field(1, b'tls')\n"
      "frame = b'PRPC' + (len(meta) + len(message)).to_bytes(4, 'big') + "
      "len(meta).to_bytes(4, 'big') + meta + message\n"
      "tls.write(frame); sock.sendall(outgoing.read())\n" +
      read_to_the_end());
  EXPECT_NE(baidu_std.find("close_notify after b'PRPC"), std::string::npos) << baidu_std;
  EXPECT_NE(baidu_std.find("tls'"), std::string::npos) << baidu_std;  // The echo.
}

TEST_F(TlsTest, AnEncryptedPrivateKeyIsRefusedWithoutAPrompt) {
  ASSERT_EQ(run("openssl pkey -in " + path("server.key") + " -aes256 -passout pass:secret -out " +
                path("encrypted.key") + " 2>&1; echo $?"),
            "0\n");
  ServerOptions options;
  options.tls = server_tls();
  options.tls->private_key_file = path("encrypted.key");
  const std::string error = start_error(options);
  EXPECT_NE(error.find("is encrypted"), std::string::npos) << error;
}

}  // namespace
}  // namespace percore::testing
