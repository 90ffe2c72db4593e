// HTTP client options for tests against a TestServer: its CA trusted, retries in milliseconds
// (so failure paths do not slow the suite).
#pragma once

#include <chrono>

#include "http/client.hpp"
#include "support/test_server.hpp"

namespace tsign::test {

inline http::ClientOptions fast_client_options() {
  http::ClientOptions o;
  o.retry.base_delay = std::chrono::milliseconds(1);
  o.retry.max_delay = std::chrono::milliseconds(5);
  return o;
}

inline http::ClientOptions fast_client_options(const TestServer& trusted) {
  http::ClientOptions o = fast_client_options();
  o.ca_file = trusted.ca_file().string();
  return o;
}

}  // namespace tsign::test
