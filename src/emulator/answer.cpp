// The shared encodings of the emulator's HTTP front (see answer.hpp).
#include "emulator/answer.hpp"

#include <cstdio>

#include <boost/beast/core/string.hpp>
#include <boost/json/serialize.hpp>

#include <openssl/crypto.h>

#include "common/bytes.hpp"

namespace tsign::emulator {

namespace http = boost::beast::http;
namespace json = boost::json;

Answer json_answer(http::status status, const json::value& body, std::string kind) {
  Answer a;
  a.kind = std::move(kind);
  a.res.result(status);
  a.res.set(http::field::content_type, "application/json; charset=utf-8");
  a.res.body() = json::serialize(body);
  return a;
}

std::string random_id() {
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

std::string bearer(const StringRequest& req) {
  auto it = req.find(http::field::authorization);
  if (it == req.end()) return {};
  std::string_view v = it->value();
  if (v.size() < 7 || !boost::beast::iequals(v.substr(0, 7), "Bearer ")) return {};
  return std::string(v.substr(7));
}

bool equal_secret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
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

Route route(const std::vector<std::string>& segs) {
  if (segs.size() == 2 && segs[0] == "github" && segs[1] == "token") return Route::github_token;
  if (segs.size() == 4 && segs[1] == "oauth2" && segs[2] == "v2.0" && segs[3] == "token")
    return Route::entra_token;
  if (!segs.empty() && segs[0] == "codesigningaccounts") return Route::signing;
  return Route::none;
}

}  // namespace tsign::emulator
