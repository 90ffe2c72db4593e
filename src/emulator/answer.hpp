// What every part of the emulator's HTTP front shares: the answer a handler gives (and how the
// request log names it), and the small encodings of docs/protocol.md that more than one service
// uses (GUID-shaped ids, ISO 8601 times, bearer tokens, JSON fields).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace tsign::emulator {

using StringRequest = boost::beast::http::request<boost::beast::http::string_body>;
using StringResponse = boost::beast::http::response<boost::beast::http::string_body>;
using SysClock = std::chrono::system_clock;

// One answer and how it is reported in the request log.
struct Answer {
  StringResponse res;
  bool drop = false;  // close the connection instead of answering
  std::string kind = "unknown";
  std::string fault;
};

// A JSON answer (application/json; charset=utf-8).
Answer json_answer(boost::beast::http::status status, const boost::json::value& body,
                   std::string kind);

// A GUID-shaped random value (version 4), like the service's operation ids and Entra's ids.
std::string random_id();
// 2024-06-15T12:34:56.789Z
std::string iso_time(SysClock::time_point t);
std::int64_t unix_now();

// The token of an `Authorization: Bearer ...` header; empty if there is none.
std::string bearer(const StringRequest& req);
// Compares in time independent of where the two differ (secrets and request tokens).
bool equal_secret(std::string_view a, std::string_view b);

// A string member, or "" if it is missing or not a string.
std::string json_string(const boost::json::object& o, std::string_view key);
// An integer member (a double is truncated), or nullopt if it is missing or not a number.
std::optional<std::int64_t> json_int(const boost::json::object& o, std::string_view key);

// True for the n-th of a kind of request when every k-th is to fail (k <= 0: never; n counts
// from 1). The fault options of emulator.hpp all count this way.
constexpr bool every_nth(int k, std::uint64_t n) {
  return k > 0 && n > 0 && n % static_cast<std::uint64_t>(k) == 0;
}

// Which part of the emulator serves a path on the HTTPS port (its decoded segments): GET
// /github/token, POST /{tenant}/oauth2/v2.0/token, /codesigningaccounts/... (methods are checked
// by the part itself).
enum class Route { github_token, entra_token, signing, none };
Route route(const std::vector<std::string>& segs);

}  // namespace tsign::emulator
