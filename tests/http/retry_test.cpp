// RetryPolicy (which statuses, how long) and Retry-After parsing: pure functions.
#include <catch2/catch.hpp>

#include "http/client.hpp"
#include "http/retry.hpp"

using namespace std::chrono_literals;
using tsign::http::parse_retry_after;
using tsign::http::Response;
using tsign::http::RetryPolicy;

TEST_CASE("retryable statuses are exactly 408, 429, 500, 502, 503, 504", "[http][retry]") {
  for (unsigned s : {408u, 429u, 500u, 502u, 503u, 504u}) CHECK(RetryPolicy::retryable_status(s));
  for (unsigned s : {200u, 201u, 202u, 301u, 400u, 401u, 403u, 404u, 409u, 501u, 505u})
    CHECK_FALSE(RetryPolicy::retryable_status(s));
}

TEST_CASE("back-off is full jitter under an exponential cap", "[http][retry]") {
  RetryPolicy p;
  p.base_delay = 100ms;
  p.max_delay = 1000ms;
  for (int attempt = 1; attempt <= 8; ++attempt) {
    const auto cap = std::min<std::chrono::milliseconds>(1000ms, 100ms * (1 << (attempt - 1)));
    std::chrono::milliseconds lo = 1h, hi = 0ms;
    for (int i = 0; i < 200; ++i) {
      auto d = p.delay(attempt, nullptr);
      REQUIRE(d >= 0ms);
      REQUIRE(d <= cap);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Jittered, not a constant: 200 draws spread over most of [0, cap].
    CHECK(hi - lo > cap / 2);
  }
  // Large attempt numbers saturate instead of overflowing.
  CHECK(p.delay(1000, nullptr) <= 1000ms);
}

TEST_CASE("Retry-After in seconds is honoured, capped by max_retry_after", "[http][retry]") {
  RetryPolicy p;
  p.base_delay = 1ms;
  p.max_delay = 5ms;
  Response r;
  r.status = 429;
  r.headers["retry-after"] = "7";
  // Above max_delay: the server's word wins, plus up to a fifth of jitter, never less.
  for (int i = 0; i < 50; ++i) {
    auto d = p.delay(1, &r);
    CHECK(d >= 7000ms);
    CHECK(d <= 8400ms);
  }
  r.headers["retry-after"] = " 0 ";
  CHECK(p.delay(3, &r) == 0ms);
  r.headers["retry-after"] = "99999999999999999999";
  CHECK(p.delay(1, &r) == p.max_retry_after);
  r.headers["retry-after"] = "soon";  // unparseable: ordinary back-off
  CHECK(p.delay(1, &r) <= 1ms);
}

TEST_CASE("Retry-After as an HTTP-date", "[http][retry]") {
  using namespace std::chrono;
  // 1994-11-06 08:49:37 UTC
  const system_clock::time_point at = sys_days{1994y / November / 6} + 8h + 49min + 37s;
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:57 GMT", at) == 20000ms);
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", at) == 60000ms);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", at) == 0ms);  // in the past
  CHECK_FALSE(parse_retry_after("Sun, 31 Feb 1994 08:00:00 GMT", at));
  CHECK_FALSE(parse_retry_after("Sun, 06 Foo 1994 08:00:00 GMT", at));
  CHECK_FALSE(parse_retry_after("", at));
  CHECK_FALSE(parse_retry_after("-5", at));

  // Through the policy, relative to the real clock.
  RetryPolicy p;
  Response r;
  r.headers["retry-after"] = "Sun, 06 Nov 1994 08:49:37 GMT";
  CHECK(p.delay(1, &r) == 0ms);
}

TEST_CASE("Response::header finds lower-cased names", "[http]") {
  Response r;
  r.headers["content-type"] = "application/json";
  CHECK(r.header("content-type") == "application/json");
  CHECK_FALSE(r.header("retry-after"));
}
