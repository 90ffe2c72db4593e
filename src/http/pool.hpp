// The connection pool of http::Client (client.cpp), per (scheme, host, port): idle keep-alive
// connections, slots for attempts in flight, coroutines queued for a slot, and the adaptive
// window that bounds the slots while the host throttles. Internal to http/; the tests use it to
// drive the window and the slot hand-over without a server.
//
// Threading: as http::Client's -- one io_context thread, no lock. Nothing here waits or reads
// the clock: a waiter's timer is only armed and cancelled, and the time a decision depends on
// is passed in.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/stream_traits.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "http/client.hpp"

namespace tsign::http {

using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

// Adaptive concurrency (AIMD, as TCP congestion control, RFC 5681 §3.1): at most limit()
// attempts are in flight to a host. A throttling answer halves the window, a success grows it by
// one per window's worth of successes, up to max() (the configured bound). Only a throttled
// attempt that started after the last cut cuts again: a burst of 429s for requests that were
// all in flight together counts as one signal, not as one per request.
class ThrottleWindow {
 public:
  explicit ThrottleWindow(std::size_t max);

  std::size_t limit() const;  // at least 1
  std::size_t max() const { return max_; }
  std::size_t throttled() const { return throttled_; }  // throttling answers seen
  std::size_t lowest() const { return lowest_; }        // smallest limit reached (0: never cut)

  // A throttling answer, seen at `now`, to an attempt that started at `attempt_started`.
  // Returns true when it cut the window.
  bool on_throttled(Clock::time_point attempt_started, Clock::time_point now);
  // A success. Returns false when the window was at max() already (nothing changed).
  bool on_success();

 private:
  std::size_t max_;
  double window_;
  Clock::time_point last_cut_{};
  std::size_t throttled_ = 0;
  std::size_t lowest_ = 0;
};

// One connection to the host: exactly one of plain / tls is set (a test's may have neither).
struct Connection {
  std::unique_ptr<boost::beast::tcp_stream> plain;
  std::unique_ptr<TlsStream> tls;
  boost::beast::flat_buffer buffer;  // bytes read past one answer stay here for the next
  boost::beast::tcp_stream& lowest() { return tls ? boost::beast::get_lowest_layer(*tls) : *plain; }
};

struct HostPool;

// One slot of a pool, held for the duration of an attempt.
struct Lease {
  HostPool* pool = nullptr;  // set once a slot is held
  std::unique_ptr<Connection> conn;
  bool reusable = false;  // give `conn` back to the pool's idle ones when the lease ends
  Lease() = default;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();
  // Gives the slot back unused (an idle connection it came with goes back to the pool).
  void give_back();
};

// A coroutine waiting for a slot of a full pool. Lives in that coroutine's frame; its timer
// expires at the wait's limit and is cancelled when a slot is handed over.
struct Waiter {
  Waiter(const boost::asio::any_io_executor& ex, HostPool& p) : timer(ex), pool(p) {}
  ~Waiter();
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  // After the timer fired or was cancelled: moves a handed-over slot (and connection) into
  // `lease` and returns true; false when none was handed over (the wait timed out).
  bool claim(Lease& lease);

  boost::asio::steady_timer timer;
  HostPool& pool;
  std::unique_ptr<Connection> conn;  // handed-over idle connection, or
  bool slot = false;                 // the right to open a new one
  bool queued = false;
};

struct HostPool {
  explicit HostPool(std::size_t max_slots = 1) : window(max_slots) {}

  std::vector<std::unique_ptr<Connection>> idle;  // most recently used last
  std::size_t open = 0;                           // idle + in use (+ being opened)
  std::size_t busy = 0;                           // slots held by attempts
  std::deque<Waiter*> waiters;                    // first come, first served
  ThrottleWindow window;

  std::size_t limit() const { return window.limit(); }

  // Takes a slot at once (the most recently used idle connection with it, if any) when nobody
  // is queued and the window allows: returns true with `lease` holding it. Else false.
  bool try_take(Lease& lease);
  // Queues `w` for the next free slot (admit() hands it over).
  void enqueue(Waiter& w);
  // See ThrottleWindow; a success that widens the window admits waiters.
  void on_throttled(Clock::time_point attempt_started, Clock::time_point now) {
    window.on_throttled(attempt_started, now);
  }
  void on_success() {
    if (window.on_success()) admit();
  }
  // Gives back a slot: with its connection when it can be reused, else empty. A waiter gets the
  // slot directly (so a coroutine that did not wait cannot overtake it) unless the window has
  // shrunk below the slots in use.
  void release(std::unique_ptr<Connection> c);
  // Hands free slots to waiters, oldest first, while the window allows.
  void admit();
};

}  // namespace tsign::http
