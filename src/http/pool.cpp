// The per-host connection pool and its throttling window (pool.hpp). The window is AIMD as in
// TCP congestion control (RFC 5681 §3.1), applied to attempts in flight instead of segments.
#include "http/pool.hpp"

#include <algorithm>
#include <cmath>

namespace tsign::http {

ThrottleWindow::ThrottleWindow(std::size_t max) : max_(max), window_(static_cast<double>(max)) {}

std::size_t ThrottleWindow::limit() const {
  return std::max<std::size_t>(1, static_cast<std::size_t>(window_));
}

bool ThrottleWindow::on_throttled(Clock::time_point attempt_started, Clock::time_point now) {
  ++throttled_;
  if (attempt_started < last_cut_) return false;
  window_ = std::max(1.0, std::floor(window_ / 2));
  last_cut_ = now;
  lowest_ = lowest_ == 0 ? limit() : std::min(lowest_, limit());
  return true;
}

bool ThrottleWindow::on_success() {
  if (window_ >= static_cast<double>(max_)) return false;
  window_ = std::min(static_cast<double>(max_), window_ + 1.0 / window_);
  return true;
}

Lease::~Lease() {
  if (pool) pool->release(reusable ? std::move(conn) : nullptr);
}

void Lease::give_back() {
  if (pool) pool->release(std::move(conn));
  pool = nullptr;
}

Waiter::~Waiter() {
  if (queued) pool.waiters.erase(std::find(pool.waiters.begin(), pool.waiters.end(), this));
  // Handed a slot but never resumed (the io_context was destroyed first): give the slot back
  // without waking anyone, as nothing will run any more.
  if (conn || slot) {
    --pool.open;
    --pool.busy;
  }
}

bool Waiter::claim(Lease& lease) {
  // Whatever woke us (hand-over or expiry racing with it), a handed-over slot is ours.
  if (!conn && !slot) return false;
  lease.conn = std::move(conn);
  slot = false;
  lease.pool = &pool;
  return true;
}

bool HostPool::try_take(Lease& lease) {
  if (!waiters.empty() || busy >= limit()) return false;
  ++busy;
  if (!idle.empty()) {
    lease.conn = std::move(idle.back());
    idle.pop_back();
  } else {
    ++open;
  }
  lease.pool = this;
  return true;
}

void HostPool::enqueue(Waiter& w) {
  w.queued = true;
  waiters.push_back(&w);
}

void HostPool::release(std::unique_ptr<Connection> c) {
  --busy;
  if (c)
    idle.push_back(std::move(c));
  else
    --open;
  admit();
}

void HostPool::admit() {
  while (!waiters.empty() && busy < limit()) {
    Waiter* w = waiters.front();
    waiters.pop_front();
    w->queued = false;
    if (!idle.empty()) {
      w->conn = std::move(idle.back());
      idle.pop_back();
    } else {
      ++open;
      w->slot = true;
    }
    ++busy;
    w->timer.cancel();
  }
}

}  // namespace tsign::http
