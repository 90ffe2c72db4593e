// HTTPS client on Boost.Beast + Asio + OpenSSL with C++20 coroutines: a keep-alive connection
// pool per host, a deadline per request bounded by the run's deadline, and one retry policy
// (429 / 5xx / reset / timeout, jittered exponential back-off honouring Retry-After).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.hpp"
#include "http/proxy.hpp"
#include "http/url.hpp"  // authority_as_written, for the users of this header

namespace tsign::http {

using Clock = std::chrono::steady_clock;

struct Response;

// Headers computed for one attempt: the Authorization of the token valid at that moment.
struct Authorization {
  std::vector<std::pair<std::string, std::string>> headers;
  // When the headers go stale (the token expires). An attempt that waited for a connection past
  // this point asks for new ones before it sends anything.
  Clock::time_point valid_until = Clock::time_point::max();
};

struct Request {
  std::string method = "GET";
  std::string url;  // absolute http:// or https:// URL
  // Header names as sent; Host, User-Agent, Content-Length are added by the client.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Per attempt. The run's deadline bounds it further.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  bool retry = true;  // false: one attempt, whatever the answer
  // Called before every attempt (the first, each retry, and again when the wait for a free
  // connection outlasted valid_until), never while a connection is held: it may itself send
  // requests through this client, to the same host. Its headers are added to `headers`. It may
  // throw (AuthError); send() then throws that. Empty: no per-attempt headers.
  std::function<boost::asio::awaitable<Authorization>()> authorize;
  // Whether the request may be sent again once the server may have acted on it (RFC 9110
  // §9.2.2). Unset: by method (GET, HEAD, OPTIONS, TRACE, PUT, DELETE are). A request that is
  // not is re-sent only when the server cannot have accepted it: it could not be delivered
  // (refused, unreachable, TLS failure, failed while writing) or the answer was 408, 429 or 503.
  // Once it is written, a timeout or a connection closed before or during the answer is a
  // TransportError at once.
  std::optional<bool> idempotent;
  // For an idempotent request: whether a 2xx answer is usable. An unusable one (a truncated or
  // unparseable body) is retried like a dropped connection, within max_attempts; the last one
  // is returned as it is, for the caller to report. Empty: every answer is usable.
  std::function<bool(const Response&)> usable;
};

struct Response {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct RetryPolicy {
  int max_attempts = 6;             // attempts while failing (5xx, reset, timeout)
  int max_throttled_attempts = 20;  // attempts while answered 429 or 503 + Retry-After (paced)
  std::chrono::milliseconds base_delay{500};
  std::chrono::milliseconds max_delay{std::chrono::seconds(30)};
  // A Retry-After is honoured up to this bound (a hostile or confused server cannot park a run
  // for a day); the run's deadline bounds it further.
  std::chrono::milliseconds max_retry_after{std::chrono::minutes(5)};
  // Delay before attempt `attempt` (1 = first retry); honours a Retry-After of the answer.
  std::chrono::milliseconds delay(int attempt, const Response* answer) const;
  static bool retryable_status(unsigned status);  // 408, 429, 500, 502, 503, 504
  // Answers that say the request was not acted on, so even a non-idempotent one may be sent
  // again: 408 (not received in time), 429 (throttled), 503 (not taken).
  static bool not_processed_status(unsigned status);
};

struct ClientOptions {
  std::string user_agent = std::string("tsign/") + TSIGN_VERSION;
  std::size_t max_response_bytes = 16 * 1024 * 1024;
  std::size_t max_connections_per_host = 64;
  std::size_t max_header_bytes = 64 * 1024;
  // A PEM bundle trusted INSTEAD of the platform's roots (tests, the emulator). Empty: the
  // platform's roots (platform::load_trust_roots, which honours SSL_CERT_FILE).
  std::string ca_file;
  RetryPolicy retry;
  // The run's deadline: no attempt outlives it; once passed, send() throws DeadlineError.
  std::optional<Clock::time_point> deadline;
  // Adaptive concurrency per host (AIMD): 429 and 503 answers halve the attempts allowed in
  // flight to that host, successes grow it back towards max_connections_per_host.
  bool adaptive_concurrency = true;
  // Proxies (proxy.hpp, docs/usage.md, "Proxies"). Unset: read from the environment (HTTPS_PROXY,
  // HTTP_PROXY, NO_PROXY, lower case winning, TSIGN_PROXY_LOOPBACK) when the client is made; a
  // malformed proxy URL is an InputError then, before any request.
  std::optional<ProxyEnv> proxy;
  // Called before each retry with a one-line reason (for ::debug:: logs). May be empty.
  std::function<void(const std::string&)> on_retry;
};

// What adaptive concurrency did, for the run's report.
struct ClientStats {
  std::size_t throttled = 0;      // 429/503 answers, all hosts
  std::size_t lowest_limit = 0;   // the smallest window any host was cut to (0: never cut)
  std::size_t limit_of_host = 0;  // that host's configured bound
};

// A transport failure after retries (unreachable, TLS, reset, timeout, oversized answer).
// It is a FileError: the file being worked on fails, the others go on.
struct TransportError : FileError {
  explicit TransportError(const std::string& m) : FileError(m) {}
};

// Threading: a Client belongs to one io_context that is run by ONE thread. Any number of
// coroutines on that thread may call send() at once (that is how hundreds of signing requests are
// kept in flight); the connection pool is then only ever touched from that thread, between
// suspension points, so it needs no lock. Running that io_context on several threads at once is
// not supported.
class Client {
 public:
  Client(boost::asio::any_io_executor ex, ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends the request, retrying per policy, and returns the final answer (whatever its status:
  // a non-retryable or last 4xx/5xx is returned, not thrown). Throws TransportError,
  // DeadlineError. Certificates are always verified (platform::load_trust_roots), with SNI and
  // host-name checks -- of the target, also through a proxy's CONNECT tunnel. Proxy failures
  // are TransportErrors naming the proxy and its variable: a proxy that cannot be reached, or
  // answers a tunnel with a 5xx, is retried like a refused connection; a 407 (credentials)
  // or any other refusal is not.
  boost::asio::awaitable<Response> send(Request req);

  const ClientOptions& options() const;
  ClientStats stats() const;  // from the io_context's thread

 private:
  struct Impl;
  // Shared with every send() in flight, so a coroutine frame outliving the Client (destroyed
  // with its io_context) still finds its pool.
  std::shared_ptr<Impl> impl_;
};

}  // namespace tsign::http
