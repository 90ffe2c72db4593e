// Proxy choice (proxy.hpp): which variable applies to a URL, NO_PROXY matching, what always
// goes direct, and proxy URLs taken apart with their credentials never shown; then the client
// against a scripted loopback "proxy" (absolute-form, Proxy-Authorization, 407, unreachable).
// The real proxy, tinyproxy, is in tests/integration/proxy_sign_test.cpp.
#include <catch2/catch.hpp>

#include <map>

#include <boost/asio/io_context.hpp>

#include "client_helpers.hpp"
#include "common/error.hpp"
#include "http/client.hpp"
#include "http/proxy.hpp"

using namespace tsign;
using namespace tsign::http;
using tsign::test::error_of;
using tsign::test::fast_options;
using tsign::test::Reply;
using tsign::test::TestServer;

namespace {

std::function<std::optional<std::string>(const std::string&)> env_of(
    std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}

ProxySettings settings(std::map<std::string, std::string> m) {
  return proxy_settings(read_proxy_env(env_of(std::move(m))));
}

// The proxy's display for `url`, or "direct".
std::string route(const ProxySettings& s, const std::string& url) {
  const Proxy* p = choose_proxy(s, parse_url(url));
  return p ? p->variable + " " + p->display : "direct";
}

}  // namespace

TEST_CASE("HTTPS_PROXY for https URLs, HTTP_PROXY for http ones, lower case wins", "[proxy]") {
  auto s = settings({{"HTTPS_PROXY", "http://upper:3128"},
                     {"https_proxy", "http://lower:3128"},
                     {"HTTP_PROXY", "plain:8080"}});
  CHECK(route(s, "https://eus.codesigning.azure.net/x") == "https_proxy http://lower:3128");
  CHECK(route(s, "http://timestamp.acs.microsoft.com/") == "HTTP_PROXY http://plain:8080");
  // Only one of them set: the other scheme goes direct.
  CHECK(route(settings({{"HTTPS_PROXY", "http://p:1"}}), "http://tsa.example/") == "direct");
  CHECK(route(settings({{"HTTP_PROXY", "http://p:1"}}), "https://a.example/") == "direct");
  // An empty lower-case value does not hide the upper-case one.
  CHECK(route(settings({{"https_proxy", ""}, {"HTTPS_PROXY", "http://p:1"}}), "https://a.b/") ==
        "HTTPS_PROXY http://p:1");
  CHECK(route(settings({}), "https://a.b/") == "direct");
}

TEST_CASE("a proxy URL is taken apart, and its credentials become Basic, never shown", "[proxy]") {
  auto p = parse_proxy("http://alice:p%40ss%3Aw0rd@Proxy.Corp:3128/", "HTTPS_PROXY");
  CHECK(p.host == "proxy.corp");
  CHECK(p.port == "3128");
  CHECK(p.display == "http://Proxy.Corp:3128");
  CHECK(p.has_credentials);
  // base64("alice:p@ss:w0rd"): percent-decoded before encoding.
  CHECK(p.authorization.reveal() == "Basic YWxpY2U6cEBzczp3MHJk");
  auto bare = parse_proxy("10.1.2.3", "http_proxy");
  CHECK(bare.port == "1080");  // curl's default
  CHECK(bare.display == "http://10.1.2.3:1080");
  CHECK_FALSE(bare.has_credentials);
  CHECK(bare.authorization.empty());
  CHECK(parse_proxy("http://[::1]:3128", "HTTPS_PROXY").host == "::1");
  CHECK(parse_proxy("http://user@proxy:3128", "HTTPS_PROXY").authorization.reveal() ==
        "Basic dXNlcjo=");  // "user:"
}

TEST_CASE("a malformed proxy URL is an input error naming the variable, password masked",
          "[proxy]") {
  for (const char* bad : {"https://alice:s3cret@proxy:3128", "socks5://alice:s3cret@proxy:1080",
                          "http://alice:s3cret@proxy:3128/path", "http://alice:s3cret@proxy:99999",
                          "http://alice:s3cret@proxy:65536", "http://alice:s3cret@proxy:0",
                          "http://alice:s3cret@:3128", "http://:s3cret@proxy:3128"}) {
    INFO(bad);
    try {
      parse_proxy(bad, "HTTPS_PROXY");
      FAIL("accepted");
    } catch (const InputError& e) {
      std::string m = e.what();
      CHECK(m.find("HTTPS_PROXY") != std::string::npos);
      CHECK(m.find("s3cret") == std::string::npos);
    }
  }
  CHECK_THROWS_AS(settings({{"http_proxy", "ftp://p:21"}}), InputError);
}

