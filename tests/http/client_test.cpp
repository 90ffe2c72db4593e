// http::Client against the scripted loopback server: plain and TLS, keep-alive, the pool bound
// under many concurrent coroutines, the retry policy, certificate checks, caps and the deadline.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include <boost/asio/buffers_iterator.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>

#include "client_helpers.hpp"
#include "common/error.hpp"
#include "http/client.hpp"
#include "support/fast_client.hpp"
#include "support/test_server.hpp"

namespace asio = boost::asio;
using namespace std::chrono_literals;
using namespace tsign;
using namespace tsign::test;
using http::Client;
using http::ClientOptions;

TEST_CASE("GET and POST over plain HTTP", "[http][client]") {
  TestServer server;
  server.on("/echo", [](const Request& r) { return Reply::text(200, r.method + ":" + r.body); });
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());

  auto res = run_coro(ioc, client.send(get(server.url("/echo?x=1"))));
  CHECK(res.status == 200);
  CHECK(res.body == "GET:");
  CHECK(res.header("content-type") == "text/plain; charset=utf-8");

  http::Request post;
  post.method = "POST";
  post.url = server.url("/echo");
  post.headers = {{"Content-Type", "application/json"}, {"x-correlation-id", "abc"}};
  post.body = R"({"a":1})";
  res = run_coro(ioc, client.send(post));
  CHECK(res.body == R"(POST:{"a":1})");

  auto seen = server.requests();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].target == "/echo?x=1");
  CHECK(seen[0].path == "/echo");
  CHECK(seen[0].header("host") == "127.0.0.1:" + std::to_string(server.port()));
  CHECK(seen[0].header("user-agent") == std::string("tsign/") + TSIGN_VERSION);
  CHECK(seen[1].method == "POST");
  CHECK(seen[1].header("content-type") == "application/json");
  CHECK(seen[1].header("x-correlation-id") == "abc");
  CHECK(seen[1].header("content-length") == "7");
  CHECK(seen[1].body == R"({"a":1})");
  CHECK(server.wait_for_requests(2, 1s));
  CHECK_FALSE(server.wait_for_requests(3, 10ms));
}

TEST_CASE("HTTPS with the server's CA trusted, by IP address and by name", "[http][client][tls]") {
  TestServer server({.tls = true});
  server.on("/", [](const Request&) { return Reply::text(200, "secure"); });
  asio::io_context ioc;
  Client client(ioc.get_executor(), trusting(server));
  CHECK(run_coro(ioc, client.send(get(server.url("/")))).body == "secure");
  CHECK(run_coro(ioc, client.send(get(server.url("/", "localhost")))).body == "secure");
}

TEST_CASE("keep-alive: sequential requests share one connection", "[http][client]") {
  for (bool tls : {false, true}) {
    TestServer server({.tls = tls});
    server.on("/k", [](const Request&) { return Reply::text(200, "ok"); });
    asio::io_context ioc;
    Client client(ioc.get_executor(), trusting(server));
    for (int i = 0; i < 5; ++i)
      CHECK(run_coro(ioc, client.send(get(server.url("/k")))).status == 200);
    CHECK(server.requests().size() == 5);
    CHECK(server.connections() == 1);
  }
}

TEST_CASE("a server that asks to close gets a new connection next time", "[http][client]") {
  TestServer server;
  server.on("/c", [](const Request&) {
    auto r = Reply::text(200, "bye");
    r.close = true;
    return r;
  });
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  for (int i = 0; i < 3; ++i)
    CHECK(run_coro(ioc, client.send(get(server.url("/c")))).body == "bye");
  CHECK(server.connections() == 3);
}

