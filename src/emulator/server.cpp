// The emulator's transport and routing: the HTTPS port (docs/protocol.md §1 GitHub OIDC, §2
// Entra ID, §3 Trusted Signing) and the plain-HTTP time-stamp port (§4) on Boost.Beast with C++20
// coroutines; the state directory (identity, env, request log). The services themselves are
// identity.cpp, signing.cpp and tsa.cpp.
//
// Threading: run() drives one io_context on one thread, and every handler runs on it without
// blocking (RSA signing of a digest takes a millisecond or two; latency uses timers), so the
// emulator's state (tokens, operations, fault counters) needs no lock.
#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/ossl.hpp"
#include "emulator/answer.hpp"
#include "emulator/emulator.hpp"
#include "emulator/identity.hpp"
#include "emulator/pki.hpp"
#include "emulator/signing.hpp"
#include "emulator/tsa.hpp"
#include "platform/platform.hpp"

namespace tsign::emulator {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = net::ssl;
namespace json = boost::json;
namespace fs = std::filesystem;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Safe to call after the Server is gone: the Server clears `ioc` when it is destroyed.
struct StopHandle {
  std::mutex m;
  net::io_context* ioc = nullptr;
  void stop() {
    std::lock_guard lock(m);
    if (ioc) ioc->stop();
  }
};

}  // namespace

struct Server::Impl {
  Options opts;
  Pki pki;
  // Declared before the io_context so that it outlives the coroutine frames the io_context
  // destroys (their TLS streams were made from it).
  ssl::context tls{ssl::context::tls_server};
  net::io_context ioc{1};
  tcp::acceptor https_acceptor{ioc};
  tcp::acceptor tsa_acceptor{ioc};
  std::optional<net::signal_set> signals;
  std::shared_ptr<StopHandle> stop_handle = std::make_shared<StopHandle>();

  Endpoints ep;
  std::ofstream log;

  // The services, made once the ports are bound (they hand out URLs); touched only on the
  // io_context's thread (see the file comment).
  std::optional<Identity> identity;
  std::optional<SigningService> signing;
  std::optional<TsaService> tsa;

  explicit Impl(Options o);
  ~Impl() {
    std::lock_guard lock(stop_handle->m);
    stop_handle->ioc = nullptr;
  }

  void make_state_dir();
  void setup_tls();
  void bind(tcp::acceptor& acc, std::uint16_t port, const std::string& what);
  void setup_identity();
  void write_env();

  net::awaitable<void> accept_loop(tcp::acceptor& acc, bool tls_port);
  net::awaitable<void> https_session(tcp::socket sock);
  net::awaitable<void> http_session(tcp::socket sock);
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, bool tsa_port);

  Answer answer(const StringRequest& req, bool tsa_port, std::string& logged_path);
  Answer handle(const StringRequest& req, std::string& logged_path);
  void write_log(const StringRequest& req, const std::string& path, const Answer& a,
                 std::chrono::steady_clock::duration took);
};

