// The scripted loopback server of test_server.hpp: HTTP/1.1 (RFC 9112) on Boost.Beast, TLS via
// OpenSSL, its certificates made by support/pki.hpp.
#include "support/test_server.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#include "http/url.hpp"

namespace tsign::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

[[noreturn]] void ossl_fail(const std::string& what) {
  throw std::runtime_error("test certificate: " + what + ": " + openssl_error_text());
}

}  // namespace

// ------------------------------------------------------------------ replies

std::optional<std::string> Request::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

Reply Reply::json(unsigned status, std::string body) {
  return bytes(status, "application/json", std::move(body));
}
Reply Reply::text(unsigned status, std::string body) {
  return bytes(status, "text/plain; charset=utf-8", std::move(body));
}
Reply Reply::bytes(unsigned status, std::string content_type, std::string body) {
  Reply r;
  r.status = status;
  r.headers.emplace_back("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}
Reply Reply::failure(Fault f, std::chrono::milliseconds delay) {
  Reply r;
  r.fault = f;
  r.delay = delay;
  return r;
}

// ------------------------------------------------------------------ the server

struct TestServer::Impl {
  explicit Impl(TestServer& s) : server(s), tls_ctx(ssl::context::tls_server), acceptor(ioc) {}

  TestServer& server;
  ssl::context tls_ctx;
  asio::io_context ioc{1};
  tcp::acceptor acceptor;
  std::thread thread;

  // Counts a connection open for as long as its session lives.
  struct OpenGuard {
    TestServer& s;
    explicit OpenGuard(TestServer& srv) : s(srv) {}
    ~OpenGuard() {
      std::lock_guard lock(s.mu_);
      --s.open_;
    }
  };

  asio::awaitable<void> accept_loop() {
    for (;;) {
      error_code ec;
      tcp::socket sock =
          co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return;  // closed: the server is stopping
      std::size_t number;
      {
        std::lock_guard lock(server.mu_);
        number = ++server.connections_;
        server.peak_ = std::max(server.peak_, ++server.open_);
      }
      asio::co_spawn(ioc, session(std::move(sock), number), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket sock, std::size_t number) {
    OpenGuard guard(server);
    if (!server.opts_.tls) {
      beast::tcp_stream s(std::move(sock));
      co_await serve(s, s, number);
      error_code ec;
      s.socket().shutdown(tcp::socket::shutdown_both, ec);
      co_return;
    }
    beast::ssl_stream<beast::tcp_stream> s(std::move(sock), tls_ctx);
    beast::get_lowest_layer(s).expires_after(std::chrono::seconds(10));
    error_code ec;
    co_await s.async_handshake(ssl::stream_base::server,
                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;  // e.g. the client rejected our certificate: that is the test's point
    beast::get_lowest_layer(s).expires_never();
    if (co_await serve(s, beast::get_lowest_layer(s), number)) {
      beast::get_lowest_layer(s).expires_after(std::chrono::seconds(2));
      co_await s.async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  // Serves requests until the connection ends. Returns true for an orderly end (a TLS
  // close_notify is then due), false when a fault cut it short.
  template <class Stream>
  asio::awaitable<bool> serve(Stream& s, beast::tcp_stream& low, std::size_t number) {
    beast::flat_buffer buf;
    for (;;) {
      bhttp::request_parser<bhttp::string_body> p;
      p.body_limit(64 * 1024 * 1024);
      error_code ec;
      co_await bhttp::async_read(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return ec == bhttp::error::end_of_stream;
      auto& m = p.get();
      Request req;
      req.method = std::string(m.method_string());
      req.target = std::string(m.target());
      req.path = http::split_target(req.target).path;
      for (const auto& f : m) {
        std::string name(f.name_string());
        name = ascii_lower(name);
        auto [it, inserted] = req.headers.emplace(name, std::string(f.value()));
        if (!inserted) it->second += ", " + std::string(f.value());
      }
      req.body = std::move(m.body());
      req.connection = number;
      const bool client_keep_alive = m.keep_alive();
      server.record(req);
      Reply reply = server.choose(req);

      if (reply.delay.count() > 0) {
        asio::steady_timer t(ioc);
        t.expires_after(reply.delay);
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      switch (reply.fault) {
        case Fault::drop:
          low.socket().close(ec);
          co_return false;
        case Fault::malformed: {
          std::string raw = reply.body.empty() ? "this is not HTTP at all\r\n\r\n" : reply.body;
          co_await asio::async_write(s, asio::buffer(raw),
                                     asio::redirect_error(asio::use_awaitable, ec));
          low.socket().close(ec);
          co_return false;
        }
        case Fault::drop_mid_body: {
          bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), 11};
          for (const auto& [k, v] : reply.headers) res.insert(k, v);
          if (reply.body.size() < 2) reply.body.assign(1024, 'x');
          res.body() = reply.body;
          res.prepare_payload();
          bhttp::response_serializer<bhttp::string_body> sr{res};
          co_await bhttp::async_write_header(s, sr, asio::redirect_error(asio::use_awaitable, ec));
          co_await asio::async_write(s, asio::buffer(reply.body.data(), reply.body.size() / 2),
                                     asio::redirect_error(asio::use_awaitable, ec));
          low.socket().close(ec);
          co_return false;
        }
        case Fault::huge_body: {
          bhttp::response<bhttp::empty_body> res{static_cast<bhttp::status>(reply.status), 11};
          for (const auto& [k, v] : reply.headers) res.insert(k, v);
          res.chunked(true);
          bhttp::response_serializer<bhttp::empty_body> sr{res};
          co_await bhttp::async_write_header(s, sr, asio::redirect_error(asio::use_awaitable, ec));
          const std::string chunk(64 * 1024, 'x');
          for (std::size_t sent = 0; !ec && sent < reply.huge_bytes;) {
            std::size_t n = std::min(chunk.size(), reply.huge_bytes - sent);
            co_await asio::async_write(s, bhttp::make_chunk(asio::buffer(chunk.data(), n)),
                                       asio::redirect_error(asio::use_awaitable, ec));
            sent += n;
          }
          if (!ec)
            co_await asio::async_write(s, bhttp::make_chunk_last(),
                                       asio::redirect_error(asio::use_awaitable, ec));
          low.socket().close(ec);  // the client most likely gave up reading long ago
          co_return false;
        }
        case Fault::none:
          break;
      }
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(reply.status), 11};
      for (const auto& [k, v] : reply.headers) res.insert(k, v);
      res.body() = std::move(reply.body);
      res.keep_alive(client_keep_alive && !reply.close);
      res.prepare_payload();
      co_await bhttp::async_write(s, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return false;
      if (!res.keep_alive()) co_return true;
    }
  }
};

TestServer::TestServer(ServerOptions opts) : opts_(std::move(opts)), ca_("tsign test server root") {
  CertSpec spec;
  spec.common_name = opts_.cert_names.empty() ? "tsign test server" : opts_.cert_names.front();
  spec.names = opts_.cert_names;
  spec.extended_key_usage = "serverAuth";
  leaf_ = ca_.issue(spec);

  impl_ = std::make_unique<Impl>(*this);
  SSL_CTX* c = impl_->tls_ctx.native_handle();
  // The chain includes the root, as many real servers do; a client that does not trust the
  // root then reports "self-signed certificate in certificate chain".
  if (SSL_CTX_use_certificate(c, leaf_.cert.get()) != 1 ||
      SSL_CTX_add1_chain_cert(c, ca_.cert()) != 1 ||
      SSL_CTX_use_PrivateKey(c, leaf_.key.get()) != 1)
    ossl_fail("server TLS context");

  tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(tcp::acceptor::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen(asio::socket_base::max_listen_connections);
  port_ = impl_->acceptor.local_endpoint().port();
  asio::co_spawn(impl_->ioc, impl_->accept_loop(), asio::detached);
  impl_->thread = std::thread([io = &impl_->ioc] { io->run(); });
}

TestServer::~TestServer() {
  // Stop the loop and join; destroying the io_context then destroys every session (closing its
  // socket) without running anything more.
  impl_->ioc.stop();
  impl_->thread.join();
  impl_.reset();
  if (!ca_file_.empty()) {
    std::error_code ec;
    std::filesystem::remove(ca_file_, ec);
  }
}

std::string TestServer::url(const std::string& path, const std::string& host) const {
  return http::make_url(opts_.tls, host, port_, path);
}

void TestServer::on(const std::string& path, Handler handler) {
  std::lock_guard lock(mu_);
  handlers_[path] = std::move(handler);
}

void TestServer::enqueue(const std::string& path, Reply reply) {
  std::lock_guard lock(mu_);
  queues_[path].push_back(std::move(reply));
}

void TestServer::set_fallback(Handler handler) {
  std::lock_guard lock(mu_);
  fallback_ = std::move(handler);
}

std::vector<Request> TestServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<Request> TestServer::requests(const std::string& path) const {
  std::lock_guard lock(mu_);
  std::vector<Request> out;
  for (const auto& r : requests_)
    if (r.path == path) out.push_back(r);
  return out;
}

std::size_t TestServer::connections() const {
  std::lock_guard lock(mu_);
  return connections_;
}

std::size_t TestServer::max_open_connections() const {
  std::lock_guard lock(mu_);
  return peak_;
}

bool TestServer::wait_for_requests(std::size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

std::filesystem::path TestServer::ca_file() const {
  std::lock_guard lock(mu_);
  if (ca_file_.empty()) {
    auto p = std::filesystem::temp_directory_path() /
             ("tsign-test-ca-" + to_hex(random_bytes(8)) + ".pem");
    ca_.write_pem(p);
    ca_file_ = p;
  }
  return ca_file_;
}

void TestServer::record(const Request& r) {
  {
    std::lock_guard lock(mu_);
    requests_.push_back(r);
  }
  cv_.notify_all();
}

Reply TestServer::choose(const Request& r) {
  Handler h;
  {
    std::lock_guard lock(mu_);
    if (auto q = queues_.find(r.path); q != queues_.end() && !q->second.empty()) {
      Reply reply = std::move(q->second.front());
      q->second.pop_front();
      return reply;
    }
    if (auto it = handlers_.find(r.path); it != handlers_.end())
      h = it->second;
    else
      h = fallback_;
  }
  if (!h) return Reply::text(404, "no reply scripted for " + r.path + "\n");
  try {
    return h(r);  // outside the lock: a handler may script the server further
  } catch (const std::exception& e) {
    return Reply::text(500, std::string("test handler threw: ") + e.what() + "\n");
  }
}

}  // namespace tsign::test
