// http::Client against the scripted loopback server: where a request may go (URLs), the
// authorization asked for before every attempt, when a POST is (not) sent again, and answers
// that are not usable.
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

TEST_CASE("bad URLs are input errors", "[http][client]") {
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  CHECK_THROWS_AS(run_coro(ioc, client.send(get("ftp://example.com/"))), InputError);
  CHECK_THROWS_AS(run_coro(ioc, client.send(get("not a url"))), InputError);
  CHECK_THROWS_AS(run_coro(ioc, client.send(get("/relative/path"))), InputError);
}

TEST_CASE("a URL goes only to the host and port written, or nowhere", "[http][client]") {
  // Boost.URL 1.81 ends a host at a leading dotted quad: without the check, the first URL would
  // go to 127.0.0.1:80 and the second to the server with the request target "x/".
  TestServer server;
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  std::string port = std::to_string(server.port());
  for (std::string url : {"http://127.0.0.1x:" + port + "/", "http://127.0.0.1:" + port + "x/",
                          "http://127.0.0.1.example.com:" + port + "/",
                          "http://127.0.0.1%40example.com:" + port + "/"}) {
    INFO(url);
    CHECK_THAT(error_of<InputError>(ioc, client, get(url)), Catch::Contains(url));
  }
  CHECK(server.connections() == 0);

  CHECK(http::authority_as_written("https://127.0.0.1:8443/a?b#c"));
  CHECK(http::authority_as_written("https://[::1]:8443"));
  CHECK(http::authority_as_written("https://eus.codesigning.azure.net/"));
  CHECK(http::authority_as_written("https://u:p@host:1/"));  // read as written; callers judge
  CHECK_FALSE(http::authority_as_written("https://127.0.0.1.evil.com/"));
  CHECK_FALSE(http::authority_as_written("https://127.0.0.1:8443x/"));
  CHECK_FALSE(http::authority_as_written("https://127.0.0.1:8443:1/"));
  CHECK_FALSE(http::authority_as_written("not a url"));
}

// ---------------------------------------------------------------- per-attempt headers

TEST_CASE("authorize is asked before every attempt and its headers go with that attempt",
          "[http][client][retry][authorize]") {
  TestServer server;
  // Closed after the 429, so that the drop is on a fresh connection: a failed attempt, not the
  // silent replacement of a stale pooled one (which keeps the attempt and its headers).
  server.enqueue("/a", {.status = 429, .headers = {{"Retry-After", "0"}}, .close = true});
  server.enqueue("/a", Reply::failure(Fault::drop));
  server.enqueue("/a", Reply::text(503, "busy"));
  server.enqueue("/a", Reply::text(200, "done"));
  asio::io_context ioc;
  auto opts = fast_options();
  opts.retry.max_attempts = 4;
  Client client(ioc.get_executor(), opts);
  int asked = 0;
  auto r = get(server.url("/a"));
  r.authorize = [&]() -> asio::awaitable<http::Authorization> {
    http::Authorization a;
    a.headers = {{"Authorization", "Bearer token-" + std::to_string(++asked)}};
    co_return a;
  };
  CHECK(run_coro(ioc, client.send(r)).body == "done");
  auto seen = server.requests("/a");
  REQUIRE(seen.size() == 4);
  for (std::size_t i = 0; i < seen.size(); ++i)
    CHECK(seen[i].header("authorization") == "Bearer token-" + std::to_string(i + 1));
  CHECK(asked == 4);
}

