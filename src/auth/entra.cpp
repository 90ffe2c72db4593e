// Microsoft identity platform token requests: OAuth 2.0 client credentials grant (RFC 6749
// §4.4) at the Entra ID v2.0 token endpoint, form encoding (RFC 6749 appendix B), the token
// answers of Entra ID and managed identity, and the GitHub OIDC request URL (docs/protocol.md
// §1-2).
#include <algorithm>
#include <cctype>

#include <boost/json.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>

#include "auth/auth_internal.hpp"
#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/text.hpp"

namespace tsign::auth {

namespace json = boost::json;
namespace urls = boost::urls;

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields) {
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out.push_back('&');
    out += urls::encode(name, urls::unreserved_chars);
    out.push_back('=');
    out += urls::encode(value, urls::unreserved_chars);
  }
  return out;
}

namespace {

constexpr const char* kDefaultAuthority = "https://login.microsoftonline.com";

// A JSON value as seconds, whether the service sent a number or a string of digits; nothing
// when it is beyond kMaxTokenSeconds either way.
std::optional<std::int64_t> as_seconds(const json::value* v) {
  constexpr std::int64_t kMax = kMaxTokenSeconds;
  if (!v) return std::nullopt;
  if (v->is_int64() && v->as_int64() >= -kMax && v->as_int64() <= kMax) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(kMax))
    return static_cast<std::int64_t>(v->as_uint64());
  // Checked before the conversion: a double out of int64's range (or NaN) is undefined there.
  if (v->is_double() && v->as_double() >= -static_cast<double>(kMax) &&
      v->as_double() <= static_cast<double>(kMax))
    return static_cast<std::int64_t>(v->as_double());
  if (v->is_string()) {
    const auto& s = v->as_string();
    if (s.empty() || s.size() > 18) return std::nullopt;
    std::int64_t n = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      n = n * 10 + (c - '0');
    }
    if (n > kMax) return std::nullopt;
    return n;
  }
  return std::nullopt;
}

std::string string_field(const json::object& o, std::string_view key) {
  if (auto* v = o.if_contains(key); v && v->is_string()) return std::string(v->as_string());
  return {};
}

std::string host_of(const std::string& url) {
  auto r = urls::parse_uri(url);
  return r ? std::string(r->host()) : url;
}

}  // namespace

std::string resolve_authority(const std::string& configured, const EnvLookup& env) {
  std::string authority = configured;
  if (authority.empty() || authority == kDefaultAuthority) {
    if (auto e = read_var(env, "AZURE_AUTHORITY_HOST"); e && !e->empty()) authority = *e;
  }
  if (authority.empty()) authority = kDefaultAuthority;
  // Credentials are posted there: never over plain HTTP, never to a URL with user info.
  auto r = urls::parse_absolute_uri(authority);
  if (!r || r->scheme_id() != urls::scheme::https || r->host().empty() || r->has_userinfo() ||
      r->has_query() || r->has_fragment())
    throw InputError("AZURE_AUTHORITY_HOST / authority '" + authority +
                     "' must be an https:// URL such as " + kDefaultAuthority);
  while (!authority.empty() && authority.back() == '/') authority.pop_back();
  return authority;
}

std::string entra_token_url(const std::string& authority, const std::string& tenant) {
  bool ok = !tenant.empty() && tenant.size() <= 253 &&
            std::all_of(tenant.begin(), tenant.end(), [](unsigned char c) {
              return std::isalnum(c) || c == '-' || c == '.' || c == '_';
            });
  if (!ok || tenant.front() == '.')
    throw InputError("azure-tenant-id / AZURE_TENANT_ID '" + tenant +
                     "' is not a tenant ID (a GUID) or a domain name");
  return authority + "/" + tenant + "/oauth2/v2.0/token";
}

std::string github_oidc_audience(const std::string& authority) {
  std::string host = ascii_lower(host_of(authority));
  if (host == "login.microsoftonline.us") return "api://AzureADTokenExchangeUSGov";
  if (host == "login.chinacloudapi.cn") return "api://AzureADTokenExchangeChina";
  return "api://AzureADTokenExchange";
}

