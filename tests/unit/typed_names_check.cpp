// Compiled, not run, by the cli_typed_names_* tests (tests/unit/CMakeLists.txt): option names and
// environment variable names written in the code are checked against their tables when tsign is
// compiled, so a misspelt one is a build error, not a silent empty value at run time.
#include "cli/options.hpp"
#include "platform/env.hpp"

int main() {
  tsign::cli::Options o;
#if TSIGN_TYPED_NAME_CASE == 1
  return static_cast<int>(o.str("files-fodler").size());  // misspelt option
#elif TSIGN_TYPED_NAME_CASE == 2
  return static_cast<int>(tsign::env::get("AZURE_TENNANT_ID").has_value());  // undeclared variable
#else
  return static_cast<int>(o.str("files-folder").size() +
                          tsign::env::get("AZURE_TENANT_ID").has_value());
#endif
}
