// The Azure CLI credential: `az account get-access-token --output json --resource
// https://codesigning.azure.net` (docs/protocol.md §2), which covers a preceding azure/login
// step. Its answer: accessToken, expires_on (POSIX seconds, CLI >= 2.54) or expiresOn (local
// time).
#include <ctime>
#include <iomanip>
#include <sstream>

#include <boost/json.hpp>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"

namespace tsign::auth {

namespace json = boost::json;

AccessToken parse_azure_cli_output(std::string_view text, SysClock::time_point now) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) throw Unavailable("`az account get-access-token` did not print JSON");
  const auto& o = v.as_object();
  auto* tok = o.if_contains("accessToken");
  if (!tok || !tok->is_string() || tok->as_string().empty())
    throw Unavailable("`az account get-access-token` printed no accessToken");
  Secret token(std::string(tok->as_string()));

  if (auto* on = o.if_contains("expires_on")) {
    std::int64_t secs = -1;
    if (on->is_int64()) secs = on->as_int64();
    if (on->is_uint64()) secs = static_cast<std::int64_t>(on->as_uint64());
    if (on->is_string()) {
      try {
        secs = std::stoll(std::string(on->as_string()));
      } catch (const std::exception&) {
        secs = -1;
      }
    }
    if (secs > 0 && secs <= kMaxTokenSeconds)
      return {std::move(token), SysClock::time_point(std::chrono::seconds(secs))};
  }
  if (auto* on = o.if_contains("expiresOn"); on && on->is_string()) {
    // Older CLIs print the local time without a zone: "2023-10-31 15:06:29.000000".
    std::tm tm{};
    std::istringstream in{std::string(on->as_string())};
    in >> std::get_time(&tm, "%Y-%m-%d %H:%M:%S");
    if (!in.fail()) {
      tm.tm_isdst = -1;
      std::time_t t = std::mktime(&tm);
      if (t != static_cast<std::time_t>(-1) && t > 0 && t <= kMaxTokenSeconds)
        return {std::move(token), SysClock::from_time_t(t)};
    }
  }
  // No usable expiry: assume a short life so the cache asks again soon rather than too late.
  return {std::move(token), now + std::chrono::minutes(5)};
}

namespace {

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (line.size() > 300) line = line.substr(0, 300) + "...";
  return line;
}

class AzureCliSource final : public TokenSource {
 public:
  AzureCliSource(Runner run, NowFn now) : run_(std::move(run)), now_(std::move(now)) {}

  // Runs az synchronously on the calling thread: it happens about once an hour, under the
  // cache's single flight, and az itself takes a second or two.
  boost::asio::awaitable<AccessToken> get_token() override {
    RunOutcome r = run_({"az", "account", "get-access-token", "--output", "json", "--resource",
                         kCodeSigningResource},
                        std::chrono::seconds(60));
    if (r.not_found) fail("`az` (the Azure CLI) was not found on PATH");
    if (r.timed_out) fail("`az account get-access-token` did not finish within 60 s");
    if (r.exit_code != 0) {
      if (r.err.find("az login") != std::string::npos)
        fail("the Azure CLI is not logged in (run `az login`, or an azure/login step before)");
      fail("`az account get-access-token` failed (exit " + std::to_string(r.exit_code) +
           "): " + first_line(r.err));
    }
    try {
      AccessToken t = parse_azure_cli_output(r.out, now_());
      proven_ = true;
      co_return t;
    } catch (const Unavailable& e) {
      fail(e.what());
    }
  }
  std::string name() const override { return "Azure CLI"; }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    if (!proven_) throw Unavailable(why);
    throw AuthError("Azure CLI: " + why);
  }

  Runner run_;
  NowFn now_;
  bool proven_ = false;
};

}  // namespace

std::unique_ptr<TokenSource> make_azure_cli_source(Runner run, NowFn now) {
  return std::make_unique<AzureCliSource>(std::move(run), std::move(now));
}

// Its row in credential_table.hpp: always applies; whether az is there and logged in is found
// out when it is tried (Unavailable).
LinkOutcome azure_cli_credential(const LinkInputs& in) {
  return {make_azure_cli_source(in.run, in.now), {}};
}

}  // namespace tsign::auth
