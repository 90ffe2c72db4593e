// Runs a coroutine to completion on a test's io_context, as the product runs its network code:
// one thread, the caller's. The io_context returns when everything it holds has settled, so a
// test needs no sleeping and no polling. The one coroutine runner of the tests.
#pragma once

#include <future>
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace tsign::test {

// Returns the coroutine's value (T may be void) or rethrows its exception. `io` may have run
// before (it is restarted).
template <typename T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> a) {
  auto f = boost::asio::co_spawn(io, std::move(a), boost::asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

// The same on an io_context of its own.
template <typename T>
T run_coro(boost::asio::awaitable<T> a) {
  boost::asio::io_context io;
  return run_coro(io, std::move(a));
}

}  // namespace tsign::test
