#include "cli/commands.hpp"

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "auth/credential_table.hpp"
#include "auth/token_source.hpp"
#include "authenticode/authenticode.hpp"
#include "cli/options.hpp"
#include "common/error.hpp"
#include "common/log.hpp"
#include "emulator/emulator.hpp"
#include "engine/engine.hpp"
#include "engine/report.hpp"
#include "engine/select.hpp"
#include "formats/format.hpp"
#include "gha/workflow.hpp"
#include "platform/env.hpp"
#include "platform/platform.hpp"
#include "signer/local_key.hpp"
#include "signer/trusted_signing.hpp"

namespace tsign::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kUsage =
    "tsign — Authenticode signing with Microsoft Artifact (Trusted) Signing\n"
    "\n"
    "usage:\n"
    "  tsign sign [FILE...] [--option value ...]   sign files\n"
    "  tsign verify [--ca FILE] [--tsa-ca FILE] FILE...   check every signature of each file\n"
    "  tsign action                                what the GitHub Action runs (options from "
    "INPUT_*)\n"
    "  tsign emulator [--listen 127.0.0.1:PORT] [--state-dir DIR] [faults]\n"
    "                                              a local stand-in for the cloud, on loopback\n"
    "  tsign --version | --help | COMMAND --help\n"
    "\n"
    "exit codes: 0 all done, 1 some file failed, 2 invalid input, 3 no token / identity refused,\n"
    "            4 the deadline passed, 128+N interrupted by signal N (130 Ctrl-C, 143 SIGTERM)\n";

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args)
    if (a == "--help" || a == "-h") return true;
  return false;
}

X509StorePtr load_store(const std::string& option, const std::string& file) {
  X509StorePtr store(X509_STORE_new());
  if (X509_STORE_load_file(store.get(), platform::to_utf8(platform::from_utf8(file)).c_str()) != 1)
    throw InputError(option + ": cannot load certificates from '" + file + "'");
  return store;
}

// `msg` without the "PATH: " it starts with, for a message that names PATH already.
std::string without_prefix(const std::string& msg, const std::string& path) {
  auto p = platform::to_utf8(platform::from_utf8(path)) + ": ";
  return msg.rfind(p, 0) == 0 ? msg.substr(p.size()) : msg;
}

std::string one_line(const std::string& s) {
  std::string o;
  for (char c : s) o += (c == '\n' || c == '\r') ? ' ' : c;
  return o;
}

// Builds the signer the options ask for: a local key (--key/--cert, --pfx) or the service.
engine::SignerFactory signer_factory(const Options& o) {
  if (o.is_given("key") || o.is_given("cert") || o.is_given("pfx")) {
    if (o.is_given("pfx")) {
      if (o.is_given("key") || o.is_given("cert"))
        throw InputError("--pfx cannot be combined with --key/--cert");
      Secret password;
      if (o.is_given("pfx-password-env")) {
        auto name = o.str("pfx-password-env");
        auto v = env::get_named_by_user(name);
        if (!v) throw InputError("--pfx-password-env: the variable " + name + " is not set");
        password = Secret(*v);
      }
      auto pfx = platform::from_utf8(o.str("pfx"));
      return [pfx, password](engine::Services&) {
        return engine::SignerHandle{signer::make_pfx_signer(pfx, password), 0, nullptr};
      };
    }
    if (!o.is_given("key") || !o.is_given("cert"))
      throw InputError("--key and --cert go together (PEM private key and PEM certificate chain)");
    auto key = platform::from_utf8(o.str("key"));
    auto cert = platform::from_utf8(o.str("cert"));
    // Constructed now, so a bad key or a key/cert mismatch is input error 2 before any file.
    auto shared = std::shared_ptr<signer::Signer>(signer::make_local_key_signer(key, cert));
    return [shared](engine::Services&) {
      struct Forward : signer::Signer {
        std::shared_ptr<signer::Signer> s;
        boost::asio::awaitable<signer::SignResult> sign(Bytes d, DigestAlg a) override {
          co_return co_await s->sign(std::move(d), a);
        }
        boost::asio::awaitable<std::vector<X509Ptr>> certificate_chain() override {
          co_return co_await s->certificate_chain();
        }
        std::string describe() const override { return s->describe(); }
      };
      auto f = std::make_unique<Forward>();
      f->s = shared;
      return engine::SignerHandle{std::move(f), 0, nullptr};
    };
  }

  for (OptKey key :
       {OptKey("endpoint"), OptKey("signing-account-name"), OptKey("certificate-profile-name")})
    if (o.str(key).empty())
      throw InputError(std::string(key.name()) +
                       " is required (or use --key/--cert or --pfx to sign with a local key)");
  signer::TrustedSigningSettings ts{o.str("endpoint"), o.str("signing-account-name"),
                                    o.str("certificate-profile-name"), o.str("correlation-id")};
  ts.api_version = signer::parse_api_version(o.str("api-version"));  // validated; empty: auto
  // Before any token exists: a token sent to a foreign host could sign in the owner's name.
  signer::check_endpoint(ts.endpoint, env::get("TSIGN_ALLOWED_HOSTS"));

  // The inputs only: the chain reads AZURE_* itself where an input is empty (one layer reads
  // them, auth/).
  auth::CredentialSettings cs;
  cs.tenant_id = o.str("azure-tenant-id");
  cs.client_id = o.str("azure-client-id");
  cs.client_secret = Secret(o.str("azure-client-secret"));
  cs.client_certificate_path = o.str("azure-client-certificate-path");
  cs.client_certificate_password = Secret(o.str("azure-client-certificate-password"));
  cs.send_certificate_chain = o.flag("azure-client-send-certificate-chain");
  for (const auto& row : auth::kCredentials) cs.*row.excluded = o.flag(OptKey::named(row.exclude));

  return [ts, cs](engine::Services& s) {
    std::shared_ptr<auth::TokenSource> chain = auth::make_credential_chain(cs, s.http, s.log);
    auto signer = signer::make_trusted_signing_signer(ts, s.http, *chain, s.log);
    // Requests are cheap for us and the service signs in parallel; throttling backs off.
    return engine::SignerHandle{std::move(signer), 64, chain};
  };
}

