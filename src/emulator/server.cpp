// The emulator's HTTP(S) front: the endpoints and encodings of docs/protocol.md —
// §1 GitHub OIDC token, §2 Entra ID token (OAuth 2.0 client credentials, RFC 6749 §4.4, with
// RFC 7523 assertions), §3 Trusted Signing sign / poll / certchain / rootcert / eku, §4 RFC 3161
// time-stamping (plain HTTP, its own port) — on Boost.Beast with C++20 coroutines.
//
// Threading: run() drives one io_context on one thread, and every handler runs on it without
// blocking (RSA signing of a digest takes a millisecond or two; latency uses timers), so the
// emulator's state (tokens, operations, fault counters) needs no lock.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <optional>
#include <unordered_map>

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
#include <boost/url/params_view.hpp>
#include <boost/url/parse.hpp>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "common/error.hpp"
#include "emulator/emulator.hpp"
#include "emulator/jwt.hpp"
#include "emulator/pki.hpp"
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

using StringRequest = http::request<http::string_body>;
using StringResponse = http::response<http::string_body>;
using SysClock = std::chrono::system_clock;

constexpr auto kTokenAudience = "api://AzureADTokenExchange";
constexpr auto kScope = "https://codesigning.azure.net/.default";
constexpr auto kAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
constexpr auto kApi2022 = "2022-06-15-preview";
constexpr auto kApi2023 = "2023-06-15-preview";
constexpr auto kApi2024 = "2024-06-15";  // GA: Azure Core operation and error shapes

// One answer and how it is reported in the request log.
struct Answer {
  StringResponse res;
  bool drop = false;  // close the connection instead of answering
  std::string kind = "unknown";
  std::string fault;
};

struct Operation {
  std::string signature;  // base64
  int polls_left = 0;     // InProgress answers still to give
};

std::string random_id() {
  // A GUID-shaped random value (version 4), like the service's operation ids and Entra's ids.
  Bytes b = random_bytes(16);
  b[6] = static_cast<std::uint8_t>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<std::uint8_t>((b[8] & 0x3f) | 0x80);
  std::string h = to_hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string iso_time(SysClock::time_point t) {
  auto day = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{day};
  std::chrono::hh_mm_ss hms{std::chrono::floor<std::chrono::milliseconds>(t - day)};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%03dZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), int(hms.hours().count()),
                int(hms.minutes().count()), int(hms.seconds().count()),
                int(hms.subseconds().count()));
  return buf;
}

std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(SysClock::now().time_since_epoch())
      .count();
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

bool equal_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string bearer(const StringRequest& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  std::string_view v = it->value();
  if (v.size() < 7 || !beast::iequals(v.substr(0, 7), "Bearer ")) return {};
  return std::string(v.substr(7));
}

Answer json_answer(http::status status, const json::value& body, std::string kind) {
  Answer a;
  a.kind = std::move(kind);
  a.res.result(status);
  a.res.set(http::field::content_type, "application/json; charset=utf-8");
  a.res.body() = json::serialize(body);
  return a;
}

// Trusted Signing's error shape (protocol.md §3 "Errors").
Answer error_detail(http::status status, const std::string& code, const std::string& message,
                    const std::string& target, std::string kind) {
  return json_answer(status,
                     {{"errorDetail", {{"code", code}, {"message", message}, {"target", target}}}},
                     std::move(kind));
}

// The Azure Core error shape of the GA api-version (its OpenAPI description's
// Azure.Core.Foundations.ErrorResponse), with the x-ms-error-code header it declares.
Answer core_error(http::status status, const std::string& code, const std::string& message,
                  const std::string& target, std::string kind) {
  json::object error{{"code", code}, {"message", message}};
  if (!target.empty()) error["target"] = target;
  Answer a = json_answer(status, {{"error", error}}, std::move(kind));
  a.res.set("x-ms-error-code", code);
  return a;
}

// A signing-service error in the shape of the api-version asked for.
Answer service_error(const std::string& api, http::status status, const std::string& code,
                     const std::string& message, const std::string& target, std::string kind) {
  return api == kApi2024 ? core_error(status, code, message, target, std::move(kind))
                         : error_detail(status, code, message, target, std::move(kind));
}

