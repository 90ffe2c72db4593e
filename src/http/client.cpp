// HTTP/1.1 client (RFC 9112 message syntax, RFC 9110 semantics) over TCP or TLS (RFC 8446 /
// RFC 5246) with server identity checks per RFC 6125, on Boost.Beast/Asio and OpenSSL, written
// as C++20 coroutines after Beast's http_client_awaitable_ssl example.
//
// Shape of one send():
//   for each attempt (retry policy, bounded by the run's deadline):
//     take a connection from the per-(scheme, host, port) pool, or open one (bounded), or wait
//     for one to be released; write the request; read the answer with body and header caps.
//   A pooled keep-alive connection the server has silently closed is replaced once, at once,
//   without spending an attempt.
//
// Re-sending (RFC 9110 §9.2.2, RFC 9112 §9.3.1): an idempotent request is sent again after any
// transient failure. A non-idempotent one (a sign POST: each one is a paid signature) only when
// the server cannot have acted on it: nothing was delivered, or it answered 408/429/503. The
// classic trap is a keep-alive connection the server closed while it sat idle: before a pooled
// connection is used it is checked for a pending close (as urllib3 does), so that case is caught
// before anything is written. Once the request is written, a close without any answer looks
// exactly like a server that accepted the request and died before answering: a POST is then not
// re-sent, and fails.
//
// Proxies (RFC 9110 §9.3.6 CONNECT, RFC 9112 §3.2.2 absolute-form): an https URL that goes
// through a proxy gets a tunnel (CONNECT host:port) and TLS to the target inside it, with the
// target's SNI and certificate checks; an http URL is sent to the proxy in absolute-form. Which
// URL goes through which proxy is proxy.cpp. Pooled connections are keyed by target AND proxy,
// so a tunnel only ever carries requests for the target it was opened to.
//
// The URL is taken apart by url.cpp; the pool and its throttling window are pool.cpp.
//
// Threading: see client.hpp. All pool state is touched only from the io_context's single
// thread and never across a co_await while in an inconsistent state, so it needs no lock.
#include "http/client.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "common/text.hpp"
#include "http/pool.hpp"
#include "http/url.hpp"
#include "platform/env.hpp"
#include "platform/platform.hpp"

namespace tsign::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// Header names are compared lower-cased (RFC 9110 §5.1: they are case-insensitive).
// ---------------------------------------------------------------- failures

// One attempt failed. `retryable`: worth another attempt (reset, refused, timeout, 5xx-like);
// `timeout`: the attempt ran out of time (which becomes DeadlineError once the run's deadline
// has passed).
// `sent`: the whole request had been written, so the server may have acted on it.
struct AttemptError : std::runtime_error {
  AttemptError(bool r, bool t, const std::string& m, bool s = false)
      : std::runtime_error(m), retryable(r), timeout(t), sent(s) {}
  bool retryable;
  bool timeout;
  bool sent;
};

