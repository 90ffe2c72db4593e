// The ONE registry of environment variables (docs/interface.md, "Environment variables"): every
// variable tsign reads is declared here once, with a description and whether it is sensitive.
// `tsign --help` lists this table; nothing else in src/ reads the process environment
// (tests/unit/env_test.cpp checks that no other file calls getenv).
//
// A name written in the code is a `Var`, checked against the table at compile time: a misspelt
// or undeclared name does not compile. Names known only at run time (INPUT_* of the option
// table, an injected lookup in tests) go through `process()`, which refuses an undeclared name
// as the bug it is.
#pragma once

#include <array>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace tsign::env {

// Who reads the variable.
enum class Reader {
  tsign,    // tsign itself, through this registry
  openssl,  // OpenSSL, while tsign loads the default trust store (listed so users know)
  nobody,   // listed so users know it is NOT used by tsign's own connections
};

struct VarSpec {
  std::string_view name;  // exact name; for a family, its prefix (INPUT_)
  std::string_view description;
  bool sensitive = false;  // its value is never printed (tokens, secrets)
  // Its value is a URL that may carry a password (user:password@): printed with the password
  // masked (mask_url_password), never whole.
  bool url_password = false;
  Reader reader = Reader::tsign;
  bool family = false;  // `name` is a prefix; the members are derived elsewhere (option table)
};

// Declaration order is the order of the --help listing.
inline constexpr std::array kVariables{
    // Credentials (docs/interface.md, "Credentials"); the azure-* inputs win over these.
    VarSpec{.name = "AZURE_TENANT_ID", .description = "Microsoft Entra tenant ID"},
    VarSpec{.name = "AZURE_CLIENT_ID", .description = "Application (client) ID"},
    VarSpec{.name = "AZURE_CLIENT_SECRET",
            .description = "Client secret of the application",
            .sensitive = true},
    VarSpec{.name = "AZURE_CLIENT_CERTIFICATE_PATH",
            .description = "PEM or PKCS#12 (.pfx) file with the application's certificate and "
                           "key"},
    VarSpec{.name = "AZURE_CLIENT_CERTIFICATE_PASSWORD",
            .description = "Password of the PKCS#12 file in AZURE_CLIENT_CERTIFICATE_PATH",
            .sensitive = true},
    VarSpec{.name = "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN",
            .description = "true or 1: the client assertion carries the certificate chain (x5c) "
                           "for subject name + issuer authentication"},
    VarSpec{.name = "AZURE_AUTHORITY_HOST",
            .description = "Entra authority (default https://login.microsoftonline.com)"},
    VarSpec{.name = "AZURE_FEDERATED_TOKEN_FILE",
            .description = "File holding a federated token (workload identity; read for every "
                           "token)"},
    VarSpec{.name = "ACTIONS_ID_TOKEN_REQUEST_URL",
            .description = "GitHub OIDC token URL (set by the runner with `id-token: write`)"},
    VarSpec{.name = "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            .description = "Bearer token for that URL (set by the runner)",
            .sensitive = true},
    VarSpec{.name = "IDENTITY_ENDPOINT",
            .description = "Managed identity endpoint (App Service style, with IDENTITY_HEADER)"},
    VarSpec{.name = "IDENTITY_HEADER",
            .description = "Secret header for IDENTITY_ENDPOINT",
            .sensitive = true},
    // GitHub runner conventions.
    VarSpec{.name = "GITHUB_OUTPUT", .description = "tsign action: file the step outputs go to"},
    VarSpec{.name = "GITHUB_STEP_SUMMARY",
            .description = "tsign action: file the job summary goes to"},
    VarSpec{.name = "RUNNER_DEBUG", .description = "1: debug output, as --trace"},
    VarSpec{.name = "GITHUB_WORKSPACE",
            .description = "tsign action: the job summary names files relative to it"},
    VarSpec{.name = "RUNNER_TEMP",
            .description = "tsign action: the JSON report and the subject checksums go there "
                           "(the report only when `report` is not given)"},
    VarSpec{.name = "INPUT_",
            .description = "tsign action: each option that is an action input, upper case, "
                           "'-' -> '_' (INPUT_AZURE_CLIENT_SECRET is sensitive)",
            .family = true},
    // tsign's own.
    VarSpec{.name = "TSIGN_ALLOWED_HOSTS",
            .description = "Comma-separated hosts allowed as endpoint besides "
                           "*.codesigning.azure.net (emulator, tests)"},
    VarSpec{.name = "TSIGN_NO_TMPFILE",
            .description = "Non-empty: write named temporaries, not O_TMPFILE (tests)"},
    // TLS trust.
    VarSpec{.name = "SSL_CERT_FILE", .description = "CA bundle used instead of the system's roots"},
    VarSpec{.name = "SSL_CERT_DIR",
            .description = "Folder of CA certificates (Linux, macOS)",
            .reader = Reader::openssl},
    VarSpec{.name = "TSIGN_PROXY_LOOPBACK",
            .description = "1: send loopback traffic (localhost, 127.0.0.0/8, ::1) through the "
                           "proxy too; for testing a proxy on one machine"},
    // Proxies (README, "Proxies"), spelt as curl reads them: lower case wins when both are set.
    VarSpec{.name = "HTTPS_PROXY",
            .description = "Proxy for https URLs: http://[user:password@]host[:port]",
            .url_password = true},
    VarSpec{.name = "https_proxy",
            .description = "As HTTPS_PROXY, and wins over it",
            .url_password = true},
    VarSpec{.name = "HTTP_PROXY",
            .description = "Proxy for http URLs (the time-stamp authority), as HTTPS_PROXY",
            .url_password = true},
    VarSpec{.name = "http_proxy",
            .description = "As HTTP_PROXY, and wins over it",
            .url_password = true},
    VarSpec{.name = "NO_PROXY",
            .description = "Comma-separated hosts, .domains, IP addresses or networks, "
                           "host:port, or *, reached without the proxy"},
    VarSpec{.name = "no_proxy", .description = "As NO_PROXY, and wins over it"},
};