// Entra's error shape (protocol.md §2).
Answer entra_error(http::status status, const std::string& error, const std::string& description) {
  return json_answer(status,
                     {{"error", error},
                      {"error_description", description},
                      {"error_codes", json::array{}},
                      {"timestamp", iso_time(SysClock::now())},
                      {"trace_id", random_id()},
                      {"correlation_id", random_id()}},
                     "entra");
}

const EVP_MD* rs_md(std::string_view alg) {
  if (alg == "RS256") return EVP_sha256();
  if (alg == "RS384") return EVP_sha384();
  if (alg == "RS512") return EVP_sha512();
  return nullptr;
}

// The signingCertificate encoding of protocol.md §3: DER PKCS#7 -> MIME base64 (76 columns,
// CRLF) -> base64 again.
std::string double_base64(ByteView der) {
  std::string once = base64_encode(der);
  std::string mime;
  for (std::size_t i = 0; i < once.size(); i += 76) {
    mime += once.substr(i, 76);
    mime += "\r\n";
  }
  return base64_encode(as_bytes(mime));
}

// A certs-only PKCS#7 SignedData (RFC 2315 §9.1 degenerate case), leaf first.
Bytes certs_only_pkcs7(const std::vector<X509*>& certs) {
  PKCS7Ptr p7(PKCS7_new());
  if (!p7 || !PKCS7_set_type(p7.get(), NID_pkcs7_signed) ||
      !PKCS7_content_new(p7.get(), NID_pkcs7_data))
    throw FileError("emulator: cannot build the certificate chain: " + openssl_error_text());
  for (X509* c : certs)
    if (!PKCS7_add_certificate(p7.get(), c))
      throw FileError("emulator: cannot build the certificate chain: " + openssl_error_text());
  int n = i2d_PKCS7(p7.get(), nullptr);
  if (n <= 0) throw FileError("emulator: cannot encode the certificate chain");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_PKCS7(p7.get(), &p);
  return out;
}

std::string json_string(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return (v && v->is_string()) ? std::string(v->as_string()) : std::string();
}

std::optional<std::int64_t> json_int(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->as_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->as_double());
  return std::nullopt;
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
  std::string issuer;               // iss of the GitHub OIDC tokens
  std::string kid;                  // their key id
  std::string signing_certificate;  // double base64 chain, the same for every answer
  Bytes chain_der;                  // certs-only PKCS#7 of the chain
  Bytes root_der;
  std::ofstream log;

  // State, touched only on the io_context's thread (see the file comment).
  std::unordered_map<std::string, SysClock::time_point> access_tokens;
  std::unordered_map<std::string, Operation> operations;
  std::uint64_t service_requests = 0;
  std::uint64_t poll_requests = 0;
  int service_in_flight = 0;  // sign/poll requests whose latency has not passed (--capacity)
  std::uint64_t tsa_requests = 0;
  std::uint64_t tsa_serial = 0;

  explicit Impl(Options o);
  ~Impl() {
    std::lock_guard lock(stop_handle->m);
    stop_handle->ioc = nullptr;
  }

  void setup_identity();
  void bind(tcp::acceptor& acc, std::uint16_t port, const std::string& what);
  void write_env();

  net::awaitable<void> accept_loop(tcp::acceptor& acc, bool tls_port);
  net::awaitable<void> https_session(tcp::socket sock);
  net::awaitable<void> http_session(tcp::socket sock);
  template <class Stream>
  net::awaitable<void> serve(Stream& stream, bool tsa_port);

  Answer handle(const StringRequest& req, std::string& logged_path);
  Answer handle_tsa(const StringRequest& req);
  Answer handle_oidc(const StringRequest& req, const boost::urls::url_view& u);
  Answer handle_entra(const StringRequest& req, const std::string& tenant);
  Answer handle_signing(const StringRequest& req, const boost::urls::url_view& u,
                        const std::vector<std::string>& segs);
  Answer sign(const StringRequest& req, const std::string& api, const std::string& base_path);
  Answer poll(const std::string& id, const std::string& api);
  std::optional<Answer> service_fault(const std::string& kind, bool is_sign);
  Answer refuse_version(const StringRequest& req, const std::string& api, const std::string& kind);
  Bytes sign_digest(ByteView digest, const EVP_MD* md);
  void write_log(const StringRequest& req, const std::string& path, const Answer& a,
                 std::chrono::steady_clock::duration took);
};

