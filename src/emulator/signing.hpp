// The emulator's Trusted Signing data plane (docs/protocol.md §3): sign, poll, certchain,
// rootcert and eku under codesigningaccounts/{account}/certificateprofiles/{profile}, in the
// shapes of the three api-versions (docs/usage.md "Service API versions"), with the injected faults
// of Options. The pure decisions are in signing_rules.hpp.
//
// Threading: used on the emulator's io_context thread only (server.cpp).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <boost/url/url_view.hpp>

#include <openssl/evp.h>

#include "common/bytes.hpp"
#include "emulator/answer.hpp"
#include "emulator/emulator.hpp"
#include "emulator/identity.hpp"
#include "emulator/pki.hpp"
#include "emulator/signing_rules.hpp"

namespace tsign::emulator {

class SigningService {
 public:
  // Everything given must outlive the service; ep.base_url is final (the server is bound).
  SigningService(const Options& opts, const Endpoints& ep, const Pki& pki,
                 const Identity& identity);

  // Any request under /codesigningaccounts/; `segs` are the decoded path segments.
  Answer handle(const StringRequest& req, const boost::urls::url_view& u,
                const std::vector<std::string>& segs);

  // Whether an answer keeps the service busy until its latency has passed (--capacity): a
  // sign or poll request that was served, not refused by a fault.
  static bool occupies(const Answer& a);
  // Sign and poll requests whose latency has not passed; the transport counts them.
  int in_flight = 0;

 private:
  struct Operation {
    std::string signature;  // base64
    int polls_left = 0;     // InProgress answers still to give
  };

  std::optional<Answer> fault(const std::string& kind, bool is_sign);
  Answer unauthorized(const std::string& api, const std::string& kind, TokenState state) const;
  std::optional<Answer> find_profile(const ServiceRequest& r, const std::string& api) const;
  Answer refuse_version(const StringRequest& req, const std::string& api,
                        const std::string& kind) const;
  Answer sign(const StringRequest& req, const std::string& api, const std::string& base_path);
  Answer poll(const std::string& id, const std::string& api);
  Answer certificate(const std::string& kind) const;
  Bytes sign_digest(ByteView digest, const EVP_MD* md) const;

  const Options& opts_;
  const Endpoints& ep_;
  const Pki& pki_;
  const Identity& identity_;
  Bytes chain_der_;                  // certs-only PKCS#7 of the chain
  Bytes root_der_;                   // the code-signing root
  std::string signing_certificate_;  // double base64 chain, the same for every answer
  std::unordered_map<std::string, Operation> operations_;
  FaultCounter faults_;
};

// Trusted Signing's error shape (protocol.md §3 "Errors"): {"errorDetail": {code, message,
// target}}. The transport answers its own failures in it too.
Answer error_detail(boost::beast::http::status status, const std::string& code,
                    const std::string& message, const std::string& target, std::string kind);

}  // namespace tsign::emulator
