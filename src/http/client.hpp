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

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "common/error.hpp"

namespace tsign::http {

using Clock = std::chrono::steady_clock;

struct Request {
  std::string method = "GET";
  std::string url;  // absolute http:// or https:// URL
  // Header names as sent; Host, User-Agent, Content-Length are added by the client.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Per attempt. The run's deadline bounds it further.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  bool retry = true;  // false: one attempt, whatever the answer
};

struct Response {
  unsigned status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::optional<std::string> header(const std::string& lower_name) const;
};

struct RetryPolicy {
  int max_attempts = 6;
  std::chrono::milliseconds base_delay{500};
  std::chrono::milliseconds max_delay{std::chrono::seconds(30)};
  // Delay before attempt `attempt` (1 = first retry); honours a Retry-After of the answer.
  std::chrono::milliseconds delay(int attempt, const Response* answer) const;
  static bool retryable_status(unsigned status);  // 408, 429, 500, 502, 503, 504
};

struct ClientOptions {
  std::string user_agent = std::string("tsign/") + TSIGN_VERSION;
  std::size_t max_response_bytes = 16 * 1024 * 1024;
  std::size_t max_connections_per_host = 64;
  RetryPolicy retry;
  // The run's deadline: no attempt outlives it; once passed, send() throws DeadlineError.
  std::optional<Clock::time_point> deadline;
  // Called before each retry with a one-line reason (for ::debug:: logs). May be empty.
  std::function<void(const std::string&)> on_retry;
};

// A transport failure after retries (unreachable, TLS, reset, timeout, oversized answer).
// It is a FileError: the file being worked on fails, the others go on.
struct TransportError : FileError {
  explicit TransportError(const std::string& m) : FileError(m) {}
};

class Client {
 public:
  Client(boost::asio::any_io_executor ex, ClientOptions opts);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends the request, retrying per policy, and returns the final answer (whatever its status:
  // a non-retryable or last 4xx/5xx is returned, not thrown). Throws TransportError,
  // DeadlineError. Certificates are always verified (platform::load_trust_roots), with SNI and
  // host-name checks.
  boost::asio::awaitable<Response> send(Request req);

  const ClientOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsign::http
