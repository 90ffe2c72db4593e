#include "cli/options.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <sstream>

#include "common/error.hpp"

namespace tsign::cli {

namespace {

using T = OptType;

// The single declaration of every option. Order = order in --help.
const std::array kOptions{
    OptionSpec{.name = "endpoint",
               .help = "Regional service URL, e.g. https://eus.codesigning.azure.net/ (required "
                       "for cloud signing)"},
    OptionSpec{.name = "signing-account-name", .help = "Artifact (Trusted) Signing account name"},
    OptionSpec{.name = "certificate-profile-name", .help = "Certificate profile name"},
    OptionSpec{.name = "files", .type = T::list, .help = "Comma- or newline-separated file paths"},
    OptionSpec{.name = "files-folder", .help = "Folder to sign files in"},
    OptionSpec{
        .name = "files-folder-filter",
        .type = T::list,
        .help =
            "Comma-separated extensions or globs (dll,exe or *.ps1); empty = every supported file"},
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
    OptionSpec{.name = "timestamp-rfc3161",
               .default_value = "http://timestamp.acs.microsoft.com",
               .help = "RFC 3161 time-stamp authority URL; empty = no time-stamp",
               .empty_is_value = true},
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
    OptionSpec{
        .name = "azure-client-certificate-path",
        .help = "PEM file with the client certificate and key (or AZURE_CLIENT_CERTIFICATE_PATH)"},
    OptionSpec{.name = "exclude-environment-credential",
               .type = T::boolean,
               .default_value = "false",
               .help = "Skip the client secret / certificate credential"},
    OptionSpec{.name = "exclude-workload-identity-credential",
               .type = T::boolean,
               .default_value = "false",
               .help = "Skip workload identity (federated token file, GitHub OIDC)"},
    OptionSpec{.name = "exclude-managed-identity-credential",
               .type = T::boolean,
               .default_value = "false",
               .help = "Skip managed identity"},
    OptionSpec{.name = "exclude-azure-cli-credential",
               .type = T::boolean,
               .default_value = "false",
               .help = "Skip the Azure CLI credential"},
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

const std::array kAliases{
    Alias{"trusted-signing-account-name", "signing-account-name"},
    Alias{"code-signing-account-name", "signing-account-name"},
};

bool valid_boolean(std::string_view v, bool* out) {
  if (v == "true" || v == "True" || v == "TRUE") {
    if (out) *out = true;
    return true;
  }
  if (v == "false" || v == "False" || v == "FALSE") {
    if (out) *out = false;
    return true;
  }
  return false;
}

std::optional<std::int64_t> parse_int(std::string_view v) {
  std::int64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc() || p != v.data() + v.size() || v.empty()) return std::nullopt;
  return x;
}

std::string trim(std::string_view s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Resolves an alias to its option, noting the deprecation.
const OptionSpec* resolve(std::string_view name, Options& opts, std::string_view spelled) {
  for (const auto& a : kAliases) {
    if (a.alias == name) {
      opts.notes.push_back(std::string(spelled) + " is deprecated; use --" + std::string(a.name) +
                           " instead");
      return find_option(a.name);
    }
  }
  return find_option(name);
}

void note_no_effect(const OptionSpec& spec, Options& opts) {
  if (spec.no_effect)
    opts.notes.push_back(std::string(spec.name) + " has no effect in tsign (files are signed " +
                         "concurrently, not in batches); it is accepted for compatibility");
}

}  // namespace

std::span<const OptionSpec> option_table() {
  return kOptions;
}
std::span<const Alias> deprecated_aliases() {
  return kAliases;
}

const OptionSpec* find_option(std::string_view name) {
  for (const auto& o : kOptions)
    if (o.name == name) return &o;
  return nullptr;
}

std::string input_env_name(std::string_view name) {
  std::string out = "INPUT_";
  for (char c : name) {
    if (c == '-' || c == ' ')
      out.push_back('_');
    else
      out.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
  }
  return out;
}

std::optional<std::string> Options::given(std::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Options::str(std::string_view name) const {
  if (auto v = given(name)) return *v;
  const auto* spec = find_option(name);
  return spec ? std::string(spec->default_value) : std::string();
}

bool Options::flag(std::string_view name) const {
  bool b = false;
  valid_boolean(str(name), &b);
  return b;
}

std::optional<std::int64_t> Options::integer(std::string_view name) const {
  auto v = str(name);
  if (v.empty()) return std::nullopt;
  return parse_int(trim(v));
}

std::vector<std::string> Options::list(std::string_view name) const {
  std::vector<std::string> out;
  std::string cur;
  for (char c : str(name) + ",") {
    if (c == ',' || c == '\n') {
      auto t = trim(cur);
      if (!t.empty()) out.push_back(t);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return out;
}

void Options::set(std::string_view name, std::string value) {
  values_.insert_or_assign(std::string(name), std::move(value));
}

Options parse_args(std::span<const std::string> args) {
  Options opts;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 3 || a.rfind("--", 0) != 0) {
      if (a == "--") {
        options_done = true;
        continue;
      }
      if (!options_done && a.size() > 1 && a[0] == '-')
        throw InputError("unknown option " + a + " (see --help)");
      opts.positional.push_back(a);
      continue;
    }
    std::string body = a.substr(2);
    std::optional<std::string> value;
    if (auto eq = body.find('='); eq != std::string::npos) {
      value = body.substr(eq + 1);
      body.resize(eq);
    }
    const OptionSpec* spec = resolve(body, opts, "--" + body);
    if (!spec) throw InputError("unknown option --" + body + " (see --help)");
    if (!value) {
      if (spec->type == OptType::boolean) {
        value = "true";
      } else {
        if (i + 1 >= args.size()) throw InputError("option --" + body + " needs a value");
        value = args[++i];
      }
    }
    note_no_effect(*spec, opts);
    opts.set(spec->name, *value);
  }
  return opts;
}

Options parse_env(const EnvLookup& env) {
  Options opts;
  auto read = [&](std::string_view name) -> std::optional<std::string> {
    // The runner's own spelling keeps hyphens (INPUT_FILES-FOLDER); ours replaces them.
    std::string upper = "INPUT_";
    for (char c : name)
      upper.push_back(c == ' ' ? '_'
                               : static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (auto v = env(input_env_name(name))) return v;
    if (auto v = env(upper)) return v;
    return std::nullopt;
  };
  for (const auto& spec : kOptions) {
    if (spec.scope != Scope::both) continue;
    auto v = read(spec.name);
    if (!v || (v->empty() && !spec.empty_is_value)) continue;
    note_no_effect(spec, opts);
    opts.set(spec.name, *v);
  }
  for (const auto& a : kAliases) {
    auto v = read(a.alias);
    if (!v || v->empty()) continue;
    opts.notes.push_back("input " + std::string(a.alias) + " is deprecated; use " +
                         std::string(a.name) + " instead");
    if (!opts.is_given(a.name)) opts.set(a.name, *v);
  }
  return opts;
}

void validate(const Options& opts) {
  for (const auto& spec : kOptions) {
    auto v = opts.given(spec.name);
    if (!v) continue;
    std::string shown = spec.secret ? std::string("(hidden)") : "'" + *v + "'";
    switch (spec.type) {
      case OptType::boolean:
        if (!valid_boolean(*v, nullptr))
          throw InputError(std::string(spec.name) + ": " + shown +
                           " is not a boolean (use true or false)");
        break;
      case OptType::integer: {
        auto x = parse_int(trim(*v));
        if (!x || *x < spec.min || *x > spec.max)
          throw InputError(std::string(spec.name) + ": " + shown + " is not a whole number from " +
                           std::to_string(spec.min) + " to " + std::to_string(spec.max));
        break;
      }
      case OptType::choice: {
        auto upper = [](std::string_view s) {
          std::string up;
          for (char c : s)
            up.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
          return up;
        };
        std::string up = upper(trim(*v));
        // Without a default, empty means "not given" (api-version: automatic).
        bool ok = up.empty() && spec.default_value.empty();
        std::string_view cs = spec.choices;
        while (!cs.empty()) {
          auto comma = cs.find(',');
          if (upper(cs.substr(0, comma)) == up) ok = true;
          cs = comma == std::string_view::npos ? std::string_view() : cs.substr(comma + 1);
        }
        if (!ok)
          throw InputError(std::string(spec.name) + ": " + shown + " is not one of " +
                           std::string(spec.choices));
        break;
      }
      case OptType::string:
      case OptType::list:
        break;
    }
    if (spec.unsupported)
      throw InputError(std::string(spec.name) + ": not yet supported by this version of tsign");
  }
}

std::string options_help() {
  std::ostringstream os;
  for (const auto& spec : kOptions) {
    if (spec.ignored) continue;
    std::string flag = "  --" + std::string(spec.name);
    if (spec.type != OptType::boolean) flag += " VALUE";
    os << flag;
    if (flag.size() < 40)
      os << std::string(40 - flag.size(), ' ');
    else
      os << "\n" << std::string(40, ' ');
    os << spec.help;
    if (!spec.default_value.empty()) os << " [default: " << spec.default_value << "]";
    if (spec.scope == Scope::both) os << " (input: " << spec.name << ")";
    os << "\n";
  }
  os << "\nEvery option (except --key, --cert, --pfx, --pfx-password-env, --ca, --tsa-ca) is also\n"
        "read by `tsign action` from INPUT_<NAME> (upper case, '-' -> '_').\n"
        "Booleans take exactly true|True|TRUE|false|False|FALSE.\n";
  return os.str();
}

}  // namespace tsign::cli
