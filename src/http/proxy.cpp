// Proxy choice for a URL (see proxy.hpp): the rules curl applies to HTTPS_PROXY, HTTP_PROXY and
// NO_PROXY, plus the hosts tsign always reaches directly (docs/usage.md, "Proxies").
#include "http/proxy.hpp"

#include <tuple>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/network_v4.hpp>
#include <boost/asio/ip/network_v6.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "common/bytes.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#include "platform/env.hpp"

namespace tsign::http {

namespace ip = boost::asio::ip;

namespace {

std::optional<ip::address> address_of(std::string_view text) {
  boost::system::error_code ec;
  auto a = ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  return a;
}

// `entry` ("10.0.0.0/8", "fd00::/8") contains `a`.
bool in_network(std::string_view entry, const ip::address& a) {
  boost::system::error_code ec;
  if (a.is_v4()) {
    auto net = ip::make_network_v4(std::string(entry), ec);
    return !ec && ip::network_v4(a.to_v4(), net.prefix_length()).canonical() == net.canonical();
  }
  auto net = ip::make_network_v6(std::string(entry), ec);
  return !ec && ip::network_v6(a.to_v6(), net.prefix_length()).canonical() == net.canonical();
}

// One NO_PROXY entry (trimmed, lower-cased, not empty) against host:port.
bool entry_matches(std::string_view e, std::string_view host, std::string_view port) {
  // A port: "host:port", "[v6]:port"; a bare IPv6 address has several colons and no port.
  if (e.front() == '[') {
    auto close = e.find(']');
    if (close == std::string_view::npos) return false;
    auto rest = e.substr(close + 1);
    if (!rest.empty() && (rest.front() != ':' || rest.substr(1) != port)) return false;
    e = e.substr(1, close - 1);
  } else if (auto colon = e.rfind(':'); colon != std::string_view::npos && e.find(':') == colon) {
    if (e.substr(colon + 1) != port) return false;
    e = e.substr(0, colon);
  }
  if (e.empty()) return false;
  if (auto a = address_of(host)) {
    if (e.find('/') != std::string_view::npos) return in_network(e, *a);
    auto b = address_of(e);
    return b && *a == *b;
  }
  if (e.front() == '.') e.remove_prefix(1);
  if (e.empty()) return false;
  if (host == e) return true;
  return host.size() > e.size() && host.substr(host.size() - e.size()) == e &&
         host[host.size() - e.size() - 1] == '.';
}

// The value of the lower-case spelling when set, else the upper-case one's; empty counts as
// unset (a workflow's `HTTPS_PROXY: ''` means no proxy).
std::pair<std::string, std::string> pick(const std::optional<std::string>& lower,
                                         const char* lower_name,
                                         const std::optional<std::string>& upper,
                                         const char* upper_name) {
  if (lower && !lower->empty()) return {*lower, lower_name};
  if (upper && !upper->empty()) return {*upper, upper_name};
  return {};
}

}  // namespace

Proxy parse_proxy(std::string_view value, std::string_view variable) {
  const std::string var(variable);
  const std::string shown = env::mask_url_password(value);
  auto bad = [&](const std::string& why) -> InputError {
    return InputError(var + "='" + shown + "' " + why);
  };
  std::string text(trim(value));
  if (text.find("://") == std::string::npos) text = "http://" + text;
  auto parsed = boost::urls::parse_uri(text);
  if (!parsed || !authority_as_written(text))
    throw bad(
        "is not a proxy URL: write http://[user:password@]host[:port] (percent-encode "
        "'@', ':' and '/' in the password)");
  boost::urls::url_view u = *parsed;
  if (u.scheme_id() == boost::urls::scheme::https)
    throw bad(
        "names an https:// proxy, which tsign does not support: write http:// (the "
        "connection to the target is still TLS, inside the proxy's tunnel)");
  if (u.scheme_id() != boost::urls::scheme::http)
    throw bad("names a " + std::string(u.scheme()) +
              ":// proxy; tsign supports http:// proxies only");
  if (!u.encoded_path().empty() && u.encoded_path() != "/")
    throw bad("has a path; a proxy URL is http://[user:password@]host[:port]");
  if (u.has_query() || u.has_fragment()) throw bad("has a query or fragment");
  Proxy p;
  p.variable = var;
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      p.host = ascii_lower(u.host_name());
      break;
    case boost::urls::host_type::ipv4:
      p.host = u.host_ipv4_address().to_string();
      break;
    case boost::urls::host_type::ipv6:
      p.host = u.host_ipv6_address().to_string();
      break;
    default:
      break;
  }
  if (p.host.empty()) throw bad("names no host");
  const bool explicit_port = u.has_port() && !u.port().empty();
  if (explicit_port && !valid_port(u.port())) throw bad("has an invalid port");
  p.port = explicit_port ? std::string(u.port()) : "1080";
  std::string host_text(u.encoded_host());
  if (u.has_userinfo()) {
    std::string user = u.user();          // percent-decoded
    std::string password = u.password();  // percent-decoded
    if (user.empty()) throw bad("has a password but no user");
    p.has_credentials = true;
    p.authorization = Secret("Basic " + base64_encode(as_bytes(user + ":" + password)));
  }
  p.display = "http://" + host_text + ":" + p.port;
  return p;
}