Server::Impl::Impl(Options o) : opts(std::move(o)) {
  make_state_dir();
  pki = load_or_create_pki({.dir = ep.state_dir,
                            .account = opts.account,
                            .profile = opts.profile,
                            .leaf_without_code_signing = opts.chain_without_eku});
  setup_tls();
  bind(https_acceptor, opts.listen_port, "--listen");
  bind(tsa_acceptor, opts.tsa_port, "--tsa-port");
  ep.https_port = https_acceptor.local_endpoint().port();
  ep.tsa_port = tsa_acceptor.local_endpoint().port();
  auto addr = https_acceptor.local_endpoint().address();
  std::string host = addr.is_v6() ? "[" + addr.to_string() + "]" : addr.to_string();
  ep.base_url = "https://" + host + ":" + std::to_string(ep.https_port) + "/";
  ep.tsa_url = "http://" + host + ":" + std::to_string(ep.tsa_port) + "/";
  ep.account = opts.account;
  ep.profile = opts.profile;

  setup_identity();
  write_env();
  identity.emplace(opts, ep, pki);
  signing.emplace(opts, ep, pki, *identity);
  tsa.emplace(opts, pki.tsa.get(), pki.tsa_key.get());
  log.open(ep.state_dir / "requests.log", std::ios::app | std::ios::binary);
  if (!log)
    throw FileError("emulator: cannot open " + platform::to_utf8(ep.state_dir / "requests.log"));

  stop_handle->ioc = &ioc;
  if (opts.handle_signals) {
    signals.emplace(ioc, SIGINT, SIGTERM);
    signals->async_wait([this](const boost::system::error_code& e, int) {
      if (!e) ioc.stop();
    });
  }
  net::co_spawn(ioc, accept_loop(https_acceptor, true), net::detached);
  net::co_spawn(ioc, accept_loop(tsa_acceptor, false), net::detached);
}

void Server::Impl::make_state_dir() {
  if (opts.state_dir.empty())
    opts.state_dir = fs::temp_directory_path() / ("tsign-emulator-" + to_hex(random_bytes(6)));
  std::error_code ec;
  fs::create_directories(opts.state_dir, ec);
  if (ec || !fs::is_directory(opts.state_dir))
    throw FileError("emulator: cannot create the state directory " +
                    platform::to_utf8(opts.state_dir) + ": " + ec.message());
  ep.state_dir = fs::absolute(opts.state_dir, ec);
  if (ec) ep.state_dir = opts.state_dir;
}

void Server::Impl::setup_tls() {
  SSL_CTX* ctx = tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate(ctx, pki.tls_server.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, pki.tls_server_key.get()) != 1)
    throw FileError("emulator: cannot set up TLS: " + openssl_error_text());
}

