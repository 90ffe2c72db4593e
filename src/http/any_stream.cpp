// The one place the TCP and TLS streams' reads and writes are compiled for the HTTP algorithms
// (any_stream.hpp says why).
#include "http/any_stream.hpp"

namespace tsign::http {

AnyStream::executor_type AnyStream::get_executor() const noexcept {
  return tls_ ? tls_->get_executor() : plain_->get_executor();
}

boost::beast::tcp_stream& AnyStream::lowest() const noexcept {
  return tls_ ? boost::beast::get_lowest_layer(*tls_) : *plain_;
}

void AnyStream::read_some(const MutableBuffers& b, Handler h) const {
  if (tls_)
    tls_->async_read_some(b, std::move(h));
  else
    plain_->async_read_some(b, std::move(h));
}

void AnyStream::write_some(const ConstBuffers& b, Handler h) const {
  if (tls_)
    tls_->async_write_some(b, std::move(h));
  else
    plain_->async_write_some(b, std::move(h));
}

}  // namespace tsign::http