ProxyEnv read_proxy_env(const std::function<std::optional<std::string>(const std::string&)>& env) {
  ProxyEnv e;
  std::tie(e.https, e.https_variable) = pick(env::get(env, "https_proxy"), "https_proxy",
                                             env::get(env, "HTTPS_PROXY"), "HTTPS_PROXY");
  std::tie(e.http, e.http_variable) =
      pick(env::get(env, "http_proxy"), "http_proxy", env::get(env, "HTTP_PROXY"), "HTTP_PROXY");
  auto np = pick(env::get(env, "no_proxy"), "no_proxy", env::get(env, "NO_PROXY"), "NO_PROXY");
  e.no_proxy = np.first;
  e.loopback = env::get(env, "TSIGN_PROXY_LOOPBACK").value_or("") == "1";
  return e;
}

ProxySettings proxy_settings(const ProxyEnv& e) {
  ProxySettings s;
  if (!e.https.empty()) s.https = parse_proxy(e.https, e.https_variable);
  if (!e.http.empty()) s.http = parse_proxy(e.http, e.http_variable);
  s.no_proxy = e.no_proxy;
  s.loopback = e.loopback;
  return s;
}

bool always_direct(std::string_view host, bool loopback_via_proxy) {
  std::string h = ascii_lower(host);
  if (!h.empty() && h.back() == '.') h.pop_back();  // "localhost." is localhost
  auto a = address_of(h);
  if (a && a->is_v4() && a->to_v4() == ip::make_address_v4("169.254.169.254")) return true;
  if (loopback_via_proxy) return false;
  if (a) return a->is_loopback();  // 127.0.0.0/8, ::1
  return h == "localhost" || (h.size() > 10 && h.substr(h.size() - 10) == ".localhost");
}

bool no_proxy_matches(std::string_view list, std::string_view host, std::string_view port) {
  const std::string h = ascii_lower(host);
  std::string_view rest = list;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string e = ascii_lower(trim(rest.substr(0, comma)));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (e.empty()) continue;
    if (e == "*") return true;
    if (entry_matches(e, h, port)) return true;
  }
  return false;
}

const Proxy* choose_proxy(const ProxySettings& s, const Url& url) {
  const auto& proxy = url.tls ? s.https : s.http;
  if (!proxy) return nullptr;
  if (always_direct(url.host, s.loopback)) return nullptr;
  if (no_proxy_matches(s.no_proxy, url.host, url.port)) return nullptr;
  return &*proxy;
}

}  // namespace tsign::http
