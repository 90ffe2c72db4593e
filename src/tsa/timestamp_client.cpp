// RFC 3161 §3.4 "Time-Stamp Protocol via HTTP": one POST of the DER TimeStampReq as
// application/timestamp-query, answered by application/timestamp-reply (protocol.md §4).
#include "tsa/timestamp_client.hpp"

#include <chrono>
#include <utility>

#include "authenticode/timestamp.hpp"
#include "common/error.hpp"

namespace tsign::tsa {

using authenticode::check_timestamp_response;
using authenticode::make_timestamp_request;
using authenticode::TimestampRequest;

TimestampClient::TimestampClient(http::Client& client, std::string url, DigestAlg alg)
    : client_(client), url_(std::move(url)), alg_(alg) {}

boost::asio::awaitable<Bytes> TimestampClient::stamp(ByteView signature_value) {
  return stamp_owned(Bytes(signature_value.begin(), signature_value.end()));
}

boost::asio::awaitable<Bytes> TimestampClient::stamp_owned(Bytes signature_value) {
  const TimestampRequest req = make_timestamp_request(signature_value, alg_);
  http::Request r;
  r.method = "POST";
  r.url = url_;
  r.headers = {{"Content-Type", "application/timestamp-query"},
               {"Accept", "application/timestamp-reply"}};
  r.body = to_string(req.der);
  // An authority answers in well under a second; a hung one is better retried than waited for
  // the default minute.
  r.timeout = std::chrono::seconds(30);
  // A POST, but asking again changes nothing at the authority and costs nothing.
  r.idempotent = true;
  const http::Response resp = co_await client_.send(std::move(r));
  if (resp.status < 200 || resp.status >= 300)
    throw FileError("time-stamp authority " + url_ + " answered HTTP " +
                    std::to_string(resp.status));
  try {
    co_return check_timestamp_response(as_bytes(resp.body), req, signature_value, alg_);
  } catch (const FileError& e) {
    throw FileError("time-stamp authority " + url_ + ": " + e.what());
  }
}

}  // namespace tsign::tsa
