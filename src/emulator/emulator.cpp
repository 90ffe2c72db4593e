// `tsign emulator`: option parsing and the command's main (interface.md, "The emulator").
#include "emulator/emulator.hpp"

#include <charconv>
#include <cstdio>
#include <iostream>
#include <limits>
#include <thread>

#include "common/error.hpp"
#include "platform/platform.hpp"

namespace tsign::emulator {

namespace {

int parse_int(const std::string& option, const std::string& value, int min, int max) {
  int v = 0;
  auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
  if (ec != std::errc() || p != value.data() + value.size() || v < min || v > max)
    throw InputError("emulator: " + option + " expects a whole number from " + std::to_string(min) +
                     " to " + std::to_string(max) + ", not '" + value + "'");
  return v;
}

// "127.0.0.1:8443", "[::1]:8443", "localhost:0"
void parse_listen(const std::string& value, Options& o) {
  auto colon = value.rfind(':');
  if (colon == std::string::npos || colon + 1 == value.size())
    throw InputError("emulator: --listen expects HOST:PORT (e.g. 127.0.0.1:0), not '" + value +
                     "'");
  std::string host = value.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  // It hands out tokens and signatures to whoever asks: loopback only.
  if (host != "127.0.0.1" && host != "::1")
    throw InputError(
        "emulator: --listen: the emulator listens on loopback only (127.0.0.1 or "
        "[::1]), not '" +
        host + "'");
  o.listen_host = host;
  o.listen_port =
      static_cast<std::uint16_t>(parse_int("--listen", value.substr(colon + 1), 0, 65535));
}

}  // namespace

std::string usage() {
  return R"(usage: tsign emulator [options]

A local stand-in for GitHub OIDC, Entra ID, Trusted Signing and an RFC 3161 time-stamp
authority. Prints `export` lines that point tsign at it, then `# tsign emulator ready`.

  --listen HOST:PORT            HTTPS address (default 127.0.0.1:0, a free port; loopback only)
  --tsa-port PORT               plain-HTTP time-stamp port (default 0, a free port)
  --state-dir DIR               keys, certificates, env, requests.log (default: a new temp dir)
  --account NAME                code signing account (default emu-account)
  --profile NAME                certificate profile (default emu-profile)
  --subject SUB                 GitHub OIDC subject (default repo:tsign-emulator/demo:ref:refs/heads/main)
  --polls-before-success N      InProgress answers before Succeeded (default 1)
  --poll-retry-after SECONDS    Retry-After on 202 and InProgress answers (default 0)
  --github-token-lifetime SECONDS   (default 300)
  --access-token-lifetime SECONDS   (default 3600)
  --exit-on-stdin-eof           stop when stdin closes

Fault injection (each "every N" counts sign + poll requests; --tsa-fail-every counts TSA requests):
  --latency-ms N                delay every answer by N ms
  --throttle-every N            429 with Retry-After: 1
  --capacity N                  at most N sign/poll requests at once (with --latency-ms);
                                one more is answered 429 with Retry-After: 1
  --fail-every N                503 with Retry-After: 1
  --drop-every N                close the connection without answering
  --malformed-every N           200/202 with a truncated JSON body
  --drop-polls-every N          close the connection without answering, every Nth poll
  --malformed-polls-every N     200 with a truncated JSON body, every Nth poll
  --tsa-fail-every N            503 from the time-stamp authority
  --bad-signature               sign a different digest than the one asked for
  --chain-without-eku           leaf certificate without the codeSigning EKU
  --forbid                      403 with an empty body for every sign request

Service API versions:
  --api-versions LIST           comma-separated api-versions served (default: all it knows,
                                2024-06-15,2022-06-15-preview,2023-06-15-preview)
  --unsupported-version-status 400|401|404
                                how another api-version is refused (default 400: an Azure Core
                                UnsupportedApiVersion error; 401 and 404 come with no body)
)";
}

