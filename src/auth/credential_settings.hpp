// The inputs of the credential chain (from the option table and the environment). A header of
// its own, without Asio, because the option table (src/cli/option_table.hpp) reads the
// credential table (credential_table.hpp), whose rows point into this struct.
#pragma once

#include <string>

#include "common/secret.hpp"

namespace tsign::auth {

struct CredentialSettings {
  std::string tenant_id, client_id;
  Secret client_secret;
  std::string client_certificate_path;  // PEM or PKCS#12
  Secret client_certificate_password;   // opens a PKCS#12 file
  bool send_certificate_chain = false;  // x5c in the client assertion (subject name + issuer)
  std::string authority_host = "https://login.microsoftonline.com";
  // Set by the exclusion inputs; each row of credential_table.hpp names its own.
  bool exclude_environment = false, exclude_workload_identity = false,
       exclude_managed_identity = false, exclude_azure_cli = false;
};

}  // namespace tsign::auth