// Called only when a name is not in the table, which stops the compilation (a consteval
// function may not call it): the compiler's message names this function.
void undeclared_environment_variable(const char* name);

consteval std::size_t index_of_variable(const char* name) {
  for (std::size_t i = 0; i < kVariables.size(); ++i)
    if (!kVariables[i].family && kVariables[i].reader == Reader::tsign &&
        kVariables[i].name == name)
      return i;
  undeclared_environment_variable(name);
  return kVariables.size();
}

// A declared variable, named in the code: `env::get("RUNNER_DEBUG")`.
class Var {
 public:
  consteval Var(const char* name) : index_(index_of_variable(name)) {}  // NOLINT: implicit
  const VarSpec& spec() const { return kVariables[index_]; }
  std::string name() const { return std::string(spec().name); }

 private:
  std::size_t index_;
};

// An environment: the process's in the product, a map in tests.
using Lookup = std::function<std::optional<std::string>(const std::string&)>;

// The variable's value in the process environment (nullopt when not set).
std::optional<std::string> get(Var v);
// The same through an injected lookup (tests), with the name still checked.
std::optional<std::string> get(const Lookup& env, Var v);

// The process environment for code that receives names at run time (INPUT_* of the option
// table) or a Lookup (auth/): a declared name is read; any other is a bug in tsign and throws
// std::logic_error naming it.
Lookup process();
// Whether `name` is declared: an exact variable read by tsign, or a member of a family.
bool declared(std::string_view name);

// The variable the user named with --pfx-password-env: its name is the user's choice, so it
// cannot be declared; its value is a password (never printed).
std::optional<std::string> get_named_by_user(const std::string& name);

// `url` with the password of its user info replaced by "***" (http://user:***@host:3128); a
// URL without a password is returned as it is. A raw '@' or '/' in the password is masked too.
std::string mask_url_password(std::string_view url);

// The --help listing: every variable with its description, sensitive ones marked.
std::string help();

// For the debug log: every declared variable tsign reads that is set in `env`, as NAME=value,
// or "NAME (set, value hidden)" for a sensitive one, NAME=masked URL for a url_password one.
// Families are left out.
std::string set_summary(const Lookup& env);

}  // namespace tsign::env
