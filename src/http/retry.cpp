// The retry policy of http::Client: which answers are worth another attempt, and how long to
// wait before it. Retry-After per RFC 9110 §10.2.3; back-off is exponential with "full jitter"
// (delay drawn uniformly from [0, min(cap, base * 2^(n-1))]), which spreads the retries of many
// concurrent requests instead of having them hit a throttled service in lock-step.
#include "http/retry.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "common/bytes.hpp"
#include "common/text.hpp"
#include "http/client.hpp"

namespace tsign::http {

namespace {

std::optional<unsigned> month_number(const char* name) {
  static constexpr std::array<const char*, 12> names = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (unsigned i = 0; i < names.size(); ++i)
    if (std::strcmp(names[i], name) == 0) return i + 1;
  return std::nullopt;
}

std::optional<std::chrono::system_clock::time_point> parse_http_date(std::string_view v) {
  std::string s(v);
  char mon[4] = {};
  int d = 0, y = 0, h = 0, mi = 0, sec = 0;
  // IMF-fixdate first (what every current server sends), then the RFC 850 form.
  if (std::sscanf(s.c_str(), "%*[A-Za-z], %2d %3[A-Za-z] %4d %2d:%2d:%2d GMT", &d, mon, &y, &h, &mi,
                  &sec) != 6) {
    if (std::sscanf(s.c_str(), "%*[A-Za-z], %2d-%3[A-Za-z]-%2d %2d:%2d:%2d GMT", &d, mon, &y, &h,
                    &mi, &sec) != 6)
      return std::nullopt;
    y += y < 70 ? 2000 : 1900;  // RFC 9110 §5.6.7: two-digit years more than 50 years ahead
  }
  auto m = month_number(mon);
  if (!m || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{*m},
                                  std::chrono::day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  return std::chrono::sys_days{ymd} + std::chrono::hours{h} + std::chrono::minutes{mi} +
         std::chrono::seconds{sec};
}

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now) {
  auto v = trim(value, kHttpOws);
  if (v.empty()) return std::nullopt;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    std::uint64_t secs = 0;
    auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), secs);
    // An absurd number is still a number: saturate rather than reject, the caller caps it.
    if (ec == std::errc::result_out_of_range || secs > 1'000'000'000) secs = 1'000'000'000;
    (void)p;
    return std::chrono::milliseconds(secs * 1000);
  }
  auto when = parse_http_date(v);
  if (!when) return std::nullopt;
  if (*when <= now) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(*when - now);
}

std::optional<std::string> Response::header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  if (it == headers.end()) return std::nullopt;
  return it->second;
}

namespace {

// Uniform in [0, n] (0 for n <= 0). OpenSSL's generator: no RNG object (and no global one) to
// carry around.
std::int64_t random_up_to(std::int64_t n) {
  if (n <= 0) return 0;
  Bytes r = random_bytes(8);
  std::uint64_t x = 0;
  for (auto b : r) x = (x << 8) | b;
  return static_cast<std::int64_t>(x % (static_cast<std::uint64_t>(n) + 1));
}

}  // namespace

bool RetryPolicy::retryable_status(unsigned status) {
  switch (status) {
    case 408:  // request timeout
    case 429:  // throttled
    case 500:
    case 502:
    case 503:
    case 504:
      return true;
    default:
      return false;
  }
}

bool RetryPolicy::not_processed_status(unsigned status) {
  // 500, 502 and 504 may come after the server (or the one behind a gateway) acted: not here.
  return status == 408 || status == 429 || status == 503;
}

std::chrono::milliseconds RetryPolicy::delay(int attempt, const Response* answer) const {
  using std::chrono::milliseconds;
  if (answer) {
    if (auto ra = answer->header("retry-after")) {
      if (auto d = parse_retry_after(*ra, std::chrono::system_clock::now())) {
        // Never sooner than asked, but up to a fifth later: requests throttled together must not
        // all come back in the same millisecond and be throttled together again.
        auto asked = std::min(*d, max_retry_after);
        return std::min(asked + milliseconds(random_up_to(asked.count() / 5)), max_retry_after);
      }
    }
  }
  // Exponential cap, saturating at max_delay (no overflow for large attempt numbers).
  std::int64_t cap = std::max<std::int64_t>(base_delay.count(), 0);
  for (int i = 1; i < attempt && cap < max_delay.count(); ++i) cap *= 2;
  cap = std::min<std::int64_t>(cap, max_delay.count());
  return milliseconds(random_up_to(cap));  // full jitter
}

}  // namespace tsign::http
