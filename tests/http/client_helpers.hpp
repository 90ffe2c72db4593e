// The http::Client tests' shared helpers: client options with few, fast retries, and ways to
// send requests and catch what they throw.
#pragma once

#include <future>
#include <string>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include "helpers.hpp"
#include "http/client.hpp"
#include "support/fast_client.hpp"
#include "support/test_server.hpp"

namespace tsign::test {

// Fast retries, and few: failure paths do not slow the suite.
inline http::ClientOptions fast_options() {
  http::ClientOptions o = fast_client_options();
  o.retry.max_attempts = 3;
  return o;
}

inline http::ClientOptions trusting(const TestServer& s) {
  http::ClientOptions o = fast_client_options(s);
  o.retry.max_attempts = 3;
  return o;
}

inline http::Request get(const std::string& url) {
  http::Request r;
  r.url = url;
  return r;
}

// Starts `n` POSTs to `url` at once (bodies "0", "1", ...); they run when `ioc` runs.
inline std::vector<std::future<http::Response>> post_many(boost::asio::io_context& ioc,
                                                          http::Client& client,
                                                          const std::string& url, int n) {
  std::vector<std::future<http::Response>> results;
  for (int i = 0; i < n; ++i) {
    http::Request r;
    r.method = "POST";
    r.url = url;
    r.body = std::to_string(i);
    results.push_back(boost::asio::co_spawn(ioc, client.send(r), boost::asio::use_future));
  }
  return results;
}

template <class E>
std::string error_of(boost::asio::io_context& ioc, http::Client& c, http::Request r) {
  try {
    run_coro(ioc, c.send(std::move(r)));
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no exception of the expected type");
  return {};
}

}  // namespace tsign::test