Server::Impl::Impl(Options o) : opts(std::move(o)) {
  if (opts.state_dir.empty())
    opts.state_dir = fs::temp_directory_path() / ("tsign-emulator-" + to_hex(random_bytes(6)));
  std::error_code ec;
  fs::create_directories(opts.state_dir, ec);
  if (ec || !fs::is_directory(opts.state_dir))
    throw FileError("emulator: cannot create the state directory " +
                    platform::to_utf8(opts.state_dir) + ": " + ec.message());
  ep.state_dir = fs::absolute(opts.state_dir, ec);
  if (ec) ep.state_dir = opts.state_dir;

  pki = load_or_create_pki({.dir = ep.state_dir,
                            .account = opts.account,
                            .profile = opts.profile,
                            .leaf_without_code_signing = opts.chain_without_eku});
  chain_der = certs_only_pkcs7({pki.leaf.get(), pki.cs_ca.get(), pki.cs_root.get()});
  signing_certificate = double_base64(chain_der);
  root_der = to_der(pki.cs_root.get());
  {
    // The key id names the OIDC key by its public half, as a JWKS would.
    unsigned char* der = nullptr;
    int n = i2d_PUBKEY(pki.oidc_key.get(), &der);
    if (n <= 0) throw FileError("emulator: cannot encode the OIDC key: " + openssl_error_text());
    kid = to_hex(hash(DigestAlg::sha256, ByteView(der, static_cast<std::size_t>(n)))).substr(0, 32);
    OPENSSL_free(der);
  }

  SSL_CTX* ctx = tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate(ctx, pki.tls_server.get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, pki.tls_server_key.get()) != 1)
    throw FileError("emulator: cannot set up TLS: " + openssl_error_text());

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
  issuer = ep.base_url + "github";

  setup_identity();
  write_env();
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
  };
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
    Answer a;
    try {
      if (tsa_port) {
        auto u = boost::urls::parse_origin_form(req.target());
        if (u) path = std::string(u->encoded_path());
        a = handle_tsa(req);
      } else {
        a = handle(req, path);
      }
    } catch (const std::exception& e) {
      a = error_detail(http::status::internal_server_error, "InternalError",
                       std::string("emulator failure: ") + e.what(), "", a.kind);
    }

    // A sign/poll request served (not refused) occupies the service until its latency passed.
    const bool occupies = (a.kind == "sign" || a.kind == "poll") && a.fault.empty();
    if (occupies) ++service_in_flight;
    if (opts.latency.count() > 0) {
      net::steady_timer t(ioc, opts.latency);
      co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }
    if (occupies) --service_in_flight;
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

  if (segs.size() == 2 && segs[0] == "github" && segs[1] == "token") {
    if (req.method() != http::verb::get)
      return json_answer(http::status::method_not_allowed, {{"message", "use GET"}}, "oidc");
    return handle_oidc(req, u);
  }
  if (segs.size() == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token") {
    if (req.method() != http::verb::post)
      return entra_error(http::status::method_not_allowed, "invalid_request",
                         "AADSTS900561: The endpoint only accepts POST requests.");
    return handle_entra(req, segs[0]);
  }
  if (!segs.empty() && segs[0] == "codesigningaccounts") return handle_signing(req, u, segs);
  return error_detail(http::status::not_found, "NotFound",
                      "the emulator serves no resource at this path", logged_path, "unknown");
}