enum class Mode { cli, action };

int run_signing(Options& o, Mode mode) {
  validate(o);
  // The run's clock starts here: choosing the files counts against `timeout` too.
  const auto started = std::chrono::steady_clock::now();
  bool under_actions = mode == Mode::action;
  bool debug = env::get("RUNNER_DEBUG").value_or("") == "1" || o.flag("trace") || o.flag("verbose");
  gha::GhaLog gha_log(debug);
  PlainLog plain_log(debug);
  Log& log = under_actions ? static_cast<Log&>(gha_log) : plain_log;

  // Secrets are masked before anything could print them.
  if (o.is_given("azure-client-secret")) log.mask(Secret(o.str("azure-client-secret")));
  for (const auto& n : o.notes) log.warning(n);
  // Which variables of the registry are set (sensitive ones without their value).
  if (auto set = env::set_summary(env::process()); !set.empty()) log.debug("environment: " + set);

  engine::SelectionRequest sreq;
  sreq.files = o.list("files");
  for (auto& p : o.positional) sreq.files.push_back(p);
  sreq.folder = o.str("files-folder");
  sreq.filter = o.list("files-folder-filter");
  sreq.recurse = o.flag("files-folder-recurse");
  if (auto d = o.integer("files-folder-depth")) sreq.depth = static_cast<int>(*d);
  sreq.catalog = o.str("files-catalog");
  sreq.timeout = std::chrono::seconds(*o.integer("timeout"));
  sreq.deadline = started + sreq.timeout;

  engine::Settings st;
  st.sign.alg = *parse_digest(o.str("file-digest"));
  st.sign.description = o.str("description");
  st.sign.description_url = o.str("description-url");
  st.timestamp_urls = timestamp_urls(o);
  st.timestamp_digest = *parse_digest(o.str("timestamp-digest"));
  st.append = o.flag("append-signature");
  st.skip_signed = o.flag("skip-signed");
  st.dry_run = o.flag("dry-run");
  // Only the report and the action's outputs read the whole-file hashes.
  st.file_hashes = mode == Mode::action || !o.str("report").empty();
  st.timeout = std::chrono::seconds(*o.integer("timeout"));
  st.started = started;
  if (auto c = o.integer("concurrency")) st.concurrency = static_cast<int>(*c);
  if (auto m = o.integer("max-signatures")) st.max_signatures = static_cast<std::size_t>(*m);
  X509StorePtr skip_roots;
  if (o.is_given("ca")) {
    skip_roots = load_store("--ca", o.str("ca"));
    st.skip_signed_roots = skip_roots.get();
  }

  // Everything that can be checked before a token is requested, is.
  auto factory = signer_factory(o);
  auto selection = engine::select_files(sreq);
  for (const auto& k : selection.skipped)
    log.warning(platform::to_utf8(k.path) + ": skipped: " + k.reason);
  for (const auto& t : selection.temporaries)
    log.warning(platform::to_utf8(t) +
                ": a temporary file of tsign, not signed; unless a tsign run is writing there "
                "now, an interrupted run left it: delete it");
  if (st.timestamp_urls.empty() && !st.dry_run)
    log.warning(
        "timestamp-rfc3161 is none: signatures will not be time-stamped and stop "
        "verifying when the certificate expires (Trusted Signing certificates live 3 days)");
  std::string authorities;
  for (const auto& u : st.timestamp_urls) authorities += (authorities.empty() ? "" : ", ") + u;

  engine::ReportContext ctx{o.str("endpoint"), o.str("signing-account-name"),
                            o.str("certificate-profile-name"), authorities,
                            o.str("correlation-id")};
  if (auto ws = env::get("GITHUB_WORKSPACE"); under_actions && ws && !ws->empty())
    ctx.base = platform::from_utf8(*ws);
  bool tty = !under_actions && platform::is_terminal(stdout);
  if (under_actions)
    log.group_begin("Signing " + std::to_string(selection.files.size()) + " file(s)");
  auto on_done = [&](const engine::FileResult& f, std::size_t done, std::size_t total) {
    std::string name = platform::to_utf8(f.path);
    std::string line = tty ? "[" + std::to_string(done) + "/" + std::to_string(total) + "] " : "";
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.2f", f.seconds);
    line += std::string(engine::status_name(f.status)) + "  " + name;
    if (!f.target.empty() && f.target != f.path) line += " -> " + platform::to_utf8(f.target);
    for (const auto& a : f.aliases) line += " (also " + platform::to_utf8(a) + ")";
    line += std::string("  (") + secs + " s)";
    if (f.status == engine::Status::failed) {
      log.info(line);
      log.error(one_line(f.error), name);
    } else {
      if (!f.error.empty()) line += "  " + f.error;
      log.info(line);
    }
  };

  engine::RunResult result;
  try {
    result = engine::run(selection, st, factory, log, on_done);
  } catch (const Error&) {
    if (under_actions) log.group_end();
    throw;
  }
  if (under_actions) log.group_end();

  auto code = result.exit_code();
  char totals[256];
  std::snprintf(totals, sizeof totals, "%zu signed, %zu failed, %zu skipped in %.2f s (exit %d)",
                result.count(engine::Status::signed_ok), result.count(engine::Status::failed),
                result.count(engine::Status::skipped) + result.count(engine::Status::planned),
                result.seconds, static_cast<int>(code));
  log.info(std::string("tsign: ") + totals);
  if (result.fatal_code) log.error(result.fatal_message);
  if (result.interrupted_signal != 0)
    log.error("interrupted by " + engine::signal_name(result.interrupted_signal) +
              ": the files in flight were finished; files not started are unchanged (exit " +
              std::to_string(static_cast<int>(code)) + ")");

  std::string report_path = o.str("report");
  if (report_path.empty() && under_actions) {
    if (auto tmp = env::get("RUNNER_TEMP"); tmp && !tmp->empty())
      report_path = platform::to_utf8(platform::from_utf8(*tmp) / "tsign-report.json");
  }
  if (!report_path.empty()) {
    try {
      engine::write_report(platform::from_utf8(report_path), result, ctx);
    } catch (const Error& e) {
      ctx.report_error = "the report could not be written to '" + report_path +
                         "': " + without_prefix(e.what(), report_path);
      log.warning(ctx.report_error);
      report_path.clear();
    }
  }
  if (under_actions) {
    // The signed files' digests for actions/attest-build-provenance (`subject-checksums`).
    std::string checksums_path;
    if (auto tmp = env::get("RUNNER_TEMP"); tmp && !tmp->empty()) {
      auto path = platform::from_utf8(*tmp) / "tsign-subject-checksums.txt";
      try {
        platform::ReplaceFile f(path);
        f.write(as_bytes(gha::checksums_text(result)));
        f.commit();
        checksums_path = platform::to_utf8(path);
      } catch (const Error& e) {
        log.warning("the subject checksums could not be written: " + std::string(e.what()));
      }
    }
    if (auto out = env::get("GITHUB_OUTPUT"); out && !out->empty()) {
      if (!gha::append_to_file(platform::from_utf8(*out),
                               gha::outputs_text(result, report_path, checksums_path)))
        log.warning("could not write the step outputs to GITHUB_OUTPUT (" + *out + ")");
    }
    if (auto sum = env::get("GITHUB_STEP_SUMMARY"); sum && !sum->empty()) {
      if (!gha::append_to_file(platform::from_utf8(*sum), gha::summary_markdown(result, ctx)))
        log.warning("could not write the job summary to GITHUB_STEP_SUMMARY (" + *sum + ")");
    }
  }
  return static_cast<int>(code);
}