TEST_CASE("200 concurrent requests succeed within the per-host connection bound",
          "[http][client][tls]") {
  TestServer server({.tls = true});
  // A short delay keeps requests in flight together, so the bound is really exercised.
  server.on("/sign", [](const Request& r) {
    auto reply = Reply::text(200, r.body);
    reply.delay = 2ms;
    return reply;
  });
  asio::io_context ioc;
  auto opts = trusting(server);
  opts.max_connections_per_host = 6;
  Client client(ioc.get_executor(), opts);

  auto results = post_many(ioc, client, server.url("/sign"), 200);
  ioc.run();
  for (int i = 0; i < 200; ++i) {
    auto res = results[static_cast<std::size_t>(i)].get();
    CHECK(res.status == 200);
    CHECK(res.body == std::to_string(i));  // each answer reached its own caller
  }
  CHECK(server.requests().size() == 200);
  CHECK(server.connections() <= 6);
  CHECK(server.max_open_connections() <= 6);
  CHECK(server.connections() >= 2);  // they really were concurrent
}

namespace {

// A service at capacity: at most `capacity` requests are served at once (each for `service`);
// one more is answered 429 at once. Returns the 429s it gave.
struct CapacityService {
  std::size_t capacity;
  std::chrono::milliseconds service;
  std::mutex m;
  std::vector<std::chrono::steady_clock::time_point> busy_until;
  std::size_t refused = 0;
  Reply operator()(const Request&) {
    std::lock_guard lock(m);
    auto now = std::chrono::steady_clock::now();
    std::erase_if(busy_until, [now](auto t) { return t <= now; });
    if (busy_until.size() >= capacity) {
      ++refused;
      return Reply::text(429, "at capacity");
    }
    busy_until.push_back(now + service);
    auto r = Reply::text(200, "ok");
    r.delay = service;
    return r;
  }
};

struct ThrottledRun {
  std::size_t ok = 0, refused = 0;
  http::ClientStats stats;
};

ThrottledRun run_against_capacity(bool adaptive) {
  TestServer server;
  auto svc = std::make_shared<CapacityService>();
  svc->capacity = 3;
  svc->service = 40ms;
  server.on("/sign", [svc](const Request& r) { return (*svc)(r); });
  asio::io_context ioc;
  auto opts = fast_options();
  opts.max_connections_per_host = 32;
  opts.adaptive_concurrency = adaptive;
  Client client(ioc.get_executor(), opts);
  auto results = post_many(ioc, client, server.url("/sign"), 32);
  ioc.run();
  ThrottledRun out;
  for (auto& f : results) out.ok += f.get().status == 200 ? 1 : 0;
  out.refused = svc->refused;
  out.stats = client.stats();
  return out;
}

}  // namespace

TEST_CASE("a throttling service: the client paces itself down to what the service takes",
          "[http][client][retry][adaptive]") {
  auto adaptive = run_against_capacity(true);
  // Every request gets through within the throttling budget ...
  CHECK(adaptive.ok == 32);
  CHECK(adaptive.stats.throttled == adaptive.refused);
  // ... because the window was cut to about the service's capacity (3) ...
  CHECK(adaptive.stats.lowest_limit >= 1);
  CHECK(adaptive.stats.lowest_limit <= 4);
  CHECK(adaptive.stats.limit_of_host == 32);

  // ... where a fixed window of 32 keeps hammering it: many more 429s for the same work.
  auto fixed = run_against_capacity(false);
  INFO("429s: adaptive " << adaptive.refused << ", fixed " << fixed.refused);
  CHECK(fixed.stats.lowest_limit == 0);
  CHECK(adaptive.refused * 3 < fixed.refused);
}

TEST_CASE("throttling answers have their own, larger retry budget", "[http][client][retry]") {
  TestServer server;
  server.on("/busy", [](const Request&) { return Reply::text(429, "slow down"); });
  asio::io_context ioc;
  auto opts = fast_options();  // 3 attempts while failing
  opts.retry.max_throttled_attempts = 7;
  Client client(ioc.get_executor(), opts);
  auto res = run_coro(ioc, client.send(get(server.url("/busy"))));
  CHECK(res.status == 429);
  CHECK(server.requests().size() == 7);
}