// protocol.md §1.
Answer Server::Impl::handle_oidc(const StringRequest& req, const boost::urls::url_view& u) {
  if (!equal_secret(bearer(req), ep.id_token_request_token))
    return json_answer(http::status::unauthorized,
                       {{"message", "Bad credentials: ACTIONS_ID_TOKEN_REQUEST_TOKEN not valid"}},
                       "oidc");
  std::string audience = "https://github.com/tsign-emulator";  // GitHub's default audience
  if (auto it = u.params().find("audience"); it != u.params().end()) audience = (*it).value;
  std::int64_t now = unix_now();
  json::object claims{
      {"jti", random_id()},
      {"sub", opts.subject},
      {"aud", audience},
      {"ref", "refs/heads/main"},
      {"repository", "tsign-emulator/demo"},
      {"repository_owner", "tsign-emulator"},
      {"event_name", "push"},
      {"iss", issuer},
      {"nbf", now},
      {"iat", now},
      {"exp", now + opts.github_token_lifetime.count()},
  };
  std::string jwt =
      jwt_sign(pki.oidc_key.get(), {{"alg", "RS256"}, {"typ", "JWT"}, {"kid", kid}}, claims);
  return json_answer(http::status::ok, {{"count", 1}, {"value", jwt}}, "oidc");
}

