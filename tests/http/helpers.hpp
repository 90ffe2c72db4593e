// Small helpers of the http tests: drive a coroutine to completion on a test's io_context.
#pragma once

#include <chrono>
#include <future>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace tsign::test {

// Runs `a` on `ioc` (single thread, like the product) until everything settled; returns its
// value or rethrows its exception.
template <class T>
T run_sync(boost::asio::io_context& ioc, boost::asio::awaitable<T> a) {
  auto f = boost::asio::co_spawn(ioc, std::move(a), boost::asio::use_future);
  ioc.restart();
  ioc.run();
  return f.get();
}

inline std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace tsign::test