TEST_CASE("waiting for a free connection does not eat the per-attempt timeout", "[http][client]") {
  TestServer server;
  server.on("/q", [](const Request&) {
    auto r = Reply::text(200, "ok");
    r.delay = 100ms;
    return r;
  });
  asio::io_context ioc;
  auto opts = fast_options();
  opts.max_connections_per_host = 1;
  opts.retry.max_attempts = 1;
  Client client(ioc.get_executor(), opts);
  auto r = get(server.url("/q"));
  r.timeout = 350ms;  // each answer fits; five in a row on one connection do not
  std::vector<std::future<http::Response>> results;
  for (int i = 0; i < 5; ++i)
    results.push_back(asio::co_spawn(ioc, client.send(r), asio::use_future));
  ioc.run();
  for (auto& f : results) CHECK(f.get().status == 200);
  CHECK(server.requests().size() == 5);
  CHECK(server.connections() == 1);
}

TEST_CASE("429 with Retry-After is retried once, after the time asked", "[http][client][retry]") {
  TestServer server;
  server.enqueue("/t", {.status = 429, .headers = {{"Retry-After", "1"}}});
  server.enqueue("/t", Reply::text(200, "done"));
  asio::io_context ioc;
  auto opts = fast_options();
  std::vector<std::string> retries;
  opts.on_retry = [&](const std::string& m) { retries.push_back(m); };
  Client client(ioc.get_executor(), opts);

  auto t0 = std::chrono::steady_clock::now();
  auto res = run_coro(ioc, client.send(get(server.url("/t?secret=s3cr3t"))));
  CHECK(res.status == 200);
  CHECK(res.body == "done");
  CHECK(elapsed_since(t0) >= 950ms);
  CHECK(server.requests().size() == 2);
  REQUIRE(retries.size() == 1);
  CHECK_THAT(retries[0], Catch::Contains("HTTP 429"));
  CHECK_THAT(retries[0], !Catch::Contains("s3cr3t"));  // no query string in logs
}

TEST_CASE("503 every time: gives up after max_attempts and returns the 503",
          "[http][client][retry]") {
  TestServer server;
  server.on("/busy", [](const Request&) { return Reply::text(503, "busy"); });
  asio::io_context ioc;
  auto opts = fast_options();
  opts.retry.max_attempts = 4;
  Client client(ioc.get_executor(), opts);
  auto res = run_coro(ioc, client.send(get(server.url("/busy"))));
  CHECK(res.status == 503);
  CHECK(res.body == "busy");
  CHECK(server.requests().size() == 4);

  // With a Retry-After the service paces the request: the throttling budget applies.
  opts.retry.max_throttled_attempts = 7;
  Client paced_client(ioc.get_executor(), opts);
  server.on("/paced", [](const Request&) {
    return Reply{.status = 503, .headers = {{"Retry-After", "0"}}, .body = "busy"};
  });
  CHECK(run_coro(ioc, paced_client.send(get(server.url("/paced")))).status == 503);
  CHECK(server.requests("/paced").size() == 7);
}

TEST_CASE("non-retryable statuses come back at once", "[http][client][retry]") {
  TestServer server;
  server.on("/nf", [](const Request&) { return Reply::json(404, R"({"errorDetail":{}})"); });
  server.on("/busy", [](const Request&) { return Reply::text(503, "busy"); });
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  CHECK(run_coro(ioc, client.send(get(server.url("/nf")))).status == 404);
  CHECK(server.requests("/nf").size() == 1);

  auto once = get(server.url("/busy"));
  once.retry = false;
  CHECK(run_coro(ioc, client.send(once)).status == 503);
  CHECK(server.requests("/busy").size() == 1);
}

TEST_CASE("a dropped connection is retried", "[http][client][retry]") {
  TestServer server;
  server.enqueue("/d", Reply::failure(Fault::drop));
  server.enqueue("/d", Reply::failure(Fault::drop_mid_body));
  server.enqueue("/d", Reply::text(200, "third time"));
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  auto res = run_coro(ioc, client.send(get(server.url("/d"))));
  CHECK(res.body == "third time");
  CHECK(server.requests().size() == 3);
}

