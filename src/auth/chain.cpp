// The credential chain of docs/interface.md ("Credentials"), modelled on the Azure SDKs'
// DefaultAzureCredential: links tried in a fixed order (the rows of credential_table.hpp), the
// first that applies wins, and a cache in front that refreshes the token before it expires.
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "auth/auth_internal.hpp"
#include "common/error.hpp"
#include "common/text.hpp"
#include "platform/platform.hpp"

namespace tsign::auth {

namespace asio = boost::asio;

ResolvedSettings resolve_settings(const CredentialSettings& s, const EnvLookup& env) {
  // The settings (action inputs / options) win over the variables.
  auto pick = [&](const std::string& value, env::Var var) {
    if (!value.empty()) return value;
    return read_var(env, var).value_or(std::string());
  };
  ResolvedSettings r;
  r.tenant_id = pick(s.tenant_id, "AZURE_TENANT_ID");
  r.client_id = pick(s.client_id, "AZURE_CLIENT_ID");
  r.client_secret = s.client_secret.empty()
                        ? Secret(read_var(env, "AZURE_CLIENT_SECRET").value_or(""))
                        : s.client_secret;
  r.client_certificate_path = pick(s.client_certificate_path, "AZURE_CLIENT_CERTIFICATE_PATH");
  r.client_certificate_password =
      s.client_certificate_password.empty()
          ? Secret(read_var(env, "AZURE_CLIENT_CERTIFICATE_PASSWORD").value_or(""))
          : s.client_certificate_password;
  // The Azure SDKs read "true" or "1" (any case); the input is a boolean already.
  std::string chain(trim(read_var(env, "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN").value_or("")));
  r.send_certificate_chain = s.send_certificate_chain || iequals(chain, "true") || chain == "1";
  r.authority = resolve_authority(s.authority_host, env);
  return r;
}

namespace {

// ---- The cache --------------------------------------------------------------------------------

class TokenCache final : public TokenSource {
 public:
  TokenCache(std::unique_ptr<TokenSource> inner, Log& log, NowFn now)
      : inner_(std::move(inner)), log_(log), now_(std::move(now)) {}

  asio::awaitable<AccessToken> get_token() override {
    if (cached_ && now_() < refresh_at_) co_return *cached_;

    if (flight_) {
      // Someone is refreshing already: wait for that answer instead of asking again. The timer
      // never expires by itself; the refresher cancels it when the answer is in.
      auto f = flight_;
      boost::system::error_code ec;
      co_await f->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (f->error) std::rethrow_exception(f->error);
      co_return *f->result;
    }

    auto f = std::make_shared<Flight>(co_await asio::this_coro::executor);
    flight_ = f;
    try {
      AccessToken t = co_await inner_->get_token();
      log_.mask(t.token);
      auto now = now_();
      // Refresh 5 minutes before expiry, or at half the lifetime of a short-lived token.
      auto lifetime = t.expires_on - now;
      auto margin = std::min<SysClock::duration>(std::chrono::minutes(5), lifetime / 2);
      refresh_at_ = t.expires_on - margin;
      log_.debug(
          "access token from the " + inner_->name() + " credential, valid for " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(lifetime).count()) +
          " s");
      cached_ = t;
      f->result = std::move(t);
    } catch (const std::exception& e) {
      f->error = std::current_exception();
      // A failed refresh while the old token is still good for a while: keep working with it
      // (every waiter too) and say why; the next call tries again.
      if (cached_ && cached_->expires_on - now_() > std::chrono::minutes(1)) {
        log_.warning(std::string("could not refresh the access token, using the current one "
                                 "until it expires: ") +
                     e.what());
        f->error = nullptr;
        f->result = cached_;
      }
    } catch (...) {
      f->error = std::current_exception();
    }
    flight_.reset();
    f->done.cancel();
    if (f->error) std::rethrow_exception(f->error);
    co_return *f->result;
  }

  std::string name() const override { return inner_->name(); }

  void invalidate(const Secret& rejected) override {
    if (!cached_ || cached_->token.reveal() != rejected.reveal()) return;  // replaced already
    log_.debug("the service refused the access token from the " + inner_->name() +
               " credential as expired or invalid; getting a new one");
    cached_.reset();
  }