// protocol.md §2.
Answer Server::Impl::handle_entra(const StringRequest& req, const std::string& tenant) {
  if (tenant != ep.tenant_id)
    return entra_error(http::status::bad_request, "invalid_request",
                       "AADSTS90002: Tenant '" + tenant +
                           "' not found. Check that AZURE_TENANT_ID is the emulator's tenant.");
  auto ct = req[http::field::content_type];
  if (ct.substr(0, 33) != "application/x-www-form-urlencoded")
    return entra_error(http::status::bad_request, "invalid_request",
                       "AADSTS900144: The request body must be "
                       "application/x-www-form-urlencoded.");

  std::unordered_map<std::string, std::string> form;
  try {
    boost::urls::encoding_opts eo;
    eo.space_as_plus = true;
    boost::urls::params_view params(req.body(), eo);
    for (auto p : params) form.emplace(p.key, p.value);  // the first occurrence wins
  } catch (const std::exception&) {
    return entra_error(http::status::bad_request, "invalid_request",
                       "AADSTS900144: The request body is not valid form encoding.");
  }
  auto field = [&](const std::string& k) -> std::optional<std::string> {
    auto it = form.find(k);
    if (it == form.end()) return std::nullopt;
    return it->second;
  };
  auto missing = [&](const std::string& k) {
    return entra_error(
        http::status::bad_request, "invalid_request",
        "AADSTS900144: The request body must contain the following parameter: '" + k + "'.");
  };

  auto grant = field("grant_type");
  if (!grant) return missing("grant_type");
  if (*grant != "client_credentials")
    return entra_error(
        http::status::bad_request, "unsupported_grant_type",
        "AADSTS70003: The app requested an unsupported grant type '" + *grant + "'.");
  auto client_id = field("client_id");
  if (!client_id) return missing("client_id");
  if (*client_id != ep.client_id)
    return entra_error(http::status::bad_request, "unauthorized_client",
                       "AADSTS700016: Application with identifier '" + *client_id +
                           "' was not found in the directory '" + tenant + "'.");
  auto scope = field("scope");
  if (!scope) return missing("scope");
  if (*scope != kScope)
    return entra_error(http::status::bad_request, "invalid_scope",
                       "AADSTS70011: The provided value for the input parameter 'scope' is not "
                       "valid. The emulator issues tokens for " +
                           std::string(kScope) + " only.");

  if (auto secret = field("client_secret")) {
    if (!equal_secret(*secret, ep.client_secret))
      return entra_error(http::status::unauthorized, "invalid_client",
                         "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                         "sent in the request is the client secret value.");
  } else if (auto assertion = field("client_assertion")) {
    if (field("client_assertion_type") != std::optional<std::string>(kAssertionType))
      return entra_error(
          http::status::bad_request, "invalid_request",
          "AADSTS700023: client_assertion_type must be " + std::string(kAssertionType) + ".");
    auto jwt = jwt_parse(*assertion, pki.oidc_key.get());
    if (!jwt)
      return entra_error(http::status::bad_request, "invalid_client",
                         "AADSTS50027: JWT token is invalid or malformed.");
    if (!jwt->signature_valid)
      return entra_error(http::status::unauthorized, "invalid_client",
                         "AADSTS700027: Client assertion contains an invalid signature.");
    bool aud_ok = false;
    if (const auto* aud = jwt->claims.if_contains("aud")) {
      if (aud->is_string()) aud_ok = aud->as_string() == kTokenAudience;
      if (aud->is_array())
        for (const auto& a : aud->as_array())
          aud_ok |= a.is_string() && a.as_string() == kTokenAudience;
    }
    if (!aud_ok)
      return entra_error(http::status::bad_request, "invalid_client",
                         "AADSTS700212: No matching federated identity record found for presented "
                         "assertion audience. The audience must be " +
                             std::string(kTokenAudience) + ".");
    std::string iss = json_string(jwt->claims, "iss");
    std::string sub = json_string(jwt->claims, "sub");
    if (iss != issuer || sub != opts.subject)
      return entra_error(http::status::bad_request, "invalid_client",
                         "AADSTS70021: No matching federated identity record found for presented "
                         "assertion. Assertion Issuer: '" +
                             iss + "'. Assertion Subject: '" + sub + "'.");
    std::int64_t now = unix_now();
    auto exp = json_int(jwt->claims, "exp");
    auto nbf = json_int(jwt->claims, "nbf");
    // Entra tolerates five minutes of clock skew before nbf, none after exp.
    if (!exp || *exp <= now || (nbf && *nbf > now + 300))
      return entra_error(
          http::status::bad_request, "invalid_client",
          "AADSTS700024: Client assertion is not within its valid time range. Current time: " +
              iso_time(SysClock::now()) + ", assertion valid from " +
              (nbf ? iso_time(SysClock::time_point(std::chrono::seconds(*nbf))) : "(none)") +
              ", expiry time of assertion " +
              (exp ? iso_time(SysClock::time_point(std::chrono::seconds(*exp))) : "(none)") +
              ". Review the documentation at "
              "https://learn.microsoft.com/entra/identity-platform/certificate-credentials .");
  } else {
    return entra_error(http::status::bad_request, "invalid_client",
                       "AADSTS7000218: The request body must contain the following parameter: "
                       "'client_assertion' or 'client_secret'.");
  }

  auto now = SysClock::now();
  if (access_tokens.size() > 4096)
    std::erase_if(access_tokens, [&](const auto& kv) { return kv.second <= now; });
  std::string token = "emu." + base64url_encode(random_bytes(32));
  access_tokens[token] = now + opts.access_token_lifetime;
  auto life = opts.access_token_lifetime.count();
  return json_answer(http::status::ok,
                     {{"token_type", "Bearer"},
                      {"expires_in", life},
                      {"ext_expires_in", life},
                      {"access_token", token}},
                     "entra");
}

// The fault injected into the n-th sign/poll request, if any (see Options).
std::optional<Answer> Server::Impl::service_fault(const std::string& kind, bool is_sign) {
  std::uint64_t n = ++service_requests;
  auto every = [n](int k) { return k > 0 && n % static_cast<std::uint64_t>(k) == 0; };
  std::uint64_t polls = is_sign ? 0 : ++poll_requests;
  auto every_poll = [polls](int k) {
    return polls > 0 && k > 0 && polls % static_cast<std::uint64_t>(k) == 0;
  };
  if (opts.capacity > 0 && service_in_flight >= opts.capacity) {
    Answer a = error_detail(http::status::too_many_requests, "TooManyRequests",
                            "The emulator serves at most " + std::to_string(opts.capacity) +
                                " signing requests at once.",
                            "", kind);
    a.res.set(http::field::retry_after, "1");
    a.fault = "capacity";
    return a;
  }
  if (every(opts.drop_every) || every_poll(opts.drop_polls_every)) {
    Answer a;
    a.kind = kind;
    a.drop = true;
    a.fault = "drop";
    return a;
  }
  if (every(opts.throttle_every)) {
    Answer a = error_detail(
        http::status::too_many_requests, "TooManyRequests",
        "The emulator throttles every " + std::to_string(opts.throttle_every) + "th request.", "",
        kind);
    a.res.set(http::field::retry_after, "1");
    a.fault = "throttle";
    return a;
  }
  if (every(opts.fail_every)) {
    Answer a = error_detail(
        http::status::service_unavailable, "ServiceUnavailable",
        "The emulator fails every " + std::to_string(opts.fail_every) + "th request.", "", kind);
    // As Azure services say when they will be back (RFC 9110 §10.2.3).
    a.res.set(http::field::retry_after, "1");
    a.fault = "fail";
    return a;
  }
  if (every(opts.malformed_every) || every_poll(opts.malformed_polls_every)) {
    Answer a = json_answer(is_sign ? http::status::accepted : http::status::ok, nullptr, kind);
    a.res.body() = R"({"operationId":")" + random_id() + R"(","status":"InPro)";
    a.fault = "malformed";
    return a;
  }
  return std::nullopt;
}