TEST_CASE("NO_PROXY: names and their subdomains, leading dots, *, addresses, networks, ports",
          "[proxy]") {
  const std::string list =
      " example.com, .corp.net ,10.1.2.3,192.168.0.0/16,fd00::/8,"
      "[2001:db8::1]:8443,tsa.local:8080,, ";
  CHECK(no_proxy_matches(list, "example.com", "443"));
  CHECK(no_proxy_matches(list, "a.example.com", "443"));
  CHECK(no_proxy_matches(list, "A.Example.COM", "443"));
  CHECK_FALSE(no_proxy_matches(list, "badexample.com", "443"));
  CHECK_FALSE(no_proxy_matches(list, "example.com.evil", "443"));
  CHECK(no_proxy_matches(list, "corp.net", "443"));
  CHECK(no_proxy_matches(list, "x.y.corp.net", "443"));
  CHECK(no_proxy_matches(list, "10.1.2.3", "80"));
  CHECK_FALSE(no_proxy_matches(list, "10.1.2.4", "80"));
  CHECK(no_proxy_matches(list, "192.168.44.5", "443"));
  CHECK_FALSE(no_proxy_matches(list, "192.169.0.1", "443"));
  CHECK(no_proxy_matches(list, "fd12::5", "443"));
  CHECK_FALSE(no_proxy_matches(list, "fe80::1", "443"));
  CHECK(no_proxy_matches(list, "2001:db8::1", "8443"));
  CHECK_FALSE(no_proxy_matches(list, "2001:db8::1", "443"));
  CHECK(no_proxy_matches(list, "tsa.local", "8080"));
  CHECK_FALSE(no_proxy_matches(list, "tsa.local", "80"));
  CHECK(no_proxy_matches("*", "anything.example", "443"));
  CHECK(no_proxy_matches("a.b, *", "anything.example", "443"));
  CHECK_FALSE(no_proxy_matches("*.example.com", "a.example.com", "443"));  // not a glob (curl)
  CHECK_FALSE(no_proxy_matches("", "example.com", "443"));
  // A name never matches an address, nor the reverse.
  CHECK_FALSE(no_proxy_matches("10.1.2.3", "host10.1.2.3", "443"));
}

TEST_CASE("NO_PROXY and the always-direct hosts decide the route", "[proxy]") {
  auto s = settings({{"HTTPS_PROXY", "http://p:3128"},
                     {"HTTP_PROXY", "http://p:3128"},
                     {"no_proxy", "internal.example,127.0.0.1"},
                     {"NO_PROXY", "eus.codesigning.azure.net"}});  // hidden by no_proxy
  CHECK(route(s, "https://eus.codesigning.azure.net/") == "HTTPS_PROXY http://p:3128");
  CHECK(route(s, "https://svc.internal.example/") == "direct");
  // The instance metadata service and loopback never go through the proxy.
  CHECK(route(s, "http://169.254.169.254/metadata/identity/oauth2/token") == "direct");
  CHECK(route(s, "https://localhost:8443/") == "direct");
  CHECK(route(s, "https://127.4.5.6:8443/") == "direct");
  CHECK(route(s, "https://[::1]:8443/") == "direct");
  CHECK(always_direct("LOCALHOST.", false));
  CHECK(always_direct("api.localhost", false));
  CHECK_FALSE(always_direct("localhost.example", false));
  CHECK_FALSE(always_direct("128.0.0.1", false));
}

TEST_CASE("TSIGN_PROXY_LOOPBACK=1 sends loopback through the proxy, never IMDS", "[proxy]") {
  auto s = settings({{"HTTPS_PROXY", "http://p:3128"},
                     {"HTTP_PROXY", "http://p:3128"},
                     {"TSIGN_PROXY_LOOPBACK", "1"}});
  CHECK(route(s, "https://127.0.0.1:8443/") == "HTTPS_PROXY http://p:3128");
  CHECK(route(s, "http://localhost:8080/") == "HTTP_PROXY http://p:3128");
  CHECK(route(s, "http://169.254.169.254/metadata") == "direct");
  // NO_PROXY still applies.
  auto n = settings(
      {{"HTTPS_PROXY", "http://p:3128"}, {"NO_PROXY", "127.0.0.1"}, {"TSIGN_PROXY_LOOPBACK", "1"}});
  CHECK(route(n, "https://127.0.0.1:8443/") == "direct");
  CHECK(route(settings({{"HTTPS_PROXY", "http://p:3128"}, {"TSIGN_PROXY_LOOPBACK", "yes"}}),
              "https://127.0.0.1:8443/") == "direct");
}

