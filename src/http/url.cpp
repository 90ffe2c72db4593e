// URL parsing for the HTTP client and the test server (see url.hpp): RFC 3986 on Boost.URL,
// with the authority checked against its text because Boost.URL 1.81 can read a host shorter
// than written.
#include "http/url.hpp"

#include <cctype>
#include <charconv>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include "common/error.hpp"
#include "common/text.hpp"

namespace tsign::http {

bool valid_port(std::string_view text) {
  unsigned n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc{} && end == text.data() + text.size() && n >= 1 && n <= 65535;
}

bool authority_as_written(std::string_view url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) return false;
  if (!parsed->has_authority()) return true;  // nothing to misread (and no host to reach)
  // The text after "scheme://" up to the first '/', '?' or '#': the authority as written.
  std::size_t start = parsed->scheme().size() + 3;
  if (url.size() < start || url.substr(start - 3, 3) != "://") return false;
  std::string_view written = url.substr(start);
  written = written.substr(0, written.find_first_of("/?#"));
  auto path = parsed->encoded_path();
  return parsed->encoded_authority() == written && (path.empty() || path.front() == '/');
}

Url parse_url(const std::string& url) {
  auto parsed = boost::urls::parse_uri(url);
  if (!parsed) throw InputError("not a valid absolute URL: '" + url + "'");
  // Never a host or port other than the ones written (see authority_as_written).
  if (!authority_as_written(url))
    throw InputError("'" + url +
                     "' is not a URL that can be read one way only: its host or port is "
                     "followed by characters that belong to neither");
  boost::urls::url_view u = *parsed;
  Url t;
  if (u.scheme_id() == boost::urls::scheme::https)
    t.tls = true;
  else if (u.scheme_id() != boost::urls::scheme::http)
    throw InputError("'" + url + "' is not an http:// or https:// URL");
  switch (u.host_type()) {
    case boost::urls::host_type::name:
      t.host = ascii_lower(u.host_name());
      break;
    case boost::urls::host_type::ipv4:
      t.host = u.host_ipv4_address().to_string();
      t.host_is_ip = true;
      break;
    case boost::urls::host_type::ipv6:
      t.host = u.host_ipv6_address().to_string();
      t.host_is_ip = true;
      break;
    default:
      break;
  }
  if (t.host.empty()) throw InputError("'" + url + "' names no host");
  const bool explicit_port = u.has_port() && !u.port().empty();
  if (explicit_port && !valid_port(u.port())) throw InputError("'" + url + "' has an invalid port");
  t.port = explicit_port ? std::string(u.port()) : (t.tls ? "443" : "80");
  t.host_header = std::string(u.encoded_host());
  if (explicit_port) t.host_header += ":" + t.port;
  std::string path(u.encoded_path());
  if (path.empty()) path = "/";
  t.target = path;
  if (u.has_query()) t.target += "?" + std::string(u.encoded_query());
  std::string scheme = t.tls ? "https" : "http";
  t.pool_key = scheme + "://" + t.host + ":" + t.port;
  t.display = scheme + "://" + t.host_header + path;
  return t;
}

OriginForm split_target(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {std::string(target), {}};
  return {std::string(target.substr(0, q)), std::string(target.substr(q + 1))};
}

std::string make_url(bool tls, std::string_view host, std::uint16_t port, std::string_view path) {
  return std::string(tls ? "https://" : "http://") + std::string(host) + ":" +
         std::to_string(port) + (path.empty() || path[0] != '/' ? "/" : "") + std::string(path);
}

}  // namespace tsign::http