std::string github_oidc_url(const std::string& request_url, const std::string& audience) {
  auto r = urls::parse_absolute_uri(request_url);
  if (!r)
    throw AuthError(
        "ACTIONS_ID_TOKEN_REQUEST_URL is not a URL; is this running in a GitHub Actions job?");
  urls::url u(*r);
  // Encoded by hand so the audience reads api%3A%2F%2F... as actions/toolkit sends it
  // (Boost.URL would leave ':' and '/' as they are, which is legal in a query but not the norm).
  std::string enc = urls::encode(audience, urls::unreserved_chars);
  u.encoded_params().set("audience", urls::pct_string_view(enc));
  return std::string(u.buffer());
}

bool expired(const AccessToken& token, SysClock::time_point now) {
  if (now >= token.expires_on) return true;
  // header.payload.signature, base64url (RFC 7515 §7.1); anything else is opaque to us.
  const std::string& t = token.token.reveal();
  auto first = t.find('.');
  auto second = first == std::string::npos ? first : t.find('.', first + 1);
  if (second == std::string::npos) return false;
  auto payload = base64url_decode(std::string_view(t).substr(first + 1, second - first - 1));
  if (!payload) return false;
  boost::system::error_code ec;
  json::value v = json::parse(to_string(*payload), ec);
  if (ec || !v.is_object()) return false;
  auto exp = as_seconds(v.as_object().if_contains("exp"));
  return exp && now >= SysClock::time_point(std::chrono::seconds(*exp));
}

bool usable_token_answer(const http::Response& res) {
  if (res.status != 200) return true;  // refusals are read as they are
  boost::system::error_code ec;
  json::value v = json::parse(res.body, ec);
  return !ec && v.is_object();
}

AccessToken parse_token_response(std::string_view body, SysClock::time_point now,
                                 const std::string& who) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object())
    throw AuthError(who + " answered with something that is not a JSON token response");
  const auto& o = v.as_object();
  std::string token = string_field(o, "access_token");
  if (token.empty()) throw AuthError(who + " answered without an access_token");
  if (auto type = ascii_lower(string_field(o, "token_type")); !type.empty() && type != "bearer")
    throw AuthError(who + " answered with a token of type '" + type + "', expected Bearer");
  SysClock::time_point expires;
  if (auto in = as_seconds(o.if_contains("expires_in")); in && *in > 0)
    expires = now + std::chrono::seconds(*in);
  else if (auto on = as_seconds(o.if_contains("expires_on")); on && *on > 0)
    expires = SysClock::time_point(std::chrono::seconds(*on));
  else
    throw AuthError(who + " answered without a usable expires_in / expires_on");
  return AccessToken{Secret(std::move(token)), expires};
}

EntraErrorAnswer parse_entra_error(std::string_view body) {
  EntraErrorAnswer out;
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    out.code = string_field(v.as_object(), "error");
    out.description = string_field(v.as_object(), "error_description");
  }
  return out;
}

boost::asio::awaitable<AccessToken> request_entra_token(
    http::Client& client, const std::string& token_url,
    const std::vector<std::pair<std::string, std::string>>& form, const std::string& who,
    SysClock::time_point now) {
  http::Request req;
  req.method = "POST";
  req.url = token_url;
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                 {"Accept", "application/json"}};
  req.body = form_encode(form);
  // A POST, but a client credentials grant changes nothing at Entra: a token answer that is cut
  // short is asked for again like any failed request.
  req.idempotent = true;
  req.usable = usable_token_answer;
  std::string host = host_of(token_url);
  http::Response res;
  try {
    res = co_await client.send(std::move(req));
  } catch (const http::TransportError& e) {
    // A credential that cannot reach its authority fails the run (exit 3), not one file.
    throw AuthError("cannot reach Microsoft Entra ID at " + host + " for the " + who + ": " +
                    e.what());
  }
  if (res.status == 200) co_return parse_token_response(res.body, now, "Entra ID (" + host + ")");

  auto [code, description] = parse_entra_error(res.body);
  std::string msg = "Microsoft Entra ID (" + host + ") refused the " + who + " (HTTP " +
                    std::to_string(res.status) + ")";
  if (!code.empty()) msg += ": " + code;
  if (!description.empty()) msg += ": " + description;
  if (res.status == 400 || res.status == 401) throw EntraRefused(msg, code, description);
  throw AuthError(msg);
}

}  // namespace tsign::auth
