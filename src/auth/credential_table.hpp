// The credentials of the chain as a table (docs/interface.md, "Credentials"): one row per
// credential, in the order the chain tries them. A row holds everything else in tsign needs to
// know about its credential: the name the chain's messages use, its exclusion input (the option
// table derives the exclude-* options from these rows), the --help text of that input, what it
// needs (--help and the "no credential" error), and the factory, defined in the credential's own
// file. Adding a credential is one file and one row here (docs/interface.md says how).
//
// Kept free of Asio and OpenSSL: src/cli/option_table.hpp reads it at compile time.
#pragma once

#include <array>
#include <cstddef>
#include <string_view>

#include "auth/credential_settings.hpp"

namespace tsign::auth {

// What a factory receives and returns; defined in auth_internal.hpp.
struct LinkInputs;
struct LinkOutcome;
using LinkFactory = LinkOutcome (*)(const LinkInputs&);

struct CredentialRow {
  std::string_view name;          // in the chain's messages: "managed identity"
  std::string_view exclude;       // its exclusion input: "exclude-managed-identity-credential"
  std::string_view exclude_help;  // --help of that input
  std::string_view needs;         // what it needs; "needs ..." when it does not apply
  bool CredentialSettings::*excluded;
  LinkFactory make;
};

// The factories, one per credential file.
LinkOutcome environment_credential(const LinkInputs& in);        // client_credential.cpp
LinkOutcome workload_identity_credential(const LinkInputs& in);  // workload_identity.cpp
LinkOutcome managed_identity_credential(const LinkInputs& in);   // managed_identity.cpp
LinkOutcome azure_cli_credential(const LinkInputs& in);          // azure_cli.cpp

inline constexpr std::array kCredentials{
    CredentialRow{
        .name = "environment (client secret or certificate)",
        .exclude = "exclude-environment-credential",
        .exclude_help = "Skip the client secret / certificate credential",
        .needs = "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET or "
                 "AZURE_CLIENT_CERTIFICATE_PATH (or the azure-* inputs)",
        .excluded = &CredentialSettings::exclude_environment,
        .make = &environment_credential,
    },
    CredentialRow{
        .name = "workload identity",
        .exclude = "exclude-workload-identity-credential",
        .exclude_help = "Skip workload identity (federated token file, GitHub OIDC)",
        .needs = "AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_FEDERATED_TOKEN_FILE, or with "
                 "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN (a GitHub job "
                 "with `permissions: id-token: write`)",
        .excluded = &CredentialSettings::exclude_workload_identity,
        .make = &workload_identity_credential,
    },
    CredentialRow{
        .name = "managed identity",
        .exclude = "exclude-managed-identity-credential",
        .exclude_help = "Skip managed identity",
        .needs = "IDENTITY_ENDPOINT and IDENTITY_HEADER, or the instance metadata service of an "
                 "Azure machine",
        .excluded = &CredentialSettings::exclude_managed_identity,
        .make = &managed_identity_credential,
    },
    CredentialRow{
        .name = "Azure CLI",
        .exclude = "exclude-azure-cli-credential",
        .exclude_help = "Skip the Azure CLI credential",
        .needs = "`az` logged in (az login, or a preceding azure/login step)",
        .excluded = &CredentialSettings::exclude_azure_cli,
        .make = &azure_cli_credential,
    },
};

// The rows without their factories, for code that only describes the chain (--help): reading it
// links nothing of the credentials' files.
struct CredentialInfo {
  std::string_view name, exclude, exclude_help, needs;
};
consteval auto credential_infos() {
  std::array<CredentialInfo, kCredentials.size()> out{};
  for (std::size_t i = 0; i < kCredentials.size(); ++i)
    out[i] = {kCredentials[i].name, kCredentials[i].exclude, kCredentials[i].exclude_help,
              kCredentials[i].needs};
  return out;
}
inline constexpr auto kCredentialInfo = credential_infos();

}  // namespace tsign::auth
