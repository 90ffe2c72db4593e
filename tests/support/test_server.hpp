// A scripted HTTP/1.1 server on 127.0.0.1 for tests, plain or TLS, with a certificate made at
// test time by a CA it also makes (nothing binary is committed). Use it to fake any REST
// endpoint — Entra, IMDS, GitHub OIDC, Trusted Signing, a time-stamp authority — and to feed
// clients hostile answers.
//
//   using namespace tsign::test;
//   TestServer server({.tls = true});                       // port 0: a free port is chosen
//   server.on("/token", [](const Request& r) {              // a handler per path ...
//     return Reply::json(200, R"({"access_token":"t","expires_in":3600})");
//   });
//   server.enqueue("/sign", {.status = 429, .headers = {{"Retry-After", "1"}}});  // ... or a queue
//   server.enqueue("/sign", Reply::json(202, R"({"status":"InProgress"})"));
//   http::ClientOptions o;  o.ca_file = server.ca_file();   // or SSL_CERT_FILE=server.ca_file()
//   ... client.send({.url = server.url("/sign"), ...}) ...
//   CHECK(server.requests("/sign").size() == 2);
//   CHECK(server.requests()[0].header("authorization") == "Bearer t");
//
// Which reply a request to PATH (its target without the query) gets:
//   1. the next reply queued for PATH by enqueue(), consumed in order; else
//   2. the handler installed for PATH by on(); else
//   3. the fallback handler (set_fallback()); else 404.
// A Reply can also misbehave (Reply::fault): close without answering, close mid-body, send
// garbage, stream an endless-looking chunked body, or answer late (Reply::delay).
//
// Threading: the server runs on its own thread; every public member is thread-safe. Handlers
// run on the server's thread, one at a time, without any server lock held (a handler may call
// enqueue()). The destructor stops the server and joins its thread; connections still open are
// closed. Waiting for something to happen: wait_for_requests(), never a sleep.
//
// Links with tsign_common, tsign_platform and tsign_http (plus Boost and OpenSSL).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/ossl.hpp"
#include "support/pki.hpp"  // TestCa, IssuedCert: the server's certificates

namespace tsign::test {

// ------------------------------------------------------------------ requests and replies

struct Request {
  std::string method;
  std::string target;                          // as received: path and query
  std::string path;                            // target without the query
  std::map<std::string, std::string> headers;  // names lower-cased; repeats joined with ", "
  std::string body;
  std::size_t connection = 0;  // which connection it came on, 1-based in order of acceptance
  std::optional<std::string> header(const std::string& lower_name) const;
};

enum class Fault {
  none,
  drop,           // close the connection without answering
  drop_mid_body,  // send the headers (Content-Length of the whole body) and half the body, close
  malformed,      // send `body` verbatim (default: a line that is not HTTP at all), then close
  huge_body,      // stream `huge_bytes` bytes of chunked body (never held in memory)
};

struct Reply {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::chrono::milliseconds delay{0};  // wait this long before answering (or misbehaving)
  Fault fault = Fault::none;
  std::size_t huge_bytes = 0;  // for Fault::huge_body
  bool close = false;          // answer with "Connection: close" and close afterwards

  static Reply json(unsigned status, std::string body);
  static Reply text(unsigned status, std::string body);
  static Reply bytes(unsigned status, std::string content_type, std::string body);
  static Reply failure(Fault f, std::chrono::milliseconds delay = {});
};

using Handler = std::function<Reply(const Request&)>;

struct ServerOptions {
  bool tls = false;
  // What the server's certificate is valid for (a wrong name here tests host-name checks).
  std::vector<std::string> cert_names = {"localhost", "127.0.0.1"};
};

class TestServer {
 public:
  explicit TestServer(ServerOptions opts = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  std::uint16_t port() const { return port_; }
  bool tls() const { return opts_.tls; }
  // "http(s)://127.0.0.1:PORT" + path; `host` may be "localhost" (the server only listens on
  // 127.0.0.1 either way).
  std::string url(const std::string& path = "/", const std::string& host = "127.0.0.1") const;

  void on(const std::string& path, Handler handler);
  void enqueue(const std::string& path, Reply reply);
  void set_fallback(Handler handler);

  std::vector<Request> requests() const;                         // all, in order of arrival
  std::vector<Request> requests(const std::string& path) const;  // those to one path
  std::size_t connections() const;                               // connections accepted so far
  std::size_t max_open_connections() const;  // most connections open at the same time
  // Blocks until at least `n` requests have arrived (true) or `timeout` passed (false).
  bool wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const;

  const TestCa& ca() const { return ca_; }
  std::string ca_pem() const { return ca_.pem(); }
  // A PEM file of the CA, written on first use and deleted with the server.
  std::filesystem::path ca_file() const;

 private:
  struct Impl;
  friend struct Impl;
  Reply choose(const Request& r);
  void record(const Request& r);

  ServerOptions opts_;
  TestCa ca_;
  IssuedCert leaf_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::map<std::string, std::deque<Reply>> queues_;
  std::map<std::string, Handler> handlers_;
  Handler fallback_;
  std::vector<Request> requests_;
  std::size_t connections_ = 0, open_ = 0, peak_ = 0;
  mutable std::filesystem::path ca_file_;
  std::uint16_t port_ = 0;
  std::unique_ptr<Impl> impl_;  // last: stopped and destroyed first
};

}  // namespace tsign::test