bool may_resend(const Request& req) {
  if (req.idempotent) return *req.idempotent;
  for (const char* m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
    if (req.method == m) return true;
  return false;
}

// Answers that say "slow down" rather than "failed": they shrink the host's window.
bool throttling_status(unsigned status) {
  return status == 429 || status == 503;
}

// A pooled connection turned out to be closed by the server before it answered anything.
// `written`: the request had been written to it in full.
struct StaleConnection {
  bool written;
};

std::string seconds_text(Clock::duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms < 0) ms = 0;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string size_text(std::size_t n) {
  constexpr std::size_t mib = 1024 * 1024, kib = 1024;
  if (n >= mib && n % mib == 0) return std::to_string(n / mib) + " MiB";
  if (n >= kib && n % kib == 0) return std::to_string(n / kib) + " KiB";
  return std::to_string(n) + " bytes";
}

// Lower-cases the first letter of a system message so it reads inside a sentence.
std::string msg(const error_code& ec) {
  std::string m = ec.message();
  if (!m.empty() && std::isupper(static_cast<unsigned char>(m[0])) &&
      (m.size() < 2 || !std::isupper(static_cast<unsigned char>(m[1]))))
    m[0] = ascii_lower(m[0]);
  return m;
}

bool is_disconnect(const error_code& ec) {
  return ec == asio::error::eof || ec == bhttp::error::end_of_stream ||
         ec == bhttp::error::partial_message || ec == asio::error::connection_reset ||
         ec == asio::error::connection_aborted || ec == asio::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

// ---------------------------------------------------------------- connections

// Whether the server closed an idle pooled connection (or sent something unasked, such as a TLS
// close_notify): an idle HTTP/1.1 connection has nothing to read. A non-blocking peek, which
// leaves the asynchronous operations of the socket as they were.
bool closed_while_idle(Connection& c) {
  auto& sock = c.lowest().socket();
  error_code ec, ignored;
  sock.non_blocking(true, ec);
  if (ec) return true;
  char byte;
  sock.receive(asio::buffer(&byte, 1), tcp::socket::message_peek, ec);
  sock.non_blocking(false, ignored);
  return ec != asio::error::would_block;
}

// host_name_verification answers "no" without saying why; record the reason so the error
// message can name it ("hostname mismatch") instead of a bare "certificate verify failed".
struct VerifyHost {
  ssl::host_name_verification check;
  bool ip;
  bool operator()(bool preverified, ssl::verify_context& ctx) const {
    bool ok = check(preverified, ctx);
    if (preverified && !ok)
      X509_STORE_CTX_set_error(ctx.native_handle(),
                               ip ? X509_V_ERR_IP_ADDRESS_MISMATCH : X509_V_ERR_HOSTNAME_MISMATCH);
    return ok;
  }
};

// Sends close_notify to a server that asked to close, off the request's path.
asio::awaitable<void> shutdown_tls(std::unique_ptr<Connection> c) {
  c->lowest().expires_after(std::chrono::seconds(5));
  error_code ec;
  co_await c->tls->async_shutdown(asio::redirect_error(asio::use_awaitable, ec));
  // ssl::error::stream_truncated here is harmless: the server closed TCP without its own
  // close_notify. Every answer we used was framed by Content-Length or chunked encoding, so no
  // truncation of data we relied on can hide behind it.
}

}  // namespace

// "host:port" of the target as a CONNECT request names it (RFC 9110 §9.3.6), IPv6 bracketed.
std::string authority_of(const Url& t) {
  return (t.host.find(':') != std::string::npos ? "[" + t.host + "]" : t.host) + ":" + t.port;
}

// A proxy's refusal, said as one: what was refused, the status, and what to do about it.
std::string proxy_refusal(const Proxy& via, const std::string& what, unsigned status,
                          std::string_view reason) {
  std::string m =
      "the proxy " + via.display + " refused the " + what + " (HTTP " + std::to_string(status);
  if (reason.empty()) reason = bhttp::obsolete_reason(static_cast<bhttp::status>(status));
  if (!reason.empty()) m += " " + std::string(reason);
  // A 401 to a CONNECT can only be the proxy's own: tinyproxy before 1.11.2 answers a wrong
  // password with 401 (tinyproxy issue 532), every other proxy with 407.
  if (status == 407 || (status == 401 && what.rfind("tunnel", 0) == 0))
    m += via.has_credentials ? ": check the user and password in " + via.variable
                             : ": it asks for credentials; write them in " + via.variable +
                                   " as http://user:password@host:port";
  else if (status == 403)
    m += ": it does not allow this destination; ask its administrators, or list the host in "
         "NO_PROXY if it is reachable directly";
  else if (status >= 500)
    m += ": it could not reach the destination, or failed";
  return m + ")";
}

// ---------------------------------------------------------------- the client

struct Client::Impl {
  Impl(asio::any_io_executor e, ClientOptions o)
      : ex(std::move(e)), opts(std::move(o)), tls(ssl::context::tls_client) {
    SSL_CTX_set_min_proto_version(tls.native_handle(), TLS1_2_VERSION);
    tls.set_verify_mode(ssl::verify_peer);
    // The platform's roots (SSL_CERT_FILE or the system's) are loaded at the first TLS
    // connection: a run that signs with a local key and no time-stamp never needs them, and
    // parsing a bundle of ~150 certificates takes 20 ms, the time of signing ten small files.
    // A file that cannot be read is then an InputError from the first request, before any
    // signature is asked for. A CA file given in the options is read now.
    if (!opts.ca_file.empty()) {
      if (X509_STORE_load_file(SSL_CTX_get_cert_store(tls.native_handle()), opts.ca_file.c_str()) !=
          1)
        throw InputError(opts.ca_file + ": cannot load CA certificates: " + openssl_error_text());
      roots_loaded = true;
    }
    if (opts.max_connections_per_host == 0) opts.max_connections_per_host = 1;
    proxies = proxy_settings(opts.proxy ? *opts.proxy : read_proxy_env(env::process()));
  }

  asio::any_io_executor ex;
  ClientOptions opts;
  ssl::context tls;
  bool roots_loaded = false;  // io thread only
  ProxySettings proxies;
  std::map<std::string, HostPool> pools;  // node-based: a HostPool& stays valid

  bool deadline_passed() const { return opts.deadline && Clock::now() >= *opts.deadline; }

  Clock::time_point attempt_limit(std::chrono::milliseconds timeout) const {
    auto limit = Clock::now() + timeout;
    if (opts.deadline && *opts.deadline < limit) limit = *opts.deadline;
    return limit;
  }

  [[noreturn]] static void deadline_error(const Url& t) {
    throw DeadlineError("the run's deadline passed while waiting for " + t.host_header);
  }

  static asio::awaitable<Response> run(std::shared_ptr<Impl> self, Request req);
  asio::awaitable<Response> attempt(HostPool& pool, const Url& t, const Proxy* via,
                                    const Request& req, Clock::time_point& started);

  HostPool& pool(const Url& t, const Proxy* via) {
    std::string key = t.pool_key;
    if (via) key += " via " + via->host + ":" + via->port;
    return pools.try_emplace(key, opts.max_connections_per_host).first->second;
  }
  asio::awaitable<void> acquire(HostPool& pool, Lease& lease, Clock::time_point limit,
                                const Url& t);
  asio::awaitable<tcp::resolver::results_type> resolve(const std::string& host,
                                                       const std::string& port,
                                                       Clock::time_point limit);
  asio::awaitable<std::unique_ptr<Connection>> connect(const Url& t, const Proxy* via,
                                                       Clock::time_point limit);
  asio::awaitable<void> tunnel(beast::tcp_stream& s, const Url& t, const Proxy& via,
                               Clock::time_point limit);
  template <class Stream>
  asio::awaitable<Response> exchange(Stream& s, Connection& c, const Url& t, const Proxy* via,
                                     const Request& req, const Authorization& auth,
                                     Clock::time_point limit, bool reused, bool& keep_alive);
};

asio::awaitable<Response> Client::Impl::run(std::shared_ptr<Impl> self, Request req) {
  // `self` keeps the pools alive for as long as this coroutine frame exists, even if the
  // Client is destroyed before the io_context.
  const Url t = parse_url(req.url);
  const Proxy* via = choose_proxy(self->proxies, t);
  HostPool& pool = self->pool(t, via);
  const auto& policy = self->opts.retry;
  // Two budgets: failures (5xx, resets, timeouts) and throttling answers (429). A throttled
  // request is not failing, it is being paced: it gets a larger budget, the deadline bounds both.
  const int max_failures = req.retry ? std::max(1, policy.max_attempts) : 1;
  const int max_throttled = req.retry ? std::max(1, policy.max_throttled_attempts) : 1;
  const bool resend = may_resend(req);
  int failures = 0, throttles = 0;
  for (int n = 1;; ++n) {
    if (self->deadline_passed()) deadline_error(t);
    std::optional<Response> answer;
    std::string reason;
    auto started = Clock::now();
    try {
      answer = co_await self->attempt(pool, t, via, req, started);
    } catch (const AttemptError& e) {
      if (e.timeout && self->deadline_passed()) deadline_error(t);
      if (!e.retryable) throw TransportError(e.what());
      if (e.sent && !resend)
        throw TransportError(std::string(e.what()) + " after the " + req.method +
                             " request was sent; it is not sent again, as the server may have "
                             "acted on it");
      if (++failures >= max_failures) throw TransportError(e.what());
      reason = e.what();
    }
    if (answer) {
      const unsigned status = answer->status;
      // A 2xx whose body cannot be used (cut short, unparseable) is a failed attempt like a
      // dropped connection: asking again is harmless for an idempotent request.
      const bool unusable =
          resend && req.usable && status >= 200 && status < 300 && !req.usable(*answer);
      if (self->opts.adaptive_concurrency) {
        if (throttling_status(status))
          pool.on_throttled(started, Clock::now());
        else if (status < 400 && !unusable)
          pool.on_success();
      }
      if (unusable) {
        if (++failures >= max_failures) co_return std::move(*answer);
        reason = t.host_header + " sent an unusable answer (HTTP " + std::to_string(status) +
                 " with a truncated or unparseable body)";
      } else {
        if (!RetryPolicy::retryable_status(status) ||
            (!resend && !RetryPolicy::not_processed_status(status)))
          co_return std::move(*answer);
        // 429, and a 503 that says when to come back, pace the request rather than fail it.
        const bool paced = status == 429 || (status == 503 && answer->header("retry-after"));
        const bool out_of_budget =
            paced ? ++throttles >= max_throttled : ++failures >= max_failures;
        if (out_of_budget) co_return std::move(*answer);
        reason = t.host_header + " answered HTTP " + std::to_string(status);
      }
    }
    auto wait = policy.delay(n, answer ? &*answer : nullptr);
    if (self->opts.deadline && Clock::now() + wait >= *self->opts.deadline)
      throw DeadlineError("the run's deadline passed while waiting for " + t.host_header + " (" +
                          reason + "; the next attempt would start after the deadline)");
    if (self->opts.on_retry)
      self->opts.on_retry("retrying " + req.method + " " + t.display + " in " + seconds_text(wait) +
                          " (attempt " + std::to_string(n + 1) + "): " + reason);
    asio::steady_timer timer(self->ex);
    timer.expires_after(wait);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<Response> Client::Impl::attempt(HostPool& pool, const Url& t, const Proxy* via,
                                                const Request& req, Clock::time_point& started) {
  Lease lease;
  Authorization auth;
  for (int asked = 1;; ++asked) {
    // Asked before a connection is held: a token refresh may need one of the same pool.
    if (req.authorize) auth = co_await req.authorize();
    // Waiting for a free connection is local queueing, not the server being slow: only the
    // run's deadline bounds it. The attempt's own timeout starts once a connection is ours.
    co_await acquire(pool, lease, opts.deadline.value_or(Clock::time_point::max()), t);
    // The wait outlasted the headers (a token expired while throttled requests queued): ask
    // again rather than send a token the server will refuse. Twice at most, whatever the clock.
    if (asked >= 3 || Clock::now() < auth.valid_until) break;
    lease.give_back();
  }
  started = Clock::now();
  const auto limit = attempt_limit(req.timeout);
  const bool resend = may_resend(req);
  for (bool replaced_stale = false;;) {
    bool reused = lease.conn != nullptr;
    if (reused && closed_while_idle(*lease.conn)) {
      lease.conn.reset();
      reused = false;
    }
    if (!reused) lease.conn = co_await connect(t, via, limit);
    bool stale = false;
    bool keep_alive = false;
    std::optional<Response> answer;
    try {
      if (lease.conn->tls)
        answer = co_await exchange(*lease.conn->tls, *lease.conn, t, nullptr, req, auth, limit,
                                   reused, keep_alive);
      else
        answer = co_await exchange(*lease.conn->plain, *lease.conn, t, via, req, auth, limit,
                                   reused, keep_alive);
    } catch (const StaleConnection& s) {
      if (s.written && !resend)
        throw AttemptError(true, false, t.host_header + " closed the connection without answering",
                           true);
      stale = true;
    }
    if (stale) {
      lease.conn.reset();
      if (replaced_stale)
        throw AttemptError(true, false, t.host_header + " closed the connection without answering");
      replaced_stale = true;
      continue;
    }
    // Through a proxy, a plain http request is answered 407 by the proxy itself: its refusal,
    // not the server's answer, and not worth repeating with the same credentials.
    if (via && !t.tls && answer->status == 407)
      throw AttemptError(false, false,
                         proxy_refusal(*via, "request to " + authority_of(t), answer->status, ""));
    if (keep_alive) {
      lease.reusable = true;
    } else if (lease.conn->tls) {
      asio::co_spawn(ex, shutdown_tls(std::move(lease.conn)), asio::detached);
    }
    co_return std::move(*answer);
  }
}

asio::awaitable<void> Client::Impl::acquire(HostPool& pool, Lease& lease, Clock::time_point limit,
                                            const Url& t) {
  if (pool.try_take(lease)) co_return;
  Waiter w(ex, pool);
  w.timer.expires_at(limit);
  pool.enqueue(w);
  error_code ec;
  co_await w.timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  if (w.claim(lease)) co_return;
  throw AttemptError(true, true,
                     "no connection to " + t.host_header + " became free in time (all " +
                         std::to_string(pool.limit()) + " busy)");
}

asio::awaitable<tcp::resolver::results_type> Client::Impl::resolve(const std::string& host,
                                                                   const std::string& port,
                                                                   Clock::time_point limit) {
  // getaddrinfo cannot be interrupted, so the lookup runs detached with its own state and we
  // wait for it only until the attempt's limit; a late answer is then simply dropped.
  struct State {
    explicit State(const asio::any_io_executor& e) : resolver(e), timer(e) {}
    tcp::resolver resolver;
    asio::steady_timer timer;
    error_code ec;
    tcp::resolver::results_type results;
    bool done = false;
  };
  auto st = std::make_shared<State>(ex);
  st->timer.expires_at(limit);
  st->resolver.async_resolve(host, port, [st](error_code ec, tcp::resolver::results_type r) {
    st->ec = ec;
    st->results = std::move(r);
    st->done = true;
    st->timer.cancel();
  });
  error_code wait_ec;
  co_await st->timer.async_wait(asio::redirect_error(asio::use_awaitable, wait_ec));
  if (!st->done) {
    st->resolver.cancel();
    throw AttemptError(true, true, "could not resolve " + host + " in time");
  }
  if (st->ec)
    throw AttemptError(st->ec == asio::error::host_not_found_try_again, false,
                       "could not resolve " + host + ": " + msg(st->ec));
  co_return std::move(st->results);
}

asio::awaitable<std::unique_ptr<Connection>> Client::Impl::connect(const Url& t, const Proxy* via,
                                                                   Clock::time_point limit) {
  // Through a proxy, the TCP connection goes to the proxy; failing to make it is said as such
  // (and retried like any refused connection).
  const std::string& to_host = via ? via->host : t.host;
  const std::string& to_port = via ? via->port : t.port;
  auto unreachable = [&](const AttemptError& e) {
    if (!via) return e;
    return AttemptError(
        e.retryable, e.timeout,
        "cannot reach the proxy " + via->display + " named by " + via->variable + ": " + e.what());
  };
  tcp::resolver::results_type endpoints;
  try {
    endpoints = co_await resolve(to_host, to_port, limit);
  } catch (const AttemptError& e) {
    throw unreachable(e);
  }
  auto c = std::make_unique<Connection>();
  if (t.tls) {
    if (!roots_loaded) {
      platform::load_trust_roots(tls.native_handle());
      roots_loaded = true;
    }
    c->tls = std::make_unique<TlsStream>(ex, tls);
  } else {
    c->plain = std::make_unique<beast::tcp_stream>(ex);
  }
  auto& low = c->lowest();
  error_code ec;
  // A fresh expiry before every operation: Beast's timer covers one operation at a time.
  low.expires_at(limit);
  co_await low.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  const std::string where = to_host + ":" + to_port;
  if (ec == beast::error::timeout)
    throw unreachable(AttemptError(true, true, "could not connect to " + where + " in time"));
  if (ec)
    throw unreachable(AttemptError(true, false, "could not connect to " + where + ": " + msg(ec)));
  low.socket().set_option(tcp::no_delay(true), ec);  // small requests: do not wait for ACKs
  if (!t.tls) co_return c;
  if (via) co_await tunnel(low, t, *via, limit);

  SSL* s = c->tls->native_handle();
  // SNI carries host names only (RFC 6066 §3 forbids IP literals).
  if (!t.host_is_ip && !SSL_set_tlsext_host_name(s, t.host.c_str()))
    throw AttemptError(false, false,
                       "TLS setup for " + t.host + " failed: " + openssl_error_text());
  c->tls->set_verify_mode(ssl::verify_peer);
  c->tls->set_verify_callback(VerifyHost{ssl::host_name_verification(t.host), t.host_is_ip});
  low.expires_at(limit);
  co_await c->tls->async_handshake(ssl::stream_base::client,
                                   asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    const std::string head = "TLS handshake with " + t.host + " failed: ";
    if (ec == beast::error::timeout) throw AttemptError(true, true, head + "no answer in time");
    long vr = SSL_get_verify_result(s);
    if (vr != X509_V_OK)
      throw AttemptError(
          false, false,
          head + "certificate verify failed (" + X509_verify_cert_error_string(vr) + ")");
    // Resets and early closes are transient; a TLS protocol error will not fix itself.
    throw AttemptError(is_disconnect(ec), false, head + msg(ec));
  }
  co_return c;
}

asio::awaitable<void> Client::Impl::tunnel(beast::tcp_stream& s, const Url& t, const Proxy& via,
                                           Clock::time_point limit) {
  const std::string authority = authority_of(t);
  bhttp::request<bhttp::empty_body> m{bhttp::verb::connect, authority, 11};
  m.set(bhttp::field::host, authority);
  m.set(bhttp::field::user_agent, opts.user_agent);
  if (via.has_credentials) m.set(bhttp::field::proxy_authorization, via.authorization.reveal());
  const std::string what = "the proxy " + via.display + " (" + via.variable + ")";
  error_code ec;
  s.expires_at(limit);
  co_await bhttp::async_write(s, m, asio::redirect_error(asio::use_awaitable, ec));
  if (ec)
    throw AttemptError(
        true, ec == beast::error::timeout,
        "sending the tunnel request for " + authority + " to " + what + " failed: " + msg(ec));
  // Only the head: a 2xx answer to CONNECT has no body (RFC 9110 §9.3.6), and the connection of
  // any other answer is dropped with whatever body it had.
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::empty_body> p;
  p.header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(opts.max_header_bytes, UINT32_MAX)));
  s.expires_at(limit);
  co_await bhttp::async_read_header(s, buffer, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == beast::error::timeout)
    throw AttemptError(true, true,
                       what + " did not answer the tunnel request for " + authority + " in time");
  if (ec)
    throw AttemptError(is_disconnect(ec), false,
                       what + " failed the tunnel request for " + authority + ": " + msg(ec));
  const unsigned status = p.get().result_int();
  if (status / 100 != 2) {
    // 5xx: the proxy could not reach the target (tinyproxy says 500, squid 503): as a failed
    // connection, worth another attempt. A refusal (403, 407) will not change by itself.
    const bool retry = status >= 500;
    throw AttemptError(retry, false,
                       proxy_refusal(via, "tunnel to " + authority, status, p.get().reason()));
  }
  // TLS starts with the client's hello: nothing may come before it.
  if (buffer.size() != 0)
    throw AttemptError(false, false,
                       what + " sent data into the tunnel to " + authority + " before TLS");
}

template <class Stream>
asio::awaitable<Response> Client::Impl::exchange(Stream& s, Connection& c, const Url& t,
                                                 const Proxy* via, const Request& req,
                                                 const Authorization& auth, Clock::time_point limit,
                                                 bool reused, bool& keep_alive) {
  bhttp::request<bhttp::string_body> m;
  m.version(11);
  auto verb = bhttp::string_to_verb(req.method);
  if (verb == bhttp::verb::unknown)
    m.method_string(req.method);
  else
    m.method(verb);
  // Through a proxy (plain http only; https goes through a tunnel): absolute-form.
  m.target(via ? "http://" + t.host_header + t.target : t.target);
  m.set(bhttp::field::host, t.host_header);
  if (via && via->has_credentials)
    m.set(bhttp::field::proxy_authorization, via->authorization.reveal());
  m.set(bhttp::field::user_agent, opts.user_agent);
  for (const auto* headers : {&req.headers, &auth.headers}) {
    for (const auto& [name, value] : *headers) {
      auto f = bhttp::string_to_field(name);
      if (f == bhttp::field::host || f == bhttp::field::content_length) continue;  // ours
      if (f == bhttp::field::user_agent)
        m.set(f, value);
      else
        m.insert(name, value);
    }
  }
  m.body() = req.body;
  m.keep_alive(true);
  m.prepare_payload();

  error_code ec;
  c.lowest().expires_at(limit);
  co_await bhttp::async_write(s, m, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    if (ec == beast::error::timeout)
      throw AttemptError(true, true, "sending the request to " + t.host_header + " timed out");
    if (reused) throw StaleConnection{false};
    throw AttemptError(true, false,
                       "sending the request to " + t.host_header + " failed: " + msg(ec));
  }

  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(opts.max_response_bytes);
  p.header_limit(
      static_cast<std::uint32_t>(std::min<std::size_t>(opts.max_header_bytes, UINT32_MAX)));
  if (m.method() == bhttp::verb::head) p.skip(true);
  c.lowest().expires_at(limit);
  co_await bhttp::async_read(s, c.buffer, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == ssl::error::stream_truncated && p.is_header_done() && p.need_eof()) {
    // An answer delimited by the end of the connection, closed without close_notify: the
    // framing is the close itself, which is all HTTP/1.1 promises for such a body.
    error_code eof_ec;
    p.put_eof(eof_ec);
    ec = eof_ec;
  }
  if (ec) {
    // From here on the request was delivered: `sent`.
    const std::string& h = t.host_header;
    if (ec == beast::error::timeout)
      throw AttemptError(true, true, h + " did not answer in time", true);
    if (ec == bhttp::error::body_limit)
      throw AttemptError(false, false,
                         h + " answered more than " + size_text(opts.max_response_bytes));
    if (ec == bhttp::error::header_limit)
      throw AttemptError(
          false, false,
          h + " answered with headers larger than " + size_text(opts.max_header_bytes));
    if (is_disconnect(ec)) {
      if (!p.got_some()) {
        if (reused) throw StaleConnection{true};
        throw AttemptError(true, false, h + " closed the connection without answering", true);
      }
      throw AttemptError(true, false, h + " closed the connection mid-response", true);
    }
    if (ec.category() == bhttp::make_error_code(bhttp::error::bad_version).category())
      throw AttemptError(false, false, h + " sent a malformed HTTP answer: " + msg(ec), true);
    throw AttemptError(true, false, "reading the answer of " + h + " failed: " + msg(ec), true);
  }

  auto& res = p.get();
  keep_alive = res.keep_alive();
  Response out;
  out.status = res.result_int();
  for (const auto& f : res) {
    auto name = ascii_lower(std::string(f.name_string()));
    auto [it, inserted] = out.headers.emplace(name, std::string(f.value()));
    if (!inserted) it->second += ", " + std::string(f.value());  // RFC 9110 §5.3
  }
  out.body = std::move(res.body());
  co_return out;
}

Client::Client(boost::asio::any_io_executor ex, ClientOptions opts)
    : impl_(std::make_shared<Impl>(std::move(ex), std::move(opts))) {}

Client::~Client() = default;

boost::asio::awaitable<Response> Client::send(Request req) {
  return Impl::run(impl_, std::move(req));
}

const ClientOptions& Client::options() const {
  return impl_->opts;
}

ClientStats Client::stats() const {
  ClientStats st;
  for (const auto& [key, pool] : impl_->pools) {
    const ThrottleWindow& w = pool.window;
    st.throttled += w.throttled();
    if (w.lowest() != 0 && (st.lowest_limit == 0 || w.lowest() < st.lowest_limit)) {
      st.lowest_limit = w.lowest();
      st.limit_of_host = w.max();
    }
  }
  return st;
}

}  // namespace tsign::http
