// http/url: how the client takes a URL apart (host, port, Host header, request target, the
// text shown in messages) and how the test server splits a request target. Pure functions.
#include <catch2/catch.hpp>

#include "common/error.hpp"
#include "http/url.hpp"

using tsign::InputError;
using tsign::http::make_url;
using tsign::http::parse_url;
using tsign::http::split_target;
using tsign::http::valid_port;

TEST_CASE("a URL is taken apart into host, port, Host header and request target", "[http][url]") {
  auto u = parse_url("https://EUS.CodeSigning.Azure.net/a/b?api-version=1&x=%2F");
  CHECK(u.tls);
  CHECK(u.host == "eus.codesigning.azure.net");  // DNS, SNI and the certificate check
  CHECK(u.port == "443");
  CHECK(u.host_header == "EUS.CodeSigning.Azure.net");  // as written, no default port
  CHECK(u.target == "/a/b?api-version=1&x=%2F");
  CHECK(u.pool_key == "https://eus.codesigning.azure.net:443");
  CHECK(u.display == "https://EUS.CodeSigning.Azure.net/a/b");  // never the query
  CHECK_FALSE(u.host_is_ip);

  auto p = parse_url("http://127.0.0.1:8080");
  CHECK_FALSE(p.tls);
  CHECK(p.host == "127.0.0.1");
  CHECK(p.host_is_ip);
  CHECK(p.port == "8080");
  CHECK(p.host_header == "127.0.0.1:8080");
  CHECK(p.target == "/");  // an empty path is "/" on the wire
  CHECK(p.pool_key == "http://127.0.0.1:8080");

  auto v6 = parse_url("https://[::1]:8443/t");
  CHECK(v6.host == "::1");  // bare, for the resolver
  CHECK(v6.host_is_ip);
  CHECK(v6.host_header == "[::1]:8443");
  CHECK(v6.port == "8443");

  // The scheme's default port and the same port written out share one pool.
  CHECK(parse_url("http://h/").pool_key == parse_url("http://H:80/x").pool_key);
}

TEST_CASE("URLs that cannot be sent are input errors quoting the URL", "[http][url]") {
  for (std::string url :
       {"ftp://example.com/", "not a url", "/relative/path", "https:///path", "https://host:0/",
        "http://127.0.0.1.example.com:80/", "http://127.0.0.1:80x/",
        // Beyond 16 bits: never a wrapped port that would connect elsewhere.
        "https://host:65536/", "https://host:70000/", "https://host:99999999999/"}) {
    INFO(url);
    try {
      parse_url(url);
      FAIL("accepted");
    } catch (const InputError& e) {
      CHECK_THAT(e.what(), Catch::Contains(url));
    }
  }
}

TEST_CASE("a port is 1 to 65535 in decimal, read from its text", "[http][url]") {
  for (std::string_view ok : {"1", "80", "08080", "65535"}) CHECK(valid_port(ok));
  for (std::string_view bad : {"", "0", "00", "65536", "70000", "99999999999",
                               "18446744073709551697", "-1", "+1", "8o", " 80"})
    CHECK_FALSE(valid_port(bad));
}

TEST_CASE("a request target splits into path and query at the first '?'", "[http][url]") {
  auto a = split_target("/sign?api-version=2024-06-15&b=?c");
  CHECK(a.path == "/sign");
  CHECK(a.query == "api-version=2024-06-15&b=?c");
  auto b = split_target("/a%3Fb");  // an encoded '?' belongs to the path
  CHECK(b.path == "/a%3Fb");
  CHECK(b.query.empty());
  CHECK(split_target("/x?").path == "/x");
  CHECK(split_target("").path.empty());
}

TEST_CASE("make_url writes a URL parse_url reads back", "[http][url]") {
  CHECK(make_url(false, "127.0.0.1", 8080, "/a") == "http://127.0.0.1:8080/a");
  CHECK(make_url(true, "localhost", 443, "a") == "https://localhost:443/a");
  CHECK(make_url(true, "localhost", 1, "") == "https://localhost:1/");
  auto u = parse_url(make_url(true, "localhost", 8443, "/sign?x=1"));
  CHECK(u.tls);
  CHECK(u.host == "localhost");
  CHECK(u.port == "8443");
  CHECK(u.target == "/sign?x=1");
}
