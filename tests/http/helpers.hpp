// Small helpers of the http tests: the coroutine runner (support/coro.hpp) and a stopwatch.
#pragma once

#include <chrono>

#include "support/coro.hpp"

namespace tsign::test {

inline std::chrono::milliseconds elapsed_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0);
}

}  // namespace tsign::test