int run_verify(const Options& o) {
  validate(o);
  if (o.positional.empty()) throw InputError("verify: name at least one file");
  X509StorePtr roots, tsa_roots;
  authenticode::VerifyOptions vo;
  if (o.is_given("ca")) {
    roots = load_store("--ca", o.str("ca"));
    vo.roots = roots.get();
  }
  if (o.is_given("tsa-ca")) {
    tsa_roots = load_store("--tsa-ca", o.str("tsa-ca"));
    vo.tsa_roots = tsa_roots.get();
  }
  bool all_ok = true;
  for (const auto& name : o.positional) {
    try {
      auto file = formats::open(platform::from_utf8(name));
      auto v = authenticode::verify(*file, vo);
      if (v.ok()) {
        const auto& s = v.signatures.front();
        std::string extra =
            s.timestamped ? ", time-stamped " + s.timestamp_time : ", no time-stamp";
        if (v.primary_count() > 1)
          extra += ", " + std::to_string(v.primary_count()) + " signatures";
        std::printf("OK    %s  (%s, %s%s)\n", name.c_str(), s.subject.c_str(),
                    std::string(digest_name(s.alg)).c_str(), extra.c_str());
      } else {
        all_ok = false;
        std::printf("FAIL  %s: %s\n", name.c_str(), v.first_problem().c_str());
      }
      // Further certificate-table entries: Windows does not read them, so they do not decide,
      // but the user sees what else the file carries.
      for (const auto& s : v.signatures) {
        if (s.entry == 0 || s.nested) continue;
        std::printf("      certificate-table entry %zu: %s, %s: %s (not checked by Windows)\n",
                    s.entry + 1, s.subject.empty() ? "(no signer)" : s.subject.c_str(),
                    std::string(digest_name(s.alg)).c_str(),
                    s.problems.empty() ? "verifies" : s.problems.front().c_str());
      }
    } catch (const Error& e) {
      all_ok = false;
      std::printf("FAIL  %s\n", one_line(e.what()).c_str());
    }
  }
  std::fflush(stdout);
  return all_ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  platform::setup_console();
  platform::setup_memory();
  std::vector<std::string> args = platform::args_utf8(argc, argv);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::fputs(kUsage, stdout);
    if (args.empty()) return 2;
    std::fputs(("\n" + env::help()).c_str(), stdout);
    return 0;
  }
  if (args[0] == "--version") {
    std::printf("tsign %s\n", TSIGN_VERSION);
    return 0;
  }
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  try {
    if (cmd == "emulator") return emulator::main(rest);
    if (cmd != "sign" && cmd != "verify" && cmd != "action")
      throw InputError("unknown command '" + cmd + "' (see tsign --help)");
    if (wants_help(rest)) {
      std::fputs(kUsage, stdout);
      std::fputs("\noptions:\n", stdout);
      std::fputs(options_help().c_str(), stdout);
      std::fputs(("\n" + credentials_help() + "\n" + env::help()).c_str(), stdout);
      return 0;
    }
    if (cmd == "verify") return run_verify(parse_args(rest));
    if (cmd == "sign") {
      auto o = parse_args(rest);
      return run_signing(o, Mode::cli);
    }
    // action: the inputs come from INPUT_*; flags given too win (for local testing).
    auto o = parse_env(env::process());
    auto flags = parse_args(rest);
    for (const auto& spec : option_table())
      if (auto v = flags.given(OptKey::of(spec))) o.set(OptKey::of(spec), *v);
    o.positional = flags.positional;
    for (auto& n : flags.notes) o.notes.push_back(n);
    return run_signing(o, Mode::action);
  } catch (const Error& e) {
    if (cmd == "action") {
      std::printf("::error::%s\n", gha::escape_data(e.what()).c_str());
      std::fflush(stdout);
    } else {
      std::fprintf(stderr, "tsign: %s\n", e.what());
    }
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tsign: internal error: %s\n", e.what());
    return 1;
  }
}

}  // namespace tsign::cli
