// RFC 3161 Time-Stamp Protocol client (protocol.md §4): sends the request built by
// authenticode/timestamp.hpp to one time-stamp authority over HTTP (RFC 3161 §3.4,
// application/timestamp-query / -reply) and checks the reply with check_timestamp_response.
// Its own layer above authenticode/ and http/, so that authenticode/ stays free of transport.
// Threading: as its http::Client (one io_context, run by one thread).
#pragma once

#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "common/bytes.hpp"
#include "common/digest.hpp"
#include "http/client.hpp"

namespace tsign::tsa {

// Asks one time-stamp authority, over the run's http::Client (so its retry policy and the
// run's deadline apply).
class TimestampClient {
 public:
  TimestampClient(http::Client& client, std::string url, DigestAlg alg);
  // Returns the DER TimeStampToken for `signature_value` (the SignerInfo's encryptedDigest;
  // copied before the first suspension, so the caller's buffer may go away). Throws FileError
  // ("time-stamp authority URL answered HTTP 503", or a bad reply), http::TransportError,
  // DeadlineError.
  boost::asio::awaitable<Bytes> stamp(ByteView signature_value);
  const std::string& url() const { return url_; }

 private:
  boost::asio::awaitable<Bytes> stamp_owned(Bytes signature_value);
  http::Client& client_;
  std::string url_;
  DigestAlg alg_;
};

// Several authorities, tried in order for each time-stamp (docs/usage.md "Time-stamps"): when one
// fails (an HTTP error after the client's retries, a connection that cannot be made, a reply that
// does not check), the next is asked. Threading: as TimestampClient.
class TimestampAuthorities {
 public:
  TimestampAuthorities(http::Client& client, const std::vector<std::string>& urls, DigestAlg alg);

  struct Stamp {
    Bytes token;                        // the DER TimeStampToken
    std::vector<std::string> failures;  // why each authority before the one that answered failed
  };
  // The first token an authority gives. DeadlineError at once (no authority is tried after the
  // deadline); FileError naming every authority and its failure when none gives one.
  boost::asio::awaitable<Stamp> stamp(ByteView signature_value);
  std::size_t size() const { return clients_.size(); }

 private:
  boost::asio::awaitable<Stamp> stamp_owned(Bytes signature_value);
  std::vector<TimestampClient> clients_;
};

}  // namespace tsign::tsa