void Server::Impl::bind(tcp::acceptor& acc, std::uint16_t port, const std::string& what) {
  boost::system::error_code ec;
  auto address = net::ip::make_address(opts.listen_host, ec);
  if (ec) throw InputError("emulator: --listen: '" + opts.listen_host + "' is not an IP address");
  tcp::endpoint endpoint(address, port);
  acc.open(endpoint.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(endpoint, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec)
    throw InputError("emulator: " + what + ": cannot listen on " + opts.listen_host + ":" +
                     std::to_string(port) + ": " + ec.message());
}

void Server::Impl::setup_identity() {
  // Tenant and client ids stay the same across restarts of one state directory (a workflow
  // may have them configured); the secrets are new on every start.
  fs::path id_file = ep.state_dir / "identity.json";
  {
    std::ifstream in(id_file, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    boost::system::error_code ec;
    auto v = json::parse(text, ec);
    if (!ec && v.is_object()) {
      ep.tenant_id = json_string(v.as_object(), "tenant_id");
      ep.client_id = json_string(v.as_object(), "client_id");
    }
  }
  if (ep.tenant_id.empty() || ep.client_id.empty()) {
    ep.tenant_id = random_id();
    ep.client_id = random_id();
    std::ofstream out(id_file, std::ios::binary | std::ios::trunc);
    out << json::serialize(json::object{{"tenant_id", ep.tenant_id}, {"client_id", ep.client_id}});
  }
  ep.client_secret = "emu~" + base64url_encode(random_bytes(30));
  ep.client_certificate_password = "emu-pfx~" + base64url_encode(random_bytes(18));
  ep.id_token_request_token = base64url_encode(random_bytes(32));
}

void Server::Impl::write_env() {
  auto q = [](const std::string& s) { return shell_quote(s); };
  auto path = [&](const char* name) { return q(platform::to_utf8(ep.state_dir / name)); };
  ep.env_lines = {
      "export ACTIONS_ID_TOKEN_REQUEST_URL=" + q(ep.base_url + "github/token?api-version=2.0"),
      "export ACTIONS_ID_TOKEN_REQUEST_TOKEN=" + q(ep.id_token_request_token),
      "export AZURE_AUTHORITY_HOST=" + q(ep.base_url.substr(0, ep.base_url.size() - 1)),
      "export AZURE_TENANT_ID=" + q(ep.tenant_id),
      "export AZURE_CLIENT_ID=" + q(ep.client_id),
      "export SSL_CERT_FILE=" + path("tls-ca.pem"),
      "export TSIGN_ALLOWED_HOSTS='127.0.0.1,localhost'",
      "export TSIGN_EMULATOR_ENDPOINT=" + q(ep.base_url),
      "export TSIGN_EMULATOR_TSA=" + q(ep.tsa_url),
      "export TSIGN_EMULATOR_ACCOUNT=" + q(ep.account),
      "export TSIGN_EMULATOR_PROFILE=" + q(ep.profile),
      "export TSIGN_EMULATOR_CODESIGN_ROOT=" + path("codesign-root.pem"),
      "export TSIGN_EMULATOR_TSA_ROOT=" + path("tsa-root.pem"),
      // The application's client certificate (not as AZURE_CLIENT_CERTIFICATE_PATH, for the
      // reason the client secret is not exported either).
      "export TSIGN_EMULATOR_CLIENT_CERT_PEM=" + path("client-cert.pem"),
      "export TSIGN_EMULATOR_CLIENT_CERT_PFX=" + path("client-cert.pfx"),
      "export TSIGN_EMULATOR_CLIENT_CERT_PASSWORD=" + q(ep.client_certificate_password),
  };
  write_client_certificate(pki, ep.state_dir / "client-cert.pem", ep.state_dir / "client-cert.pfx",
                           ep.client_certificate_password);
  auto owner_only = [](const fs::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw FileError("emulator: cannot write " + platform::to_utf8(p));
    // They hold the request token / client secret: the user's eyes only.
    std::error_code ec;
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace,
                    ec);
  };
  std::string env;
  for (const auto& l : ep.env_lines) env += l + "\n";
  owner_only(ep.state_dir / "env", env);
  // Not exported: with it set, the credential chain would pick the client secret first and the
  // default (GitHub OIDC) path would go untested.
  owner_only(ep.state_dir / "client-secret", ep.client_secret + "\n");
}

net::awaitable<void> Server::Impl::accept_loop(tcp::acceptor& acc, bool tls_port) {
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(net::as_tuple(net::use_awaitable));
    if (ec == net::error::operation_aborted) co_return;
    if (ec) {
      // Out of descriptors or similar: give the sessions a moment to close some.
      net::steady_timer t(ioc, 50ms);
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
      continue;
    }
    if (tls_port)
      net::co_spawn(ioc, https_session(std::move(sock)), net::detached);
    else
      net::co_spawn(ioc, http_session(std::move(sock)), net::detached);
  }
}

