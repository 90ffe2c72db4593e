// The pure decisions of the emulator's signing service (see signing_rules.hpp).
#include "emulator/signing_rules.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "emulator/answer.hpp"

namespace tsign::emulator {

namespace json = boost::json;
namespace http = boost::beast::http;

ApiShape api_shape(std::string_view api) {
  if (api == kApi2024) return ApiShape::ga2024;
  if (api == kApi2023) return ApiShape::preview2023;
  return ApiShape::preview2022;
}

ServiceRequest classify_service_request(const std::vector<std::string>& segs, http::verb method) {
  ServiceRequest r;
  if (segs.size() < 4 || segs[0] != "codesigningaccounts" || segs[2] != "certificateprofiles")
    return r;
  r.colon_sign = segs.size() == 4 && segs[3].ends_with(":sign");
  if (r.colon_sign && method == http::verb::post)
    r.kind = "sign";
  else if (segs.size() == 5 && segs[4] == "sign" && method == http::verb::post)
    r.kind = "sign";
  else if (segs.size() == 6 && segs[4] == "sign" && method == http::verb::get)
    r.kind =
        (segs[5] == "certchain" || segs[5] == "rootcert" || segs[5] == "eku") ? segs[5] : "poll";
  if (r.kind == "unknown") return r;
  r.account = segs[1];
  r.profile = r.colon_sign ? segs[3].substr(0, segs[3].size() - 5) : segs[3];
  if (r.kind == "poll") r.operation = segs[5];
  return r;
}

bool api_served(const std::vector<std::string>& served, std::string_view api) {
  return std::find(served.begin(), served.end(), api) != served.end();
}

bool sign_route_exists(std::string_view api, bool colon_sign) {
  return colon_sign ? api != kApi2022 : api != kApi2024;
}

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::none:
      return "";
    case Fault::capacity:
      return "capacity";
    case Fault::drop:
      return "drop";
    case Fault::throttle:
      return "throttle";
    case Fault::fail:
      return "fail";
    case Fault::malformed:
      return "malformed";
  }
  return "";
}

Fault FaultCounter::next(const Options& o, bool is_sign, int in_flight) {
  std::uint64_t n = ++requests;
  std::uint64_t p = is_sign ? 0 : ++polls;  // 0: every_nth never fires for a sign request
  if (o.capacity > 0 && in_flight >= o.capacity) return Fault::capacity;
  if (every_nth(o.drop_every, n) || every_nth(o.drop_polls_every, p)) return Fault::drop;
  if (every_nth(o.throttle_every, n)) return Fault::throttle;
  if (every_nth(o.fail_every, n)) return Fault::fail;
  if (every_nth(o.malformed_every, n) || every_nth(o.malformed_polls_every, p))
    return Fault::malformed;
  return Fault::none;
}

json::value sign_accepted_body(ApiShape shape, const std::string& id) {
  switch (shape) {
    case ApiShape::ga2024:
      return {{"id", id}, {"status", "NotStarted"}};
    case ApiShape::preview2023:
      return {
          {"id", id}, {"status", "InProgress"}, {"result", nullptr}, {"errorResponse", nullptr}};
    case ApiShape::preview2022:
      break;
  }
  return {{"operationId", id},
          {"status", "InProgress"},
          {"signature", nullptr},
          {"signingCertificate", nullptr}};
}

json::value poll_body(ApiShape shape, const std::string& id, bool done,
                      const std::string& signature, const std::string& signing_certificate) {
  json::object inner{
      {"operationId", id},
      {"status", done ? "Succeeded" : "InProgress"},
      {"signature", done ? json::value(signature) : json::value(nullptr)},
      {"signingCertificate", done ? json::value(signing_certificate) : json::value(nullptr)}};
  if (shape == ApiShape::ga2024) {
    json::object ga{{"id", id}, {"status", done ? "Succeeded" : "Running"}};
    if (done)
      ga["result"] = {{"signature", signature}, {"signingCertificate", signing_certificate}};
    return ga;
  }
  if (shape == ApiShape::preview2023)
    return {{"id", id},
            {"status", done ? "Succeeded" : "InProgress"},
            {"result", done ? json::value(inner) : json::value(nullptr)},
            {"errorResponse", nullptr}};
  return inner;
}

json::value eku_body(ApiShape shape, const std::vector<std::string>& ekus) {
  json::array list;
  if (shape == ApiShape::ga2024) {  // PagedExtendedKeyUsage: {"value": [{"eku": "..."}, ...]}
    for (const auto& e : ekus) list.emplace_back(json::object{{"eku", e}});
    return {{"value", list}};
  }
  for (const auto& e : ekus) list.emplace_back(e);
  return {{"value", json::array{json::object{{"ekus", list}}}}};
}

std::string double_base64(ByteView der) {
  std::string once = base64_encode(der);
  std::string mime;
  for (std::size_t i = 0; i < once.size(); i += 76) {
    mime += once.substr(i, 76);
    mime += "\r\n";
  }
  return base64_encode(as_bytes(mime));
}

std::string bearer_challenge(const std::string& authority, const std::string& why) {
  std::string challenge = "Bearer authorization_uri=\"" + authority + "\"";
  if (!why.empty()) challenge += ", error=\"invalid_token\", error_description=\"" + why + "\"";
  return challenge;
}

}  // namespace tsign::emulator