TEST_CASE("headers that went stale while waiting for a connection are asked for again",
          "[http][client][authorize]") {
  TestServer server;
  server.on("/slow", [](const Request&) {
    auto r = Reply::text(200, "ok");
    r.delay = 150ms;
    return r;
  });
  asio::io_context ioc;
  auto opts = fast_options();
  opts.max_connections_per_host = 1;
  Client client(ioc.get_executor(), opts);
  int asked = 0;
  auto r = get(server.url("/slow"));
  // Each "token" is good for 50 ms: the second request waits ~150 ms for the connection.
  r.authorize = [&]() -> asio::awaitable<http::Authorization> {
    http::Authorization a;
    a.headers = {{"Authorization", "Bearer token-" + std::to_string(++asked)}};
    a.valid_until = http::Clock::now() + 50ms;
    co_return a;
  };
  auto first = asio::co_spawn(ioc, client.send(r), asio::use_future);
  auto second = asio::co_spawn(ioc, client.send(r), asio::use_future);
  ioc.run();
  CHECK(first.get().status == 200);
  CHECK(second.get().status == 200);
  auto seen = server.requests("/slow");
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].header("authorization") == "Bearer token-1");
  // Not token-2, taken before the wait: a new one after it (token-3, or later on a machine so
  // loaded that token-3 went stale too).
  CHECK(seen[1].header("authorization") != "Bearer token-2");
  CHECK(seen[1].header("authorization").value_or("").starts_with("Bearer token-"));
  CHECK(asked >= 3);
}

// ---------------------------------------------------------------- re-sending (RFC 9110 §9.2.2)

TEST_CASE("a POST is not sent again once the server may have acted on it",
          "[http][client][retry][idempotent]") {
  TestServer server;
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());  // 3 attempts
  auto post = [&](const std::string& path) {
    http::Request r;
    r.method = "POST";
    r.url = server.url(path);
    r.body = "{}";
    return r;
  };

  SECTION("closed without an answer after the request was written") {
    server.on("/drop", [](const Request&) { return Reply::failure(Fault::drop); });
    auto m = error_of<http::TransportError>(ioc, client, post("/drop"));
    CHECK_THAT(m, Catch::Contains("closed the connection without answering") &&
                      Catch::Contains("not sent again"));
    CHECK(server.requests("/drop").size() == 1);
  }
  SECTION("cut off mid-answer") {
    server.on("/mid", [](const Request&) { return Reply::failure(Fault::drop_mid_body); });
    CHECK_THAT(error_of<http::TransportError>(ioc, client, post("/mid")),
               Catch::Contains("not sent again"));
    CHECK(server.requests("/mid").size() == 1);
  }
  SECTION("no answer in time") {
    server.on("/late", [](const Request&) { return Reply::failure(Fault::none, 500ms); });
    auto r = post("/late");
    r.timeout = 100ms;
    CHECK_THAT(error_of<http::TransportError>(ioc, client, r), Catch::Contains("not sent again"));
    CHECK(server.requests("/late").size() == 1);
  }
  SECTION("500, 502, 504 come back at once; 408, 429, 503 are retried") {
    for (unsigned status : {500u, 502u, 504u}) {
      std::string path = "/s" + std::to_string(status);
      server.on(path, [status](const Request&) { return Reply::text(status, "no"); });
      CHECK(run_coro(ioc, client.send(post(path))).status == status);
      CHECK(server.requests(path).size() == 1);
    }
    for (unsigned status : {408u, 429u, 503u}) {
      std::string path = "/r" + std::to_string(status);
      server.enqueue(path, {.status = status, .headers = {{"Retry-After", "0"}}});
      server.enqueue(path, Reply::text(200, "taken"));
      CHECK(run_coro(ioc, client.send(post(path))).body == "taken");
      CHECK(server.requests(path).size() == 2);
    }
  }
  SECTION("on a kept-alive connection that closes when the request arrives") {
    server.enqueue("/k", Reply::text(200, "first"));
    server.enqueue("/k", Reply::failure(Fault::drop));
    server.enqueue("/k", Reply::text(200, "second"));
    CHECK(run_coro(ioc, client.send(post("/k"))).body == "first");
    CHECK_THAT(error_of<http::TransportError>(ioc, client, post("/k")),
               Catch::Contains("not sent again"));
    CHECK(server.requests("/k").size() == 2);
  }
  SECTION("idempotent = true: sent again like a GET") {
    server.enqueue("/i", Reply::failure(Fault::drop));
    server.enqueue("/i", Reply::text(200, "again"));
    auto r = post("/i");
    r.idempotent = true;
    CHECK(run_coro(ioc, client.send(r)).body == "again");
    CHECK(server.requests("/i").size() == 2);
  }
}

