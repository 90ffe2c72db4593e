// An in-process Signer for the engine tests: a real signature (the fixtures' local key, so what
// the engine writes verifies with osslsigncode), with what a test needs to steer and watch a run
// around it: how many calls were made and were in flight at once, and a behaviour per call that
// may wait (timers on the run's io_context, never a sleep), throw (a 401, a per-file failure, the
// deadline) or raise a signal. Everything here runs on the run's io thread, one handler at a time.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/error.hpp"
#include "engine/engine.hpp"
#include "signer/local_key.hpp"
#include "signer/signer.hpp"
#include "support/fixtures.hpp"

namespace tsign::test {

namespace asio = boost::asio;

// Waits on the run's io_context until `d` has passed.
inline asio::awaitable<void> wait_for(std::chrono::steady_clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

// A point calls wait at until the test's condition holds: open() lets every waiter (and every
// later one) through, release() only those waiting now. Each waiter's timer lives in its own
// coroutine, so nothing outlives the run's io_context. A waiter still waiting after `patience`
// goes on and is counted in `gave_up`: a test checks that stays 0 rather than hang.
class Gate {
 public:
  explicit Gate(std::chrono::seconds patience = std::chrono::seconds(20)) : patience_(patience) {}
  asio::awaitable<void> wait() {
    if (open_) co_return;
    asio::steady_timer t(co_await asio::this_coro::executor, patience_);
    waiting_.push_back(&t);
    boost::system::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), &t));
    if (!ec) ++gave_up;
  }
  void open() {
    open_ = true;
    release();
  }
  void release() {
    for (auto* t : waiting_) t->cancel();
  }
  int gave_up = 0;

 private:
  std::chrono::seconds patience_;
  bool open_ = false;
  std::vector<asio::steady_timer*> waiting_;
};

struct FakeSignerState {
  int calls = 0;           // sign() calls begun
  int in_flight = 0;       // begun and not yet returned
  int most_in_flight = 0;  // the highest in_flight seen
  int chain_calls = 0;     // certificate_chain() calls
  // What call `n` (1-based, in the order the calls began) does before it signs; null: nothing.
  std::function<asio::awaitable<void>(int n)> behaviour;
};

class FakeSigner : public signer::Signer {
 public:
  explicit FakeSigner(std::shared_ptr<FakeSignerState> state)
      : state_(std::move(state)),
        key_(signer::make_local_key_signer(fixture("leaf.key"), fixture("chain.pem"))) {}

  asio::awaitable<signer::SignResult> sign(Bytes digest, DigestAlg alg) override {
    FakeSignerState& s = *state_;
    const int n = ++s.calls;
    s.most_in_flight = std::max(s.most_in_flight, ++s.in_flight);
    struct Leave {
      FakeSignerState& s;
      ~Leave() { --s.in_flight; }
    } leave{s};
    if (s.behaviour) co_await s.behaviour(n);
    co_return co_await key_->sign(std::move(digest), alg);
  }
  asio::awaitable<std::vector<X509Ptr>> certificate_chain() override {
    ++state_->chain_calls;
    co_return co_await key_->certificate_chain();
  }
  std::string describe() const override { return "fake signer"; }

 private:
  std::shared_ptr<FakeSignerState> state_;
  std::unique_ptr<signer::Signer> key_;
};

// The SignerFactory the engine calls (the seam cli/commands.cpp fills with the real signers);
// `preferred`: the signer's own concurrency, used when Settings::concurrency is 0.
inline engine::SignerFactory fake_signer(std::shared_ptr<FakeSignerState> state,
                                         int preferred = 8) {
  return [state, preferred](engine::Services&) {
    return engine::SignerHandle{std::make_unique<FakeSigner>(state), preferred, nullptr};
  };
}

}  // namespace tsign::test