// protocol.md §3.
Answer Server::Impl::handle_signing(const StringRequest& req, const boost::urls::url_view& u,
                                    const std::vector<std::string>& segs) {
  // segs: codesigningaccounts/{account}/certificateprofiles/{profile}[:sign][/sign[/{x}]]
  bool colon_sign = segs.size() == 4 && segs[3].ends_with(":sign");
  std::string kind = "unknown";
  if (segs.size() >= 4 && segs[2] == "certificateprofiles") {
    if (colon_sign && req.method() == http::verb::post)
      kind = "sign";
    else if (segs.size() == 5 && segs[4] == "sign" && req.method() == http::verb::post)
      kind = "sign";
    else if (segs.size() == 6 && segs[4] == "sign" && req.method() == http::verb::get)
      kind =
          (segs[5] == "certchain" || segs[5] == "rootcert" || segs[5] == "eku") ? segs[5] : "poll";
  }
  if (kind == "unknown")
    return error_detail(http::status::not_found, "NotFound",
                        "the emulator serves no Trusted Signing operation at this path",
                        std::string(u.encoded_path()), kind);

  if (kind == "sign" || kind == "poll")
    if (auto fault = service_fault(kind, kind == "sign")) return std::move(*fault);

  std::string api;
  if (auto p = u.params().find("api-version"); p != u.params().end()) api = (*p).value;
  // Errors in the shape of the contract asked for: Azure Core for the GA version.
  auto error = [&](http::status status, const std::string& code, const std::string& message,
                   const std::string& target) {
    return service_error(api, status, code, message, target, kind);
  };

  // Authentication comes before resource lookup, as at the service.
  std::string token = bearer(req);
  auto it = access_tokens.find(token);
  if (token.empty() || it == access_tokens.end() || it->second <= SysClock::now()) {
    // RFC 6750 §3.1 as Entra-protected Azure services answer: no error code when no token was
    // sent, invalid_token (with why) for a token that is not or no longer good.
    const bool known = !token.empty() && it != access_tokens.end();
    std::string why = token.empty() ? ""
                      : known       ? "The access token expired"
                                    : "The access token is invalid";
    Answer a = error(http::status::unauthorized, "Unauthorized",
                     token.empty() ? "No bearer token." : why + ".", "");
    std::string challenge = "Bearer authorization_uri=\"" + ep.base_url + ep.tenant_id + "\"";
    if (!token.empty()) challenge += ", error=\"invalid_token\", error_description=\"" + why + "\"";
    a.res.set(http::field::www_authenticate, challenge);
    return a;
  }

  if (std::find(opts.api_versions.begin(), opts.api_versions.end(), api) == opts.api_versions.end())
    return refuse_version(req, api, kind);
  // Each version has its own sign route: GA only `{profile}:sign`, the 2022 preview only
  // `{profile}/sign`, the 2023 preview both.
  if (kind == "sign" && (colon_sign ? api == kApi2022 : api == kApi2024))
    return error(http::status::not_found, "NotFound",
                 "api-version " + api + " has no sign operation at this path",
                 std::string(u.encoded_path()));

  std::string profile = colon_sign ? segs[3].substr(0, segs[3].size() - 5) : segs[3];
  if (segs[1] != opts.account)
    return error(http::status::not_found, "NotFound",
                 "Code signing account '" + segs[1] + "' was not found.", segs[1]);
  if (profile != opts.profile)
    return error(
        http::status::not_found, "NotFound",
        "Certificate profile '" + profile + "' was not found in account '" + segs[1] + "'.",
        profile);

  std::string base_path = "codesigningaccounts/" + segs[1] + "/certificateprofiles/" + profile;
  if (kind == "sign") {
    if (opts.forbid) {
      Answer a;
      a.kind = kind;
      a.res.result(http::status::forbidden);
      a.fault = "forbid";
      return a;
    }
    return sign(req, api, base_path);
  }
  if (kind == "poll") return poll(segs[5], api);
  if (kind == "eku") {
    json::array ekus;
    if (api == kApi2024) {  // PagedExtendedKeyUsage: {"value": [{"eku": "..."}, ...]}
      for (const auto& e : pki.leaf_ekus) ekus.emplace_back(json::object{{"eku", e}});
      return json_answer(http::status::ok, {{"value", ekus}}, kind);
    }
    for (const auto& e : pki.leaf_ekus) ekus.emplace_back(e);
    return json_answer(http::status::ok, {{"value", json::array{json::object{{"ekus", ekus}}}}},
                       kind);
  }
  Answer a;
  a.kind = kind;
  a.res.result(http::status::ok);
  const Bytes& body = kind == "certchain" ? chain_der : root_der;
  a.res.set(http::field::content_type,
            kind == "certchain" ? "application/pkcs7-mime" : "application/x-x509-ca-cert");
  a.res.body() = to_string(body);
  return a;
}

