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

TimestampAuthorities::TimestampAuthorities(http::Client& client,
                                           const std::vector<std::string>& urls, DigestAlg alg) {
  clients_.reserve(urls.size());
  for (const auto& u : urls) clients_.emplace_back(client, u, alg);
}

boost::asio::awaitable<TimestampAuthorities::Stamp> TimestampAuthorities::stamp(
    ByteView signature_value) {
  return stamp_owned(Bytes(signature_value.begin(), signature_value.end()));
}

boost::asio::awaitable<TimestampAuthorities::Stamp> TimestampAuthorities::stamp_owned(
    Bytes signature_value) {
  Stamp out;
  for (auto& c : clients_) {
    try {
      out.token = co_await c.stamp(signature_value);
      co_return out;
    } catch (const DeadlineError&) {
      throw;
    } catch (const FileError& e) {  // HTTP errors, transport failures and bad replies alike
      std::string why = e.what();
      // The client's messages start with the authority; name it once.
      const std::string prefix = "time-stamp authority " + c.url();
      if (why.rfind(prefix, 0) == 0) why.erase(0, prefix.size() + (why.size() > prefix.size()));
      out.failures.push_back(c.url() + ": " + why);
    }
  }
  std::string msg = clients_.size() == 1 ? "the time-stamp authority failed: "
                                         : "no time-stamp authority gave a time-stamp: ";
  for (std::size_t i = 0; i < out.failures.size(); ++i) msg += (i ? "; " : "") + out.failures[i];
  throw FileError(msg);
}

}  // namespace tsign::tsa