 private:
  struct Flight {
    explicit Flight(asio::any_io_executor ex) : done(ex, asio::steady_timer::time_point::max()) {}
    asio::steady_timer done;
    std::optional<AccessToken> result;
    std::exception_ptr error;
  };

  std::unique_ptr<TokenSource> inner_;
  Log& log_;
  NowFn now_;
  std::optional<AccessToken> cached_;
  SysClock::time_point refresh_at_{};
  std::shared_ptr<Flight> flight_;
};

// ---- The chain --------------------------------------------------------------------------------

struct Link {
  std::string name;
  std::unique_ptr<TokenSource> source;  // null when the link does not apply
  std::string why_not;                  // what it needed and did not find
};

class Chain final : public TokenSource {
 public:
  explicit Chain(std::vector<Link> links) : links_(std::move(links)) {}

  asio::awaitable<AccessToken> get_token() override {
    if (chosen_) co_return co_await chosen_->get_token();
    std::vector<std::string> reasons;
    for (auto& link : links_) {
      if (!link.source) {
        reasons.push_back(link.name + ": " + link.why_not);
        continue;
      }
      std::string unavailable;
      try {
        AccessToken t = co_await link.source->get_token();
        // The first link that gives a token is the run's credential from now on.
        chosen_ = link.source.get();
        co_return t;
      } catch (const Unavailable& e) {
        unavailable = e.what();
      }
      reasons.push_back(link.name + ": " + unavailable);
    }
    throw AuthError(no_credential_message(reasons));
  }

  std::string name() const override { return chosen_ ? chosen_->name() : "credential chain"; }

  static std::string no_credential_message(const std::vector<std::string>& reasons) {
    std::string msg = "no credential could get a token for the Trusted Signing service:";
    for (const auto& r : reasons) msg += "\n  - " + r;
    return msg;
  }

 private:
  std::vector<Link> links_;
  TokenSource* chosen_ = nullptr;
};

}  // namespace

std::string missing_list(const std::vector<std::pair<const char*, bool>>& needs) {
  std::string out;
  for (const auto& [name, present] : needs) {
    if (present) continue;
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::unique_ptr<TokenSource> make_token_cache(std::unique_ptr<TokenSource> inner, Log& log,
                                              NowFn now) {
  return std::make_unique<TokenCache>(std::move(inner), log, std::move(now));
}

std::unique_ptr<TokenSource> make_credential_chain(const CredentialSettings& settings,
                                                   http::Client& client, Log& log,
                                                   const EnvLookup& env, NowFn now, Runner run) {
  ResolvedSettings s = resolve_settings(settings, env);
  const LinkInputs in{s, env, client, log, now, run};
  std::vector<Link> links;
  // One link per row of credential_table.hpp, in its order.
  for (const auto& row : kCredentials) {
    Link l{std::string(row.name), nullptr, {}};
    if (settings.*row.excluded) {
      l.why_not = "excluded by " + std::string(row.exclude);
    } else {
      LinkOutcome o = row.make(in);
      l.source = std::move(o.source);
      if (!l.source) l.why_not = "needs " + std::string(row.needs) + "; missing " + o.missing;
    }
    links.push_back(std::move(l));
  }

  bool any = false;
  for (const auto& l : links) any = any || l.source;
  if (!any) {
    std::vector<std::string> reasons;
    for (const auto& l : links) reasons.push_back(l.name + ": " + l.why_not);
    throw AuthError(Chain::no_credential_message(reasons));
  }
  return make_token_cache(std::make_unique<Chain>(std::move(links)), log, std::move(now));
}

std::unique_ptr<TokenSource> make_credential_chain(const CredentialSettings& settings,
                                                   http::Client& client, Log& log) {
  Runner run = [](const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
    platform::RunResult r = platform::run_capture(argv, timeout);
    return RunOutcome{r.exit_code, std::move(r.out), std::move(r.err), r.timed_out, r.not_found};
  };
  return make_credential_chain(
      settings, client, log, env::process(), [] { return SysClock::now(); }, std::move(run));
}

}  // namespace tsign::auth
