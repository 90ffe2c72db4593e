// The ONE option table (docs/interface.md, "One option table, three ways in"): every option is
// declared once here, with its name, default, help and type; the --flags, the INPUT_* variables
// and --help are all derived from it. The exclude-*-credential inputs come from the rows of the
// credential table (src/auth/credential_table.hpp).
//
// The table is constexpr so that an option name written in the code is checked when tsign is
// compiled: `o.str("endpoint")` takes an OptKey, whose constructor is consteval and fails to
// compile for a name that is not in the table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "auth/credential_table.hpp"

namespace tsign::cli {

enum class OptType { string, boolean, integer, list, choice };

// Where an option may be given.
enum class Scope {
  both,      // action input and command-line flag
  cli_only,  // command line only (local keys, verify's --ca)
};

struct OptionSpec {
  std::string_view name;
  OptType type = OptType::string;
  std::string_view default_value;  // empty: no default
  std::string_view help;
  std::string_view choices;       // for OptType::choice: comma-separated, canonical spelling
  std::int64_t min = 0, max = 0;  // for OptType::integer (inclusive)
  bool secret = false;            // never echoed in a message or log
  Scope scope = Scope::both;
  // Accepted for compatibility with Azure/artifact-signing-action; has no effect (a note is
  // logged once when given).
  bool no_effect = false;
  // Accepted and silently ignored (the anchor's credential switches for links tsign lacks).
  bool ignored = false;
  // Declared for the contract; using it fails with "not yet supported".
  bool unsupported = false;
  // Only in the declaration below: where the credential table's exclusion inputs go.
  bool credential_exclusions = false;
};

struct Alias {
  std::string_view alias, name;
};

namespace table {

using T = OptType;

// Every option, in the order of --help.
inline constexpr std::array kDeclared{
    OptionSpec{.name = "endpoint",
               .help = "Regional service URL, e.g. https://eus.codesigning.azure.net/ (required "
                       "for cloud signing)"},
    OptionSpec{.name = "signing-account-name", .help = "Artifact (Trusted) Signing account name"},
    OptionSpec{.name = "certificate-profile-name", .help = "Certificate profile name"},
    OptionSpec{.name = "files", .type = T::list, .help = "Comma- or newline-separated file paths"},
    OptionSpec{.name = "files-folder", .help = "Folder to sign files in"},
    OptionSpec{.name = "files-folder-filter",
               .type = T::list,
               .help =
                   "Comma-separated extensions, globs and path globs (dll,exe or *.ps1 or "
                   "**/bin/*.dll), and exclusions (!*.Tests.dll); empty = every supported file"},
    OptionSpec{.name = "files-folder-recurse",
               .type = T::boolean,
               .default_value = "false",
               .help = "Descend into sub-folders"},
    OptionSpec{.name = "files-folder-depth",
               .type = T::integer,
               .help = "How deep files-folder-recurse goes (unlimited when not given)",
               .min = 0,
               .max = 1000000},
    OptionSpec{.name = "files-catalog",
               .help = "Text file listing files to sign, one per line, relative to the catalog"},
    OptionSpec{.name = "file-digest",
               .type = T::choice,
               .default_value = "SHA256",
               .help = "File digest algorithm",
               .choices = "SHA256,SHA384,SHA512"},
    // An unset workflow variable gives an empty input: that must never mean unstamped signatures,
    // which die with the service's 3-day certificate. Only "none" turns time-stamping off.
    OptionSpec{.name = "timestamp-rfc3161",
               .type = T::list,
               .default_value = "http://timestamp.acs.microsoft.com",
               .help = "RFC 3161 time-stamp authority URLs, comma-separated, tried in order for "
                       "each file; empty = the default; none = no time-stamp"},
    OptionSpec{.name = "timestamp-digest",
               .type = T::choice,
               .default_value = "SHA256",
               .help = "Time-stamp digest algorithm",
               .choices = "SHA256,SHA384,SHA512"},
    OptionSpec{.name = "append-signature",
               .type = T::boolean,
               .default_value = "false",
               .help = "Add a nested signature instead of replacing an existing one"},
    OptionSpec{.name = "description", .help = "Program name in the signature (SpcSpOpusInfo)"},
    OptionSpec{.name = "description-url", .help = "Program URL in the signature (SpcSpOpusInfo)"},
    OptionSpec{.name = "timeout",
               .type = T::integer,
               .default_value = "300",
               .help = "Seconds for the whole run",
               .min = 1,
               .max = 7 * 24 * 3600},
    OptionSpec{.name = "concurrency",
               .type = T::integer,
               .help = "Files in flight at once (default: chosen by tsign)",
               .min = 1,
               .max = 1024},
    OptionSpec{.name = "max-signatures",
               .type = T::integer,
               .help = "Request at most this many signatures in the run (each may be billed); "
                       "0 or empty = no limit. Files past it stay unsigned, exit 5",
               .min = 0,
               .max = 1000000000},
    OptionSpec{.name = "batch-size",
               .type = T::integer,
               .help = "Accepted for compatibility; has no effect",
               .min = 0,
               .max = 1000000000,
               .no_effect = true},
    OptionSpec{.name = "correlation-id",
               .help = "Sent to the service with every request and shown in the summary"},
    OptionSpec{.name = "api-version",
               .type = T::choice,
               .help = "Signing service API version: 2024-06-15 or 2022-06-15-preview; empty = "
                       "automatic (2024-06-15, falling back once to the preview if refused)",
               .choices = "2024-06-15,2022-06-15-preview"},
    OptionSpec{.name = "azure-tenant-id", .help = "Microsoft Entra tenant ID (or AZURE_TENANT_ID)"},
    OptionSpec{.name = "azure-client-id", .help = "Application (client) ID (or AZURE_CLIENT_ID)"},
    OptionSpec{.name = "azure-client-secret",
               .help = "Client secret (or AZURE_CLIENT_SECRET); prefer federated credentials",
               .secret = true},
    OptionSpec{.name = "azure-client-certificate-path",
               .help = "PEM or PKCS#12 (.pfx) file with the client certificate and key (or "
                       "AZURE_CLIENT_CERTIFICATE_PATH)"},
    OptionSpec{.name = "azure-client-certificate-password",
               .help = "Password of a PKCS#12 client certificate (or "
                       "AZURE_CLIENT_CERTIFICATE_PASSWORD)",
               .secret = true},
    OptionSpec{.name = "azure-client-send-certificate-chain",
               .type = T::boolean,
               .default_value = "false",
               .help = "Send the certificate chain (x5c) with the client assertion, for subject "
                       "name + issuer authentication (or AZURE_CLIENT_SEND_CERTIFICATE_CHAIN)"},
    // Here: one exclude-*-credential input per row of the credential table, in its order.
    OptionSpec{.credential_exclusions = true},
    OptionSpec{.name = "exclude-shared-token-cache-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "exclude-visual-studio-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "exclude-visual-studio-code-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "exclude-azure-powershell-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "exclude-azure-developer-cli-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "exclude-interactive-browser-credential",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    // The anchor installs its PowerShell modules with it; tsign has none to cache.
    OptionSpec{.name = "cache-dependencies",
               .type = T::boolean,
               .help = "Accepted for compatibility; ignored",
               .ignored = true},
    OptionSpec{.name = "skip-signed",
               .type = T::boolean,
               .default_value = "false",
               .help = "Leave files that already carry a valid signature alone"},
    OptionSpec{.name = "dry-run",
               .type = T::boolean,
               .default_value = "false",
               .help = "List what would be signed; sign nothing"},
    OptionSpec{.name = "report", .help = "Path of a JSON report"},
    // The anchor's input name, so a workflow that sets it keeps its meaning.
    OptionSpec{.name = "trace",
               .type = T::boolean,
               .default_value = "false",
               .help = "Debug output (as RUNNER_DEBUG=1): retries, token refreshes, the service "
                       "API version chosen"},
    // Command line only: a local key instead of the service (development, offline tests).
    OptionSpec{.name = "key",
               .help = "PEM private key (local signing instead of the service)",
               .scope = Scope::cli_only},
    OptionSpec{.name = "cert",
               .help = "PEM certificate chain, leaf first (with --key)",
               .scope = Scope::cli_only},
    OptionSpec{.name = "pfx",
               .help = "PKCS#12 file with key and chain (local signing)",
               .scope = Scope::cli_only},
    OptionSpec{.name = "pfx-password-env",
               .help = "Name of the environment variable holding the --pfx password",
               .scope = Scope::cli_only},
    OptionSpec{.name = "verbose",
               .type = T::boolean,
               .default_value = "false",
               .help = "Same as --trace",
               .scope = Scope::cli_only},
    OptionSpec{.name = "ca",
               .help = "verify: PEM file of trusted roots (default: the system roots)",
               .scope = Scope::cli_only},
    OptionSpec{.name = "tsa-ca",
               .help = "verify: PEM file of trusted time-stamp roots (default: --ca)",
               .scope = Scope::cli_only},
};

// kDeclared with its marker replaced by the credential table's exclusion inputs.
consteval auto with_credential_exclusions() {
  std::array<OptionSpec, kDeclared.size() - 1 + auth::kCredentialInfo.size()> out{};
  std::size_t n = 0;
  for (const auto& o : kDeclared) {
    if (!o.credential_exclusions) {
      out[n++] = o;
      continue;
    }
    for (const auto& c : auth::kCredentialInfo)
      out[n++] = OptionSpec{
          .name = c.exclude, .type = T::boolean, .default_value = "false", .help = c.exclude_help};
  }
  return out;
}

}  // namespace table

inline constexpr auto kOptionTable = table::with_credential_exclusions();

inline constexpr std::array kAliases{
    Alias{"trusted-signing-account-name", "signing-account-name"},
    Alias{"code-signing-account-name", "signing-account-name"},
};

// Called only for a name that is not in the table, which stops the compilation (a consteval
// function may not call it): the compiler's message names this function.
void option_not_in_the_table(const char* name);

consteval std::size_t option_index(std::string_view name) {
  for (std::size_t i = 0; i < kOptionTable.size(); ++i)
    if (kOptionTable[i].name == name) return i;
  option_not_in_the_table(name.data());
  return kOptionTable.size();
}

consteval bool table_is_sound() {
  for (std::size_t i = 0; i < kOptionTable.size(); ++i)
    for (std::size_t j = i + 1; j < kOptionTable.size(); ++j)
      if (kOptionTable[i].name == kOptionTable[j].name) return false;  // declared twice
  for (const auto& a : kAliases) option_index(a.name);                 // an alias of nothing
  return true;
}
static_assert(table_is_sound(), "an option is declared twice");

// An option of the table, named in the code: `o.str("endpoint")`. A misspelt name does not
// compile. Code that walks the table takes its rows with OptKey::of.
class OptKey {
 public:
  consteval OptKey(const char* name) : index_(option_index(name)) {}  // NOLINT: implicit
  // The key of a row of kOptionTable (a reference into it).
  static OptKey of(const OptionSpec& row);
  // The key of a name known only at run time; a name outside the table is a bug in tsign
  // (std::logic_error), never a silent empty value.
  static OptKey named(std::string_view name);

  const OptionSpec& spec() const { return kOptionTable[index_]; }
  std::string_view name() const { return spec().name; }
  std::size_t index() const { return index_; }

 private:
  struct Row {};
  OptKey(Row, std::size_t index) : index_(index) {}
  std::size_t index_;
};

}  // namespace tsign::cli
