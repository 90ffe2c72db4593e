// The per-host pool of http::Client without a server: the throttling window (AIMD) with the
// time passed in, and how slots and idle connections are handed to queued coroutines.
#include <catch2/catch.hpp>

#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>

#include "http/pool.hpp"

using namespace std::chrono_literals;
using tsign::http::Clock;
using tsign::http::Connection;
using tsign::http::HostPool;
using tsign::http::Lease;
using tsign::http::ThrottleWindow;
using tsign::http::Waiter;

namespace {

// A point on a clock the test controls: t(0) is the start of the scenario.
Clock::time_point t(int ms) {
  return Clock::time_point{} + 1h + std::chrono::milliseconds(ms);
}

}  // namespace

TEST_CASE("the window starts at the configured bound and is halved by throttling, down to 1",
          "[http][pool][adaptive]") {
  ThrottleWindow w(32);
  CHECK(w.limit() == 32);
  CHECK(w.lowest() == 0);  // never cut
  int now = 0;
  for (std::size_t expected : {16u, 8u, 4u, 2u, 1u, 1u}) {
    now += 10;
    CHECK(w.on_throttled(t(now), t(now)));
    CHECK(w.limit() == expected);
  }
  CHECK(w.throttled() == 6);
  CHECK(w.lowest() == 1);
  CHECK(w.max() == 32);

  ThrottleWindow odd(7);
  odd.on_throttled(t(0), t(0));
  CHECK(odd.limit() == 3);  // halved and rounded down
}

TEST_CASE("a burst of throttling answers to attempts in flight together cuts the window once",
          "[http][pool][adaptive]") {
  ThrottleWindow w(16);
  // Eight attempts start together at t=0; the service refuses them one after the other.
  CHECK(w.on_throttled(t(0), t(5)));
  for (int i = 1; i < 8; ++i) CHECK_FALSE(w.on_throttled(t(0), t(5 + i)));
  CHECK(w.limit() == 8);
  CHECK(w.throttled() == 8);  // all counted for the report, one cut
  // An attempt that started after the cut is a new signal.
  CHECK(w.on_throttled(t(6), t(20)));
  CHECK(w.limit() == 4);
  // One that started exactly at the cut too (it was sent with the cut window).
  CHECK(w.on_throttled(t(20), t(30)));
  CHECK(w.limit() == 2);
  CHECK(w.lowest() == 2);
}

TEST_CASE("successes grow the window by about one per window's worth, up to the bound",
          "[http][pool][adaptive]") {
  ThrottleWindow w(6);
  CHECK_FALSE(w.on_success());  // at the bound already: nothing to grow
  w.on_throttled(t(0), t(0));
  REQUIRE(w.limit() == 3);
  // From 3 (+1/3, +1/3.33, ...): 4 after four successes, not before.
  for (int i = 0; i < 3; ++i) CHECK(w.on_success());
  CHECK(w.limit() == 3);
  CHECK(w.on_success());
  CHECK(w.limit() == 4);
  // Back to the bound of 6 in about 4 + 5 more successes, and never beyond it.
  int successes = 0;
  while (w.on_success()) ++successes;
  CHECK(w.limit() == 6);
  CHECK(successes >= 8);
  CHECK(successes <= 11);
  CHECK_FALSE(w.on_success());
  CHECK(w.lowest() == 3);  // the report keeps the lowest point
}

TEST_CASE("a full pool queues coroutines and hands slots over first come, first served",
          "[http][pool]") {
  boost::asio::io_context ioc;  // only for the waiters' timers; never run
  HostPool pool(2);
  std::optional<Lease> a(std::in_place);
  Lease b;
  REQUIRE(pool.try_take(*a));
  REQUIRE(pool.try_take(b));
  CHECK(pool.busy == 2);
  CHECK(pool.open == 2);
  Lease c;
  CHECK_FALSE(pool.try_take(c));

  Waiter first(ioc.get_executor(), pool), second(ioc.get_executor(), pool);
  pool.enqueue(first);
  pool.enqueue(second);

  // `a` ends with a reusable connection: the oldest waiter gets it, with the slot.
  a->conn = std::make_unique<Connection>();
  Connection* reused = a->conn.get();
  a->reusable = true;
  a.reset();
  CHECK(pool.busy == 2);
  CHECK(pool.waiters.size() == 1);
  Lease got_first;
  REQUIRE(first.claim(got_first));
  CHECK(got_first.conn.get() == reused);

  // The pool is still full: a coroutine that did not wait gets nothing.
  Lease late;
  CHECK_FALSE(pool.try_take(late));

  // `b` ends without a reusable connection: the next waiter gets the right to open one.
  b.give_back();
  CHECK(second.slot);
  CHECK(pool.open == 2);  // one closed, one to be opened
  Lease got_second;
  REQUIRE(second.claim(got_second));
  CHECK(got_second.conn == nullptr);
  CHECK(pool.waiters.empty());
  CHECK(pool.busy == 2);
}

TEST_CASE("after a cut, released slots go to waiters only once fewer are busy than allowed",
          "[http][pool][adaptive]") {
  boost::asio::io_context ioc;
  HostPool pool(4);
  std::optional<Lease> held[4];
  for (auto& l : held) REQUIRE(pool.try_take(l.emplace()));
  pool.on_throttled(t(0), t(1));
  REQUIRE(pool.limit() == 2);
  Waiter w(ioc.get_executor(), pool), w2(ioc.get_executor(), pool);
  pool.enqueue(w);
  pool.enqueue(w2);
  held[0].reset();  // 3 busy, 2 allowed: nobody is admitted
  held[1].reset();  // 2 busy, 2 allowed: still nobody
  CHECK(w.queued);
  Lease none;
  CHECK_FALSE(w.claim(none));
  // Successes widen the window again (2 -> 3 after three), and the widening admits a waiter.
  pool.on_success();
  pool.on_success();
  CHECK(w.queued);
  pool.on_success();
  REQUIRE(pool.limit() == 3);
  CHECK_FALSE(w.queued);
  CHECK(w2.queued);
  Lease got;
  CHECK(w.claim(got));
  CHECK(pool.busy == 3);
  held[2].reset();  // 2 busy, 3 allowed: the next waiter gets the slot
  CHECK_FALSE(w2.queued);
  Lease got2;
  CHECK(w2.claim(got2));
  CHECK(pool.busy == 3);
}

TEST_CASE("a waiter that goes away gives back its place or its slot", "[http][pool]") {
  boost::asio::io_context ioc;
  HostPool pool(1);
  Lease held;
  REQUIRE(pool.try_take(held));
  {
    Waiter gone(ioc.get_executor(), pool);  // its coroutine ends while queued
    pool.enqueue(gone);
  }
  CHECK(pool.waiters.empty());
  {
    Waiter handed(ioc.get_executor(), pool);  // handed a slot, never resumed
    pool.enqueue(handed);
    held.give_back();
    CHECK(handed.slot);
    CHECK(pool.busy == 1);
  }
  CHECK(pool.busy == 0);
  CHECK(pool.open == 0);
  Lease next;
  CHECK(pool.try_take(next));
}