TEST_CASE("transport failures after the last attempt name the host and what happened",
          "[http][client][retry]") {
  TestServer server;
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());  // 3 attempts
  const std::string host = "127.0.0.1:" + std::to_string(server.port());

  server.on("/mid", [](const Request&) { return Reply::failure(Fault::drop_mid_body); });
  auto msg = error_of<http::TransportError>(ioc, client, get(server.url("/mid")));
  CHECK(msg == host + " closed the connection mid-response");
  CHECK(server.requests("/mid").size() == 3);

  server.on("/drop", [](const Request&) { return Reply::failure(Fault::drop); });
  msg = error_of<http::TransportError>(ioc, client, get(server.url("/drop")));
  CHECK(msg == host + " closed the connection without answering");
  CHECK(server.requests("/drop").size() == 3);

  // Not HTTP: a server bug, not a passing fault; not retried.
  server.on("/bad", [](const Request&) { return Reply::failure(Fault::malformed); });
  msg = error_of<http::TransportError>(ioc, client, get(server.url("/bad")));
  CHECK_THAT(msg, Catch::StartsWith(host + " sent a malformed HTTP answer"));
  CHECK(server.requests("/bad").size() == 1);
}

TEST_CASE("a stale pooled connection is replaced without spending an attempt", "[http][client]") {
  TestServer server;
  server.enqueue("/s", Reply::text(200, "first"));
  // The server closes the kept-alive connection when the second request arrives on it, the
  // way a server's idle timeout looks from the client.
  server.enqueue("/s", Reply::failure(Fault::drop));
  server.enqueue("/s", Reply::text(200, "second"));
  asio::io_context ioc;
  auto opts = fast_options();
  opts.retry.max_attempts = 1;  // no retries at all: only the stale-connection replacement
  Client client(ioc.get_executor(), opts);
  CHECK(run_coro(ioc, client.send(get(server.url("/s")))).body == "first");
  CHECK(run_coro(ioc, client.send(get(server.url("/s")))).body == "second");
  CHECK(server.connections() == 2);

  // A fresh connection that drops is a real failure, not replaced.
  server.enqueue("/s", Reply::failure(Fault::drop));
  server.enqueue("/s", Reply::failure(Fault::drop));
  auto msg = error_of<http::TransportError>(ioc, client, get(server.url("/s")));
  CHECK_THAT(msg, Catch::Contains("closed the connection without answering"));
}

TEST_CASE("connection refused names host and port", "[http][client]") {
  std::uint16_t port;
  {
    TestServer gone;
    port = gone.port();
  }
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  auto msg = error_of<http::TransportError>(ioc, client,
                                            get("http://127.0.0.1:" + std::to_string(port) + "/"));
  CHECK(msg == "could not connect to 127.0.0.1:" + std::to_string(port) + ": connection refused");
}

TEST_CASE("TLS: a certificate from an untrusted CA is refused, not retried",
          "[http][client][tls]") {
  TestServer server({.tls = true});
  server.on("/", [](const Request&) { return Reply::text(200, "should not be read"); });
  TestCa other("some other root");
  auto other_pem = std::filesystem::temp_directory_path() /
                   ("tsign-other-ca-" + std::to_string(server.port()) + ".pem");
  other.write_pem(other_pem);
  asio::io_context ioc;
  auto opts = fast_options();
  opts.ca_file = other_pem.string();
  Client client(ioc.get_executor(), opts);
  auto msg = error_of<http::TransportError>(ioc, client, get(server.url("/")));
  std::filesystem::remove(other_pem);
  CHECK(msg ==
        "TLS handshake with 127.0.0.1 failed: certificate verify failed (self-signed certificate "
        "in certificate chain)");
  CHECK(server.connections() == 1);
  CHECK(server.requests().empty());
}

TEST_CASE("TLS: a certificate for another host name is refused", "[http][client][tls]") {
  TestServer server({.tls = true, .cert_names = {"other.example"}});
  server.on("/", [](const Request&) { return Reply::text(200, "should not be read"); });
  asio::io_context ioc;
  Client client(ioc.get_executor(), trusting(server));
  auto msg = error_of<http::TransportError>(ioc, client, get(server.url("/", "localhost")));
  CHECK(msg ==
        "TLS handshake with localhost failed: certificate verify failed (hostname mismatch)");
  msg = error_of<http::TransportError>(ioc, client, get(server.url("/")));
  CHECK(msg ==
        "TLS handshake with 127.0.0.1 failed: certificate verify failed (IP address mismatch)");
  CHECK(server.requests().empty());
}

