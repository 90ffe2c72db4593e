// http::AnyStream (http/any_stream.hpp): a read or write passes on at most kMaxBuffers buffers at
// a time, and the whole-sequence algorithms above it still move every byte, in order. HTTP over
// both kinds of stream is tested through the client and the test server (client_test.cpp).
#include <catch2/catch.hpp>

#include <numeric>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "http/any_stream.hpp"
#include "support/coro.hpp"

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using tsign::http::AnyStream;

namespace {

// Two connected loopback sockets as Beast streams.
struct Pair {
  asio::io_context io;
  boost::beast::tcp_stream a{io}, b{io};
  Pair() {
    tcp::acceptor acc(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    a.socket().connect(acc.local_endpoint());
    b.socket() = acc.accept();
  }
};

// `n` pieces of different sizes, some empty, holding one running byte pattern.
std::vector<std::string> pieces(std::size_t n) {
  std::vector<std::string> out;
  unsigned char next = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::string p(i % 5 == 3 ? 0 : 1 + (i * 7919) % 3000, '\0');
    for (auto& c : p) c = static_cast<char>(next++);
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace

TEST_CASE("AnyStream moves a sequence of more buffers than it passes on at once, in order") {
  const auto parts = pieces(3 * AnyStream::kMaxBuffers + 5);
  const std::string all = std::accumulate(parts.begin(), parts.end(), std::string());
  std::vector<asio::const_buffer> out;
  for (const auto& p : parts) out.push_back(asio::buffer(p));

  Pair pair;
  // Read back through an AnyStream too, into as many buffers as were written.
  std::vector<std::string> in;
  for (const auto& p : parts) in.emplace_back(p.size(), '\0');
  std::vector<asio::mutable_buffer> into;
  for (auto& p : in) into.push_back(asio::buffer(p));

  auto written = tsign::test::run_coro(pair.io, [&]() -> asio::awaitable<std::size_t> {
    AnyStream w(pair.a);
    co_return co_await asio::async_write(w, out, asio::use_awaitable);
  }());
  CHECK(written == all.size());
  auto read = tsign::test::run_coro(pair.io, [&]() -> asio::awaitable<std::size_t> {
    AnyStream r(pair.b);
    co_return co_await asio::async_read(r, into, asio::use_awaitable);
  }());
  CHECK(read == all.size());
  CHECK(std::accumulate(in.begin(), in.end(), std::string()) == all);
}

TEST_CASE("AnyStream reads and writes at most kMaxBuffers buffers at a time") {
  const auto parts = pieces(2 * AnyStream::kMaxBuffers);
  std::vector<asio::const_buffer> out;
  std::size_t first_nonempty = 0, total = 0;
  for (const auto& p : parts) {
    out.push_back(asio::buffer(p));
    total += p.size();
  }
  for (std::size_t i = 0, taken = 0; i < parts.size() && taken < AnyStream::kMaxBuffers; ++i)
    if (!parts[i].empty()) {
      first_nonempty += parts[i].size();
      ++taken;
    }
  REQUIRE(first_nonempty < total);

  Pair pair;
  auto n = tsign::test::run_coro(pair.io, [&]() -> asio::awaitable<std::size_t> {
    AnyStream w(pair.a);
    co_return co_await w.async_write_some(out, asio::use_awaitable);
  }());
  // A loopback socket takes the few kilobytes whole: exactly the first kMaxBuffers non-empty ones.
  CHECK(n == first_nonempty);
  CHECK(&AnyStream(pair.a).lowest() == &pair.a);
}