TEST_CASE("a pooled connection the server closed while idle is not used for a POST",
          "[http][client][idempotent]") {
  // A bare HTTP/1.1 server that answers one request per connection with a keep-alive answer,
  // then closes: the idle timeout of a real server, seen from the client.
  asio::io_context server_io;
  asio::ip::tcp::acceptor acceptor(server_io, {asio::ip::make_address("127.0.0.1"), 0});
  const auto port = acceptor.local_endpoint().port();
  std::promise<void> first_closed;
  std::atomic<int> requests{0};
  std::thread server([&] {
    for (int i = 0; i < 2; ++i) {
      asio::ip::tcp::socket s(server_io);
      acceptor.accept(s);
      asio::streambuf buf;
      boost::system::error_code ec;
      asio::read_until(s, buf, "\r\n\r\n", ec);
      std::string head(asio::buffers_begin(buf.data()), asio::buffers_end(buf.data()));
      auto cl = head.find("Content-Length: ");
      std::size_t want = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
      std::size_t have = buf.size() - (head.find("\r\n\r\n") + 4);
      if (want > have) asio::read(s, buf, asio::transfer_exactly(want - have), ec);
      ++requests;
      asio::write(s, asio::buffer(std::string("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")),
                  ec);
      s.close();
      if (i == 0) first_closed.set_value();
    }
  });
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  http::Request r;
  r.method = "POST";
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/sign";
  r.body = "{}";
  CHECK(run_coro(ioc, client.send(r)).body == "ok");
  first_closed.get_future().wait();
  // Without the check before use, this POST would be written to the closed connection and then
  // not be sent again (it might have been acted on): a failure for nothing.
  std::string second;
  try {
    second = run_coro(ioc, client.send(r)).body;
  } catch (const std::exception& e) {
    second = e.what();
    // The server still waits for a second connection: give it one that says nothing.
    asio::ip::tcp::socket poke(ioc);
    boost::system::error_code ec;
    poke.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  }
  server.join();
  CHECK(second == "ok");
  CHECK(requests == 2);
}

TEST_CASE("an unusable 2xx answer to an idempotent request is asked for again",
          "[http][client][retry][usable]") {
  TestServer server;
  server.enqueue("/poll", Reply::json(200, R"({"status":"Succ)"));
  server.enqueue("/poll", Reply::json(200, R"({"status":"Succeeded"})"));
  asio::io_context ioc;
  Client client(ioc.get_executor(), fast_options());
  auto complete = [](const http::Response& res) { return res.body.ends_with("}"); };
  auto r = get(server.url("/poll"));
  r.usable = complete;
  CHECK(run_coro(ioc, client.send(r)).body == R"({"status":"Succeeded"})");
  CHECK(server.requests("/poll").size() == 2);

  // Within the failure budget: the last one comes back for the caller to report.
  server.on("/bad", [](const Request&) { return Reply::json(200, "{"); });
  auto bad = get(server.url("/bad"));
  bad.usable = complete;
  CHECK(run_coro(ioc, client.send(bad)).body == "{");
  CHECK(server.requests("/bad").size() == 3);

  // A POST's answer is never a reason to send it again.
  server.on("/post", [](const Request&) { return Reply::json(202, "{"); });
  http::Request post;
  post.method = "POST";
  post.url = server.url("/post");
  post.usable = complete;
  CHECK(run_coro(ioc, client.send(post)).body == "{");
  CHECK(server.requests("/post").size() == 1);
}