Options parse_options(std::span<const std::string> args) {
  Options o;
  constexpr int kMax = std::numeric_limits<int>::max();
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string name = args[i];
    std::optional<std::string> inline_value;
    if (auto eq = name.find('='); name.starts_with("--") && eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    auto flag = [&] {
      if (inline_value) throw InputError("emulator: " + name + " takes no value");
    };
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) throw InputError("emulator: " + name + " needs a value");
      return args[++i];
    };
    auto count = [&](int min = 0) { return parse_int(name, value(), min, kMax); };

    if (name == "--help" || name == "-h") {
      flag();
      o.help = true;
    } else if (name == "--listen") {
      parse_listen(value(), o);
    } else if (name == "--tsa-port") {
      o.tsa_port = static_cast<std::uint16_t>(parse_int(name, value(), 0, 65535));
    } else if (name == "--state-dir") {
      std::string v = value();
      if (v.empty()) throw InputError("emulator: --state-dir needs a directory");
      o.state_dir = platform::from_utf8(v);
    } else if (name == "--account" || name == "--profile" || name == "--subject") {
      std::string v = value();
      // Names are path segments of the service's URLs.
      if (v.empty() || (name != "--subject" && v.find_first_of("/?#:% ") != std::string::npos))
        throw InputError("emulator: " + name + " '" + v + "' is not a valid name");
      (name == "--account" ? o.account : name == "--profile" ? o.profile : o.subject) = v;
    } else if (name == "--polls-before-success") {
      o.polls_before_success = count();
    } else if (name == "--poll-retry-after") {
      o.poll_retry_after = count();
    } else if (name == "--github-token-lifetime") {
      o.github_token_lifetime = std::chrono::seconds(count(1));
    } else if (name == "--access-token-lifetime") {
      o.access_token_lifetime = std::chrono::seconds(count(1));
    } else if (name == "--latency-ms") {
      o.latency = std::chrono::milliseconds(count());
    } else if (name == "--throttle-every") {
      o.throttle_every = count();
    } else if (name == "--capacity") {
      o.capacity = count();
    } else if (name == "--fail-every") {
      o.fail_every = count();
    } else if (name == "--drop-every") {
      o.drop_every = count();
    } else if (name == "--malformed-every") {
      o.malformed_every = count();
    } else if (name == "--drop-polls-every") {
      o.drop_polls_every = count();
    } else if (name == "--malformed-polls-every") {
      o.malformed_polls_every = count();
    } else if (name == "--tsa-fail-every") {
      o.tsa_fail_every = count();
    } else if (name == "--bad-signature") {
      flag();
      o.bad_signature = true;
    } else if (name == "--chain-without-eku") {
      flag();
      o.chain_without_eku = true;
    } else if (name == "--forbid") {
      flag();
      o.forbid = true;
    } else if (name == "--api-versions") {
      std::string v = value();
      o.api_versions.clear();
      std::size_t start = 0;
      for (;;) {
        auto comma = v.find(',', start);
        std::string item = v.substr(start, comma == std::string::npos ? comma : comma - start);
        if (item != "2024-06-15" && item != "2022-06-15-preview" && item != "2023-06-15-preview")
          throw InputError("emulator: --api-versions: '" + item +
                           "' is not one of 2024-06-15, 2022-06-15-preview, 2023-06-15-preview");
        o.api_versions.push_back(item);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (name == "--unsupported-version-status") {
      std::string v = value();
      if (v != "400" && v != "401" && v != "404")
        throw InputError("emulator: --unsupported-version-status expects 400, 401 or 404, not '" +
                         v + "'");
      o.unsupported_version_status = std::stoi(v);
    } else if (name == "--exit-on-stdin-eof") {
      flag();
      o.exit_on_stdin_eof = true;
    } else {
      throw InputError("emulator: unknown option '" + args[i] + "' (see tsign emulator --help)");
    }
  }
  return o;
}

int main(std::span<const std::string> args) {
  try {
    Options o = parse_options(args);
    if (o.help) {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    o.handle_signals = true;
    Server server(o);
    const Endpoints& ep = server.endpoints();
    for (const auto& line : ep.env_lines) std::printf("%s\n", line.c_str());
    std::printf("# client secret for tests (not exported, so GitHub OIDC is the default): %s\n",
                platform::to_utf8(ep.state_dir / "client-secret").c_str());
    std::printf("# request log: %s\n", platform::to_utf8(ep.state_dir / "requests.log").c_str());
    std::printf("# tsign emulator ready\n");
    std::fflush(stdout);

    if (o.exit_on_stdin_eof) {
      // Blocks in a read until the parent closes the pipe; detached because it may still be
      // blocked when a signal ends the run, and the stopper stays safe after the server is gone.
      std::thread([stop = server.stopper()] {
        std::cin.ignore(std::numeric_limits<std::streamsize>::max());
        stop();
      }).detach();
    }
    server.run();
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return static_cast<int>(e.code());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: emulator: %s\n", e.what());
    return 1;
  }
}

}  // namespace tsign::emulator