net::awaitable<void> Server::Impl::https_session(tcp::socket sock) {
  beast::ssl_stream<beast::tcp_stream> stream(std::move(sock), tls);
  stream.next_layer().expires_after(30s);
  auto [ec] =
      co_await stream.async_handshake(ssl::stream_base::server, net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  co_await serve(stream, false);
  if (!stream.next_layer().socket().is_open()) co_return;
  stream.next_layer().expires_after(5s);
  co_await stream.async_shutdown(net::as_tuple(net::use_awaitable));
}

net::awaitable<void> Server::Impl::http_session(tcp::socket sock) {
  beast::tcp_stream stream(std::move(sock));
  co_await serve(stream, true);
  boost::system::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

template <class Stream>
net::awaitable<void> Server::Impl::serve(Stream& stream, bool tsa_port) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(1024 * 1024);
    beast::get_lowest_layer(stream).expires_after(60s);
    auto [rec, rn] =
        co_await http::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (rec) co_return;
    StringRequest req = parser.release();
    auto start = std::chrono::steady_clock::now();
    std::string path = "(unparsed)";
    Answer a = answer(req, tsa_port, path);

    // A sign/poll request served (not refused) occupies the service until its latency passed.
    const bool occupies = SigningService::occupies(a);
    if (occupies) ++signing->in_flight;
    if (opts.latency.count() > 0) {
      net::steady_timer t(ioc, opts.latency);
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }
    if (occupies) --signing->in_flight;
    write_log(req, path, a, std::chrono::steady_clock::now() - start);
    if (a.drop) {
      boost::system::error_code ec;
      beast::get_lowest_layer(stream).socket().close(ec);
      co_return;
    }
    a.res.version(req.version());
    a.res.keep_alive(req.keep_alive());
    a.res.set(http::field::server, "tsign-emulator");
    a.res.set("x-ms-request-id", random_id());
    a.res.prepare_payload();
    beast::get_lowest_layer(stream).expires_after(30s);
    auto [wec, wn] = co_await http::async_write(stream, a.res, net::as_tuple(net::use_awaitable));
    if (wec || !a.res.keep_alive()) co_return;
  }
}

// The answer to one request; a handler that throws gets a 500 in the service's error shape.
Answer Server::Impl::answer(const StringRequest& req, bool tsa_port, std::string& logged_path) {
  try {
    if (!tsa_port) return handle(req, logged_path);
    auto u = boost::urls::parse_origin_form(req.target());
    if (u) logged_path = std::string(u->encoded_path());
    return tsa->handle(req);
  } catch (const std::exception& e) {
    return error_detail(http::status::internal_server_error, "InternalError",
                        std::string("emulator failure: ") + e.what(), "", "unknown");
  }
}

void Server::Impl::write_log(const StringRequest& req, const std::string& path, const Answer& a,
                             std::chrono::steady_clock::duration took) {
  // Method, path (no query: it may carry an audience or other parameters), status, kind. Never
  // a header or a body: they hold tokens, secrets and assertions.
  json::object line{
      {"time", iso_time(SysClock::now())},
      {"method", std::string(req.method_string())},
      {"path", path},
      {"status", a.drop ? 0 : a.res.result_int()},
      {"kind", a.kind},
      {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(took).count()},
  };
  if (!a.fault.empty()) line["fault"] = a.fault;
  // The api-version asked for (not secret, unlike the rest of a query): which contract was used.
  if (auto u = boost::urls::parse_origin_form(req.target()); u) {
    if (auto p = u->params().find("api-version"); p != u->params().end())
      line["api"] = std::string((*p).value);
  }
  log << json::serialize(line) << '\n';
  log.flush();
}

Answer Server::Impl::handle(const StringRequest& req, std::string& logged_path) {
  auto parsed = boost::urls::parse_origin_form(req.target());
  if (!parsed)
    return error_detail(http::status::bad_request, "BadRequest", "malformed request target", "",
                        "unknown");
  boost::urls::url_view u = *parsed;
  logged_path = std::string(u.encoded_path());
  std::vector<std::string> segs;
  for (auto s : u.segments()) segs.push_back(s);

  switch (route(segs)) {
    case Route::github_token:
      return identity->github_token(req, u);
    case Route::entra_token:
      return identity->entra_token(req, segs[0]);
    case Route::signing:
      return signing->handle(req, u, segs);
    case Route::none:
      break;
  }
  return error_detail(http::status::not_found, "NotFound",
                      "the emulator serves no resource at this path", logged_path, "unknown");
}

Server::Server(Options opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
Server::~Server() = default;

const Endpoints& Server::endpoints() const {
  return impl_->ep;
}

void Server::run() {
  impl_->ioc.run();
}

void Server::stop() {
  impl_->stop_handle->stop();
}

std::function<void()> Server::stopper() const {
  return [h = impl_->stop_handle] { h->stop(); };
}

}  // namespace tsign::emulator
