// URLs as the HTTP client reads them (RFC 3986 syntax on Boost.URL, http and https schemes of
// RFC 9110 §4.2) and request targets in origin-form (RFC 9112 §3.2.1), in one place for the
// client and the loopback test server. Pure functions: no I/O, no state.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace tsign::http {

// True when `url` parses as an absolute URL whose authority (user info, host, port) is exactly
// the text between its "//" and the next '/', '?' or '#', and whose path starts with '/' (or is
// empty). Boost.URL 1.81 ends a host at a leading dotted quad and reads the rest as a path, so
// "https://127.0.0.1.evil.com/" would otherwise mean host 127.0.0.1, port 443, path
// ".evil.com/" -- neither the host nor the port the user wrote.
bool authority_as_written(std::string_view url);

// True when `text` is a port as a URL may write one: decimal digits only, 1 to 65535. The text
// decides: Boost.URL 1.81's port_number() reads a port past 16 bits as 0.
bool valid_port(std::string_view text);

// An absolute http:// or https:// URL taken apart for sending a request to it.
struct Url {
  bool tls = false;
  std::string host;         // bare host, lower-cased: for DNS, SNI and the certificate check
  std::string port;         // always set (defaulted from the scheme)
  std::string host_header;  // host[:port] as in the URL, for the Host header and messages
  std::string target;       // origin-form: path[?query]
  std::string pool_key;     // scheme://host:port
  std::string display;      // scheme://host[:port]/path, never the query (it may carry tokens)
  bool host_is_ip = false;
};

// Throws InputError quoting the URL unless it is an absolute http(s) URL with a host, a valid
// port if one is written, and an authority read the way it is written (authority_as_written).
Url parse_url(const std::string& url);

// A request target in origin-form split at its first '?': the path and the query, both as sent
// (percent-encoded). `query` is empty both without a '?' and after a bare '?'.
struct OriginForm {
  std::string path;
  std::string query;
};
OriginForm split_target(std::string_view target);

// "http(s)://host:port" followed by `path` (a '/' is put in front of a path without one).
std::string make_url(bool tls, std::string_view host, std::uint16_t port, std::string_view path);

}  // namespace tsign::http