// An api-version this emulator was told not to serve, refused the way the service was seen to:
// 400 with an Azure Core UnsupportedApiVersion error (in the words of Azure's API gateway), or a
// bare 401 or 404.
Answer Server::Impl::refuse_version(const StringRequest& req, const std::string& api,
                                    const std::string& kind) {
  Answer a;
  if (opts.unsupported_version_status == 400) {
    std::string served;
    for (const auto& v : opts.api_versions) served += (served.empty() ? "" : ", ") + v;
    a = core_error(http::status::bad_request, "UnsupportedApiVersion",
                   "The HTTP resource that matches the request URI '" + ep.base_url +
                       std::string(req.target()).substr(1) +
                       "' does not support the API version '" + api +
                       "'. Supported versions: " + served + ".",
                   "api-version", kind);
  } else {
    a.kind = kind;
    a.res.result(static_cast<http::status>(opts.unsupported_version_status));
    if (opts.unsupported_version_status == 401)
      a.res.set(http::field::www_authenticate,
                "Bearer authorization_uri=\"" + ep.base_url + ep.tenant_id + "\"");
  }
  a.fault = "unsupported-version";
  return a;
}

// The answer's shape follows the api-version: 2022-06-15-preview {operationId, status, signature,
// signingCertificate}; 2023-06-15-preview wraps the result; 2024-06-15 is an Azure Core
// long-running operation {id, status} whose states are NotStarted, Running, Succeeded, ...
Answer Server::Impl::sign(const StringRequest& req, const std::string& api,
                          const std::string& base_path) {
  boost::system::error_code ec;
  json::value v = json::parse(req.body(), ec);
  if (ec || !v.is_object())
    return service_error(api, http::status::bad_request, "BadRequest",
                         "The request body is not a JSON object.", "body", "sign");
  const json::object& body = v.as_object();
  std::string alg = json_string(body, "signatureAlgorithm");
  const EVP_MD* md = rs_md(alg);
  if (!md)
    return service_error(api, http::status::bad_request, "BadRequest",
                         "signatureAlgorithm '" + alg +
                             "' is not supported by this RSA profile; use RS256, RS384 or RS512.",
                         "signatureAlgorithm", "sign");
  auto digest = base64_decode(json_string(body, "digest"));
  std::size_t want = static_cast<std::size_t>(EVP_MD_get_size(md));
  if (!digest || digest->size() != want)
    return error_detail(
        http::status::bad_request, "BadRequest",
        "digest must be the base64 of a " + std::to_string(want) + "-byte " + alg + " digest.",
        "digest", "sign");

  Bytes signed_digest = *digest;
  if (opts.bad_signature) signed_digest.back() ^= 0x01;  // a valid signature, of another digest
  std::string id = random_id();
  operations[id] = {base64_encode(sign_digest(signed_digest, md)), opts.polls_before_success};

  json::value answer;
  if (api == kApi2024)
    answer = {{"id", id}, {"status", "NotStarted"}};
  else if (api == kApi2023)
    answer = {
        {"id", id}, {"status", "InProgress"}, {"result", nullptr}, {"errorResponse", nullptr}};
  else
    answer = {{"operationId", id},
              {"status", "InProgress"},
              {"signature", nullptr},
              {"signingCertificate", nullptr}};
  Answer a = json_answer(http::status::accepted, answer, "sign");
  a.res.set("Operation-Location", ep.base_url + base_path + "/sign/" + id + "?api-version=" + api);
  a.res.set(http::field::retry_after, std::to_string(opts.poll_retry_after));
  return a;
}