namespace {

// Client options sending everything, loopback included, through `proxy` for both schemes.
ClientOptions through(const std::string& proxy) {
  ClientOptions o = fast_options();
  o.retry.max_attempts = 2;
  o.proxy = ProxyEnv{.https = proxy,
                     .https_variable = "HTTPS_PROXY",
                     .http = proxy,
                     .http_variable = "http_proxy",
                     .loopback = true};
  return o;
}

}  // namespace

TEST_CASE("http through a proxy: absolute-form, Proxy-Authorization, the proxy's 407 named",
          "[proxy][client]") {
  TestServer proxy;  // stands in for the proxy: it sees what a proxy would see
  proxy.set_fallback([](const tsign::test::Request& r) {
    if (r.header("proxy-authorization") != "Basic dTpwQHNz") return Reply::text(407, "who?");
    return Reply::text(200, "via proxy");
  });
  boost::asio::io_context ioc;
  const std::string at = "127.0.0.1:" + std::to_string(proxy.port());
  Client good(ioc.get_executor(), through("http://u:p%40ss@" + at));
  // The target's host is never resolved by tsign: the proxy is asked for it.
  auto res =
      tsign::test::run_coro(ioc, good.send(tsign::test::get("http://tsa.invalid:8080/ts?a=1")));
  CHECK(res.body == "via proxy");
  auto seen = proxy.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].target == "http://tsa.invalid:8080/ts?a=1");
  CHECK(seen[0].header("host") == "tsa.invalid:8080");

  Client bad(ioc.get_executor(), through("http://u:wrong@" + at));
  auto m = error_of<TransportError>(ioc, bad, tsign::test::get("http://tsa.invalid/ts"));
  CHECK(m == "the proxy http://" + at +
                 " refused the request to tsa.invalid:80 (HTTP 407 Proxy Authentication Required: "
                 "check the user and password in http_proxy)");
  CHECK(proxy.requests().size() == 2);  // a 407 is not retried
}

TEST_CASE("https through a proxy that refuses the tunnel: 407 and 403 named, not retried",
          "[proxy][client]") {
  TestServer proxy;
  proxy.set_fallback([](const tsign::test::Request& r) {
    if (r.method != "CONNECT") return Reply::text(400, "CONNECT only");
    auto auth = r.header("proxy-authorization");
    if (!auth) return Reply::text(407, "no");
    // Debian 12's tinyproxy answers a wrong password with 401 (tinyproxy issue 532).
    return Reply::text(auth == "Basic dTpw" ? 403 : 401, "no");
  });
  boost::asio::io_context ioc;
  const std::string at = "127.0.0.1:" + std::to_string(proxy.port());
  Client anonymous(ioc.get_executor(), through("http://" + at));
  auto m = error_of<TransportError>(ioc, anonymous,
                                    tsign::test::get("https://eus.codesigning.azure.net/x"));
  CHECK(m == "the proxy http://" + at +
                 " refused the tunnel to eus.codesigning.azure.net:443 (HTTP 407 Proxy "
                 "Authentication Required: it asks for credentials; write them in HTTPS_PROXY "
                 "as http://user:password@host:port)");
  auto seen = proxy.requests();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].target == "eus.codesigning.azure.net:443");
  Client forbidden(ioc.get_executor(), through("http://u:p@" + at));
  m = error_of<TransportError>(ioc, forbidden, tsign::test::get("https://[2001:db8::1]:8443/"));
  CHECK(m.find("refused the tunnel to [2001:db8::1]:8443 (HTTP 403 Forbidden: it does not "
               "allow this destination") != std::string::npos);
  Client wrong(ioc.get_executor(), through("http://u:wrong@" + at));
  m = error_of<TransportError>(ioc, wrong, tsign::test::get("https://a.example/"));
  CHECK(m == "the proxy http://" + at +
                 " refused the tunnel to a.example:443 (HTTP 401 Unauthorized: check the user and "
                 "password in HTTPS_PROXY)");
  CHECK(proxy.requests().size() == 3);
}

TEST_CASE("a proxy that cannot be reached is named with its variable, and retried",
          "[proxy][client]") {
  boost::asio::io_context ioc;
  std::string at;
  {
    TestServer gone;  // a port that was just free, and is closed again
    at = "127.0.0.1:" + std::to_string(gone.port());
  }
  std::vector<std::string> retries;
  ClientOptions o = through("http://u:s3cret@" + at);
  o.on_retry = [&](const std::string& why) { retries.push_back(why); };
  Client c(ioc.get_executor(), o);
  auto m = error_of<TransportError>(ioc, c, tsign::test::get("https://127.0.0.1:9/"));
  CHECK(m.rfind("cannot reach the proxy http://" + at + " named by HTTPS_PROXY: could not connect",
                0) == 0);
  CHECK(m.find("s3cret") == std::string::npos);
  CHECK(retries.size() == 1);  // like any refused connection
}
