// The decisions of the emulator's Trusted Signing service (docs/protocol.md §3) that need no
// socket, no key and no clock: which operation a path names, which api-version answers in which
// shape and on which route, which injected fault a request gets, and the JSON of the answers.
// signing.cpp applies them; tests/emulator tests them one by one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

#include "common/bytes.hpp"
#include "emulator/emulator.hpp"

namespace tsign::emulator {

// The data-plane api-versions (docs/usage.md "Service API versions").
inline constexpr std::string_view kApi2022 = "2022-06-15-preview";
inline constexpr std::string_view kApi2023 = "2023-06-15-preview";
inline constexpr std::string_view kApi2024 = "2024-06-15";  // GA: Azure Core shapes

// The shape of the answers: the 2022 preview's flat {operationId, status, signature, ...}, the
// 2023 preview's wrapped result, the GA's Azure Core operation and errors. An api-version the
// emulator does not know answers (if it is served at all) in the 2022 shape.
enum class ApiShape { preview2022, preview2023, ga2024 };
ApiShape api_shape(std::string_view api);

// What a path under codesigningaccounts/ asks for.
struct ServiceRequest {
  std::string kind = "unknown";  // sign, poll, certchain, rootcert, eku or unknown
  bool colon_sign = false;       // the `{profile}:sign` route (else `{profile}/sign`)
  std::string account;
  std::string profile;    // without `:sign`
  std::string operation;  // the operation id of a poll
};
// segs: codesigningaccounts/{account}/certificateprofiles/{profile}[:sign][/sign[/{x}]]
ServiceRequest classify_service_request(const std::vector<std::string>& segs,
                                        boost::beast::http::verb method);

// Whether the emulator was told to serve `api` (Options::api_versions).
bool api_served(const std::vector<std::string>& served, std::string_view api);
// Each version has its own sign route: GA only `{profile}:sign`, the 2022 preview only
// `{profile}/sign`, the 2023 preview both.
bool sign_route_exists(std::string_view api, bool colon_sign);

// The injected faults of the signing service (Options, "Fault injection"), in the order they
// are tried.
enum class Fault { none, capacity, drop, throttle, fail, malformed };
const char* fault_name(Fault f);  // as the request log names it ("" for none)

// Counts the sign and poll requests and says which fault the next one gets.
struct FaultCounter {
  std::uint64_t requests = 0;  // sign + poll
  std::uint64_t polls = 0;
  // Counts one more request (a sign request if is_sign, else a poll); `in_flight` is how many
  // served requests are still within their latency (--capacity).
  Fault next(const Options& o, bool is_sign, int in_flight);
};

// 202 to a sign request: the operation, not yet done.
boost::json::value sign_accepted_body(ApiShape shape, const std::string& id);
// 200 to a poll: InProgress/Running until done, then Succeeded with the signature and the
// signingCertificate.
boost::json::value poll_body(ApiShape shape, const std::string& id, bool done,
                             const std::string& signature, const std::string& signing_certificate);
// 200 to GET .../sign/eku.
boost::json::value eku_body(ApiShape shape, const std::vector<std::string>& ekus);

// The signingCertificate encoding of protocol.md §3: DER PKCS#7 -> MIME base64 (76 columns,
// CRLF) -> base64 again.
std::string double_base64(ByteView der);

// The WWW-Authenticate challenge of a 401 (RFC 6750 §3.1 as Entra-protected Azure services
// answer): no error code when no token was sent, invalid_token with why for one that is not or
// no longer good. `why` is empty when no token was sent.
std::string bearer_challenge(const std::string& authority, const std::string& why);

}  // namespace tsign::emulator
