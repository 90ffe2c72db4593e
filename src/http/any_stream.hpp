// One type for "TCP, or TLS over TCP", for Beast's HTTP message algorithms (RFC 9112 reads and
// writes) to run on.
//
// Why: the client, the emulator and the test server each serve both kinds of connection. Written
// as templates over the stream type, every HTTP read and write, and every TLS operation under
// them, was compiled once per stream type and per composed operation: those three files were the
// slowest of the build by far (CONTRIBUTING.md, "How long the tests take"). Behind this type, the
// HTTP algorithms are compiled once, and the TLS stream's read and write once each. The cost at
// run time is one allocation and one indirect call per read or write of the underlying stream.
//
// Reads and writes pass on at most kMaxBuffers buffers of a sequence at a time; a read or write
// of "some" bytes may always do less than asked, and every caller (Beast's algorithms, asio's
// async_write) goes on until the whole sequence is done.
//
// Threading: that of the stream it refers to (one at a time, on its executor). The stream must
// outlive the AnyStream and every operation started through it.
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/system/error_code.hpp>

namespace tsign::http {

class AnyStream {
 public:
  using executor_type = boost::asio::any_io_executor;
  using TlsStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
  static constexpr std::size_t kMaxBuffers = 8;

  explicit AnyStream(boost::beast::tcp_stream& plain) noexcept : plain_(&plain) {}
  explicit AnyStream(TlsStream& tls) noexcept : tls_(&tls) {}

  executor_type get_executor() const noexcept;
  // The TCP stream at the bottom: its timer bounds every operation (expires_after/at).
  boost::beast::tcp_stream& lowest() const noexcept;

  // A run of at most kMaxBuffers buffers of a sequence: a buffer sequence itself.
  template <class Buffer>
  class Buffers {
   public:
    template <class Sequence>
    explicit Buffers(const Sequence& s) {
      for (auto it = boost::asio::buffer_sequence_begin(s);
           it != boost::asio::buffer_sequence_end(s) && n_ < kMaxBuffers; ++it) {
        Buffer b(*it);
        if (b.size() != 0) b_[n_++] = b;
      }
    }
    const Buffer* begin() const noexcept { return b_.data(); }
    const Buffer* end() const noexcept { return b_.data() + n_; }

   private:
    std::array<Buffer, kMaxBuffers> b_{};
    std::size_t n_ = 0;
  };
  using MutableBuffers = Buffers<boost::asio::mutable_buffer>;
  using ConstBuffers = Buffers<boost::asio::const_buffer>;

  // The completion of one read or write of the stream underneath, its handler's type erased. It
  // runs on the stream's executor and hands the result on through the handler's own executor (as
  // asio requires of a completion; in tsign both are the same single thread, so that runs it at
  // once). No cancellation slot is carried over: tsign bounds operations with the TCP stream's
  // timer, never by cancelling them. (Boost 1.81's any_completion_handler would do, but does not
  // compile under asio's TLS stream: its executor lacks a property that post requires.)
  class Handler {
   public:
    template <class H>
    Handler(H&& h, const executor_type& io)
        : p_(std::make_unique<Held<std::decay_t<H>>>(std::forward<H>(h), io)) {}
    void operator()(boost::system::error_code ec, std::size_t n) {
      auto p = std::move(p_);
      p->complete(ec, n);
    }

   private:
    struct Base {
      virtual ~Base() = default;
      virtual void complete(boost::system::error_code ec, std::size_t n) = 0;
    };
    template <class H>
    struct Held final : Base {
      Held(H&& handler, const executor_type& io)
          : ex(boost::asio::get_associated_executor(handler, io)), h(std::move(handler)) {}
      void complete(boost::system::error_code ec, std::size_t n) override {
        boost::asio::dispatch(ex, [h = std::move(h), ec, n]() mutable { std::move(h)(ec, n); });
      }
      boost::asio::associated_executor_t<H, executor_type> ex;
      H h;
    };
    std::unique_ptr<Base> p_;
  };

  template <class MutableBufferSequence, class Token>
  auto async_read_some(const MutableBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [self = *this](auto handler, const MutableBuffers& b) {
          self.read_some(b, Handler(std::move(handler), self.get_executor()));
        },
        token, MutableBuffers(buffers));
  }

  template <class ConstBufferSequence, class Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [self = *this](auto handler, const ConstBuffers& b) {
          self.write_some(b, Handler(std::move(handler), self.get_executor()));
        },
        token, ConstBuffers(buffers));
  }

 private:
  // Copies of this object start the operations (an initiation may run after the co_await that
  // made it, so it does not refer to this object, only to the streams).
  void read_some(const MutableBuffers& b, Handler h) const;
  void write_some(const ConstBuffers& b, Handler h) const;

  boost::beast::tcp_stream* plain_ = nullptr;
  TlsStream* tls_ = nullptr;
};

}  // namespace tsign::http
