// Retry-After parsing (RFC 9110 §10.2.3: delay-seconds or an HTTP-date, §5.6.7), exposed for
// the retry policy and for callers that pace polls by it (the Trusted Signing poll loop).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace tsign::http {

// The wait a Retry-After value asks for, relative to `now` (an HTTP-date in the past gives 0).
// nullopt when the value is neither form. Accepts IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT")
// and the obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT").
std::optional<std::chrono::milliseconds> parse_retry_after(
    std::string_view value, std::chrono::system_clock::time_point now);

}  // namespace tsign::http
