// HTTP proxies as curl and the Azure SDKs read them from the environment: HTTPS_PROXY for https
// URLs, HTTP_PROXY for http URLs, NO_PROXY for the exceptions, lower case winning over upper
// case (docs/usage.md, "Proxies"). Pure functions: which proxy a URL goes through, NO_PROXY
// matching, proxy URLs taken apart with their password masked. The client (client.cpp) opens the
// tunnel.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/secret.hpp"
#include "http/url.hpp"

namespace tsign::http {

// A proxy URL taken apart: http://[user[:password]@]host[:port][/]. Only http:// proxies (a
// plain connection to the proxy, TLS inside the tunnel); a value without a scheme is read as
// http://, as curl does.
struct Proxy {
  std::string host;      // bare (no brackets), lower-cased
  std::string port;      // 1080 when not written (curl's default)
  std::string display;   // http://host:port, for messages: no user info at all
  std::string variable;  // the environment variable it came from, for messages
  bool has_credentials = false;
  // "Basic <base64(user:password)>" (RFC 7617), both percent-decoded first; empty without
  // user info.
  Secret authorization;
};

// Throws InputError naming `variable` (with the value's password masked) unless `value` is an
// http:// proxy URL with a host, an optional port, and nothing but "/" after them.
Proxy parse_proxy(std::string_view value, std::string_view variable);

// The proxy environment as read: the variable each value came from, lower case winning.
struct ProxyEnv {
  std::string https, https_variable;  // HTTPS_PROXY / https_proxy ("" when unset or empty)
  std::string http, http_variable;    // HTTP_PROXY / http_proxy
  std::string no_proxy;               // NO_PROXY / no_proxy
  bool loopback = false;              // TSIGN_PROXY_LOOPBACK=1: loopback goes through it too
};
// Reads the variables above through `env` (the process's in the product, a map in tests).
ProxyEnv read_proxy_env(const std::function<std::optional<std::string>(const std::string&)>& env);

// ProxyEnv with its URLs parsed (parse_proxy's InputError for a malformed one).
struct ProxySettings {
  std::optional<Proxy> https, http;
  std::string no_proxy;
  bool loopback = false;
};
ProxySettings proxy_settings(const ProxyEnv& env);

// Hosts that never go through a proxy: the instance metadata service (169.254.169.254, the
// managed identity endpoint) and, unless `loopback_via_proxy`, loopback (localhost, 127.0.0.0/8,
// ::1).
bool always_direct(std::string_view host, bool loopback_via_proxy);

// Whether NO_PROXY (`list`) exempts host:port. Entries are separated by commas (blanks
// around them ignored) and compared case-insensitively: `*` alone matches every host; a host
// name matches itself and its subdomains, with or without a leading dot (`example.com` and
// `.example.com` both match `example.com` and `a.example.com`); an IP address matches that
// address; an IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`) matches the addresses in
// it; any entry may end in `:port` (IPv6 in brackets: `[::1]:8443`) to match that port only.
bool no_proxy_matches(std::string_view list, std::string_view host, std::string_view port);

// The proxy `url` goes through, or nullptr for a direct connection.
const Proxy* choose_proxy(const ProxySettings& s, const Url& url);

}  // namespace tsign::http