Answer Server::Impl::poll(const std::string& id, const std::string& api) {
  auto it = operations.find(id);
  if (it == operations.end())
    return service_error(api, http::status::not_found, "NotFound",
                         "Operation '" + id + "' was not found.", id, "poll");
  Operation& op = it->second;
  bool done = op.polls_left <= 0;
  if (!done) --op.polls_left;
  json::object inner{
      {"operationId", id},
      {"status", done ? "Succeeded" : "InProgress"},
      {"signature", done ? json::value(op.signature) : json::value(nullptr)},
      {"signingCertificate", done ? json::value(signing_certificate) : json::value(nullptr)}};
  json::value answer = inner;
  if (api == kApi2024) {
    json::object ga{{"id", id}, {"status", done ? "Succeeded" : "Running"}};
    if (done)
      ga["result"] = {{"signature", op.signature}, {"signingCertificate", signing_certificate}};
    answer = ga;
  } else if (api == kApi2023)
    answer = {{"id", id},
              {"status", done ? "Succeeded" : "InProgress"},
              {"result", done ? json::value(inner) : json::value(nullptr)},
              {"errorResponse", nullptr}};
  Answer a = json_answer(http::status::ok, answer, "poll");
  if (!done) a.res.set(http::field::retry_after, std::to_string(opts.poll_retry_after));
  return a;
}

Bytes Server::Impl::sign_digest(ByteView digest, const EVP_MD* md) {
  // Raw RSASSA-PKCS1-v1_5 over a given digest (RFC 8017 §8.2): EVP_PKEY_sign with the digest
  // type set wraps it in a DigestInfo, exactly what the service returns.
  using PkeyCtxPtr = OsslPtr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
  PkeyCtxPtr ctx(EVP_PKEY_CTX_new(pki.leaf_key.get(), nullptr));
  std::size_t len = 0;
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), md) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1)
    throw FileError("emulator: cannot sign: " + openssl_error_text());
  Bytes sig(len);
  if (EVP_PKEY_sign(ctx.get(), sig.data(), &len, digest.data(), digest.size()) != 1)
    throw FileError("emulator: cannot sign: " + openssl_error_text());
  sig.resize(len);
  return sig;
}

// protocol.md §4.
Answer Server::Impl::handle_tsa(const StringRequest& req) {
  Answer a;
  a.kind = "tsa";
  if (req.method() != http::verb::post) {
    a.res.result(http::status::method_not_allowed);
    a.res.set(http::field::allow, "POST");
    return a;
  }
  std::uint64_t n = ++tsa_requests;
  if (opts.tsa_fail_every > 0 && n % static_cast<std::uint64_t>(opts.tsa_fail_every) == 0) {
    a.res.result(http::status::service_unavailable);
    a.res.set(http::field::content_type, "text/plain");
    a.res.body() = "emulator: time-stamp authority unavailable (injected fault)\n";
    a.fault = "tsa-fail";
    return a;
  }
  if (req[http::field::content_type] != "application/timestamp-query") {
    a.res.result(http::status::unsupported_media_type);
    a.res.set(http::field::content_type, "text/plain");
    a.res.body() = "Content-Type must be application/timestamp-query\n";
    return a;
  }
  Bytes reply = timestamp_reply(as_bytes(req.body()), pki.tsa.get(), pki.tsa_key.get(),
                                ++tsa_serial + (static_cast<std::uint64_t>(unix_now()) << 20));
  a.res.result(http::status::ok);
  a.res.set(http::field::content_type, "application/timestamp-reply");
  a.res.body() = to_string(reply);
  return a;
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
