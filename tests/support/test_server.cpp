// The scripted loopback server of test_server.hpp: HTTP/1.1 (RFC 9112) on Boost.Beast, TLS via
// OpenSSL, X.509 v3 certificates (RFC 5280) made in-process with OpenSSL's X509 API.
#include "support/test_server.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <fstream>
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

#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "http/url.hpp"

namespace tsign::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

// ------------------------------------------------------------------ certificates

namespace {

[[noreturn]] void ossl_fail(const std::string& what) {
  throw std::runtime_error("test certificate: " + what + ": " + openssl_error_text());
}

EvpPkeyPtr make_key(KeyType type) {
  EVP_PKEY* k = type == KeyType::ec_p256 ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  if (!k) ossl_fail("key generation");
  return EvpPkeyPtr(k);
}

void add_ext(X509* cert, X509V3_CTX* ctx, int nid, const std::string& value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value.c_str());
  if (!ext) ossl_fail("extension " + value);
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  if (!ok) ossl_fail("adding extension " + value);
}

bool is_ip(const std::string& s) {
  error_code ec;
  asio::ip::make_address(s, ec);
  return !ec;
}

// issuer == nullptr: self-signed CA.
IssuedCert make_cert(const CertSpec& spec, bool ca, const IssuedCert* issuer) {
  IssuedCert out;
  out.key = make_key(spec.key);
  X509Ptr x(X509_new());
  if (!x) ossl_fail("X509_new");
  X509_set_version(x.get(), X509_VERSION_3);
  // Random positive serial: two servers of one test run must not share one.
  Bytes serial = random_bytes(16);
  serial[0] &= 0x7F;
  OsslPtr<BIGNUM, BN_free> bn(BN_bin2bn(serial.data(), static_cast<int>(serial.size()), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x.get()))) ossl_fail("serial");
  // Valid from an hour ago: clocks of test machines and containers drift a little.
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), static_cast<long>(spec.lifetime.count()));
  X509_set_pubkey(x.get(), out.key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
                             -1, 0);
  X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->cert.get()) : name);

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer ? issuer->cert.get() : x.get(), x.get(), nullptr, nullptr, 0);
  add_ext(x.get(), &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
  add_ext(x.get(), &ctx, NID_key_usage,
          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
  add_ext(x.get(), &ctx, NID_subject_key_identifier, "hash");
  add_ext(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (!spec.names.empty()) {
    std::string san;
    for (const auto& n : spec.names)
      san += std::string(san.empty() ? "" : ",") + (is_ip(n) ? "IP:" : "DNS:") + n;
    add_ext(x.get(), &ctx, NID_subject_alt_name, san);
  }
  if (!spec.extended_key_usage.empty())
    add_ext(x.get(), &ctx, NID_ext_key_usage, spec.extended_key_usage);
  if (X509_sign(x.get(), issuer ? issuer->key.get() : out.key.get(), EVP_sha256()) <= 0)
    ossl_fail("signing");
  out.cert = std::move(x);
  return out;
}

std::string bio_text(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace

std::string IssuedCert::cert_pem() const {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(b.get(), cert.get());
  return bio_text(b.get());
}

std::string IssuedCert::key_pem() const {
  BioPtr b(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(b.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  return bio_text(b.get());
}

TestCa::TestCa(std::string common_name, KeyType key) {
  CertSpec spec;
  spec.common_name = std::move(common_name);
  spec.key = key;
  spec.lifetime = std::chrono::hours(24 * 30);
  root_ = make_cert(spec, true, nullptr);
}

IssuedCert TestCa::issue(const CertSpec& spec) const {
  return make_cert(spec, false, &root_);
}

void TestCa::write_pem(const std::filesystem::path& file) const {
  std::ofstream f(file, std::ios::binary | std::ios::trunc);
  f << pem();
  if (!f) throw std::runtime_error("cannot write " + file.string());
}

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
        for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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