TEST_CASE("an answer over max_response_bytes is refused", "[http][client]") {
  TestServer server;
  server.on("/big", [](const Request&) { return Reply::text(200, std::string(300 * 1024, 'a')); });
  server.on("/stream", [](const Request&) {
    Reply r;
    r.fault = Fault::huge_body;
    r.huge_bytes = std::size_t(1) << 30;  // 1 GiB, streamed: must be cut off early
    return r;
  });
  server.on("/fits", [](const Request&) { return Reply::text(200, std::string(256 * 1024, 'a')); });
  asio::io_context ioc;
  auto opts = fast_options();
  opts.max_response_bytes = 256 * 1024;
  Client client(ioc.get_executor(), opts);
  const std::string host = "127.0.0.1:" + std::to_string(server.port());
  CHECK(run_coro(ioc, client.send(get(server.url("/fits")))).body.size() == 256 * 1024);
  CHECK(error_of<http::TransportError>(ioc, client, get(server.url("/big"))) ==
        host + " answered more than 256 KiB");
  auto t0 = std::chrono::steady_clock::now();
  CHECK(error_of<http::TransportError>(ioc, client, get(server.url("/stream"))) ==
        host + " answered more than 256 KiB");
  CHECK(elapsed_since(t0) < 5s);
  CHECK(server.requests("/stream").size() == 1);  // not retried
}

TEST_CASE("a slow answer times out and is retried", "[http][client][retry]") {
  TestServer server;
  auto slow = Reply::text(200, "late");
  slow.delay = 3s;
  server.enqueue("/slow", slow);
  server.enqueue("/slow", Reply::text(200, "prompt"));
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  auto r = get(server.url("/slow"));
  r.timeout = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  CHECK(run_coro(ioc, client.send(r)).body == "prompt");
  CHECK(elapsed_since(t0) < 2s);
  CHECK(server.requests().size() == 2);
}

TEST_CASE("the run's deadline", "[http][client][deadline]") {
  TestServer server;
  asio::io_context ioc;
  auto opts = fast_options();
  const std::string host = "127.0.0.1:" + std::to_string(server.port());

  SECTION("already passed: DeadlineError before any request") {
    opts.deadline = http::Clock::now() - 1ms;
    Client client(ioc.get_executor(), opts);
    CHECK(error_of<DeadlineError>(ioc, client, get(server.url("/x"))) ==
          "the run's deadline passed while waiting for " + host);
    CHECK(server.requests().empty());
  }
  SECTION("a Retry-After beyond it: DeadlineError at once, not after the wait") {
    server.on("/x", [](const Request&) {
      return Reply{.status = 429, .headers = {{"Retry-After", "30"}}};
    });
    opts.deadline = http::Clock::now() + 5s;
    Client client(ioc.get_executor(), opts);
    auto t0 = std::chrono::steady_clock::now();
    auto msg = error_of<DeadlineError>(ioc, client, get(server.url("/x")));
    CHECK(elapsed_since(t0) < 2500ms);  // neither the 30 s asked for, nor until the deadline
    CHECK_THAT(msg, Catch::StartsWith("the run's deadline passed while waiting for " + host));
    CHECK_THAT(msg, Catch::Contains("HTTP 429"));
  }
  SECTION("a server slower than the deadline: DeadlineError when it passes") {
    server.on("/x", [](const Request&) {
      auto r = Reply::text(200, "too late");
      r.delay = 5s;
      return r;
    });
    opts.deadline = http::Clock::now() + 300ms;
    Client client(ioc.get_executor(), opts);
    auto t0 = std::chrono::steady_clock::now();
    auto r = get(server.url("/x"));  // its own timeout (60 s) is longer: the deadline bounds it
    CHECK(error_of<DeadlineError>(ioc, client, r) ==
          "the run's deadline passed while waiting for " + host);
    CHECK(elapsed_since(t0) < 2s);
  }
}
