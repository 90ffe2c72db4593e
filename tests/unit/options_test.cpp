#include <catch2/catch.hpp>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "common/error.hpp"

using namespace tsign;
using namespace tsign::cli;

namespace {
Options args(std::vector<std::string> v) {
  return parse_args(v);
}
EnvLookup env_of(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("every interface.md option is declared once", "[cli]") {
  for (auto name : {"endpoint",
                    "signing-account-name",
                    "certificate-profile-name",
                    "files",
                    "files-folder",
                    "files-folder-filter",
                    "files-folder-recurse",
                    "files-folder-depth",
                    "files-catalog",
                    "file-digest",
                    "timestamp-rfc3161",
                    "timestamp-digest",
                    "append-signature",
                    "description",
                    "description-url",
                    "timeout",
                    "concurrency",
                    "batch-size",
                    "correlation-id",
                    "api-version",
                    "azure-tenant-id",
                    "azure-client-id",
                    "azure-client-secret",
                    "azure-client-certificate-path",
                    "exclude-environment-credential",
                    "exclude-workload-identity-credential",
                    "exclude-managed-identity-credential",
                    "exclude-azure-cli-credential",
                    "skip-signed",
                    "dry-run",
                    "report"}) {
    INFO(name);
    CHECK(find_option(name) != nullptr);
  }
  auto table = option_table();
  for (std::size_t i = 0; i < table.size(); ++i)
    for (std::size_t j = i + 1; j < table.size(); ++j) CHECK(table[i].name != table[j].name);
}

TEST_CASE("flags: both spellings, booleans alone, defaults", "[cli]") {
  auto o = args({"--files-folder", "out dir", "--file-digest=SHA384", "--dry-run", "a.exe"});
  CHECK(o.str("files-folder") == "out dir");
  CHECK(o.str("file-digest") == "SHA384");
  CHECK(o.flag("dry-run"));
  CHECK_FALSE(o.flag("append-signature"));
  CHECK(o.str("timeout") == "300");
  CHECK(o.integer("timeout") == 300);
  CHECK(o.positional == std::vector<std::string>{"a.exe"});
  validate(o);
}

TEST_CASE("unknown flags and missing values are input errors naming the flag", "[cli]") {
  try {
    args({"--no-such-thing", "x"});
    FAIL("accepted an unknown flag");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("--no-such-thing") != std::string::npos);
    CHECK(e.code() == ExitCode::input);
  }
  CHECK_THROWS_AS(args({"--files-folder"}), InputError);
}

TEST_CASE("booleans accept exactly the six spellings", "[cli]") {
  for (auto ok : {"true", "True", "TRUE", "false", "False", "FALSE"}) {
    auto o = args({std::string("--skip-signed=") + ok});
    CHECK_NOTHROW(validate(o));
  }
  for (auto bad : {"yes", "1", "tRUE", "", " true"}) {
    auto o = args({std::string("--skip-signed=") + bad});
    try {
      validate(o);
      FAIL(std::string("accepted boolean '") + bad + "'");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find("skip-signed") != std::string::npos);
    }
  }
}

TEST_CASE("integers and choices are range-checked", "[cli]") {
  CHECK_THROWS_AS(validate(args({"--timeout=0"})), InputError);
  CHECK_THROWS_AS(validate(args({"--timeout=ten"})), InputError);
  CHECK_THROWS_AS(validate(args({"--concurrency=-1"})), InputError);
  CHECK_THROWS_AS(validate(args({"--file-digest=MD5"})), InputError);
  CHECK_NOTHROW(validate(args({"--file-digest=sha512"})));
}

TEST_CASE("api-version: the two versions tsign speaks, any case, empty = automatic", "[cli]") {
  CHECK_NOTHROW(validate(args({"--api-version=2024-06-15"})));
  CHECK_NOTHROW(validate(args({"--api-version", "2022-06-15-preview"})));
  CHECK_NOTHROW(validate(args({"--api-version=2022-06-15-PREVIEW"})));
  CHECK_NOTHROW(validate(args({"--api-version="})));
  CHECK_THAT(
      [] {
        try {
          validate(args({"--api-version=2023-06-15-preview"}));
        } catch (const InputError& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      Catch::StartsWith("api-version: '2023-06-15-preview' is not one of"));
  auto o = parse_env(env_of({{"INPUT_API_VERSION", "2024-06-15"}}));
  CHECK(o.str("api-version") == "2024-06-15");
  CHECK_FALSE(parse_env(env_of({{"INPUT_API_VERSION", ""}})).is_given("api-version"));
  CHECK(args({}).str("api-version").empty());  // automatic by default
  // Empty is "not given" only without a default: file-digest="" stays an error.
  CHECK_THROWS_AS(validate(args({"--file-digest="})), InputError);
}

TEST_CASE("INPUT_* variables in both spellings", "[cli]") {
  auto o = parse_env(env_of({{"INPUT_FILES_FOLDER", "bin"},
                             {"INPUT_FILES-FOLDER-FILTER", "dll,exe"},
                             {"INPUT_ENDPOINT", ""},
                             {"INPUT_TIMESTAMP_RFC3161", ""}}));
  CHECK(o.str("files-folder") == "bin");
  CHECK(o.list("files-folder-filter") == std::vector<std::string>{"dll", "exe"});
  CHECK_FALSE(o.is_given("endpoint"));  // empty action input = not given
  CHECK_FALSE(o.is_given("timestamp-rfc3161"));
}

TEST_CASE(
    "timestamp-rfc3161: empty is the default authority, only 'none' turns it off, "
    "several are tried in order",
    "[cli][timestamp]") {
  const std::vector<std::string> fallback{"http://timestamp.acs.microsoft.com"};
  // An unset workflow variable (`${{ vars.TSA }}`) gives an empty input: the default, never none.
  CHECK(timestamp_urls(parse_env(env_of({{"INPUT_TIMESTAMP_RFC3161", ""}}))) == fallback);
  CHECK(timestamp_urls(args({"--timestamp-rfc3161="})) == fallback);
  CHECK(timestamp_urls(args({})) == fallback);
  CHECK(timestamp_urls(args({"--timestamp-rfc3161", "None"})).empty());
  CHECK(timestamp_urls(parse_env(env_of(
            {{"INPUT_TIMESTAMP_RFC3161", "http://a.example/tsa,\n https://b.example\n"}}))) ==
        std::vector<std::string>{"http://a.example/tsa", "https://b.example"});
  auto error = [](std::vector<std::string> v) -> std::string {
    try {
      timestamp_urls(args(std::move(v)));
    } catch (const InputError& e) {
      return e.what();
    }
    return "no error";
  };
  CHECK_THAT(error({"--timestamp-rfc3161", "timestamp.acs.microsoft.com"}),
             Catch::StartsWith("timestamp-rfc3161: 'timestamp.acs.microsoft.com' is not an "
                               "http:// or https:// URL"));
  CHECK_THAT(error({"--timestamp-rfc3161", "http://a.example,none"}),
             Catch::Contains("'none' turns time-stamping off"));
}

TEST_CASE("deprecated account-name aliases map to signing-account-name with a note", "[cli]") {
  auto o = parse_env(env_of({{"INPUT_TRUSTED_SIGNING_ACCOUNT_NAME", "acct"}}));
  CHECK(o.str("signing-account-name") == "acct");
  REQUIRE(o.notes.size() == 1);
  CHECK(o.notes[0].find("deprecated") != std::string::npos);
  auto f = args({"--code-signing-account-name", "x"});
  CHECK(f.str("signing-account-name") == "x");
}

TEST_CASE("batch-size is accepted with a no-effect note, lists split on commas and newlines",
          "[cli]") {
  auto o = args({"--batch-size=50", "--files", "a.exe, b.dll\nc.sys,,"});
  validate(o);
  CHECK(o.notes.size() == 1);
  CHECK(o.list("files") == std::vector<std::string>{"a.exe", "b.dll", "c.sys"});
}

TEST_CASE("a secret's value never appears in an error", "[cli]") {
  // azure-client-secret is a string: no type error possible; check the table marks it.
  REQUIRE(find_option("azure-client-secret")->secret);
}

TEST_CASE("certificate credential options, and cache-dependencies accepted and ignored quietly",
          "[cli]") {
  REQUIRE(find_option("azure-client-certificate-password"));
  CHECK(find_option("azure-client-certificate-password")->secret);
  REQUIRE(find_option("azure-client-send-certificate-chain"));
  CHECK(find_option("azure-client-send-certificate-chain")->type == OptType::boolean);
  auto o = parse_env(env_of({{"INPUT_AZURE_CLIENT_CERTIFICATE_PASSWORD", "pw"},
                             {"INPUT_AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "true"},
                             {"INPUT_CACHE_DEPENDENCIES", "true"}}));
  validate(o);
  CHECK(o.str("azure-client-certificate-password") == "pw");
  CHECK(o.flag("azure-client-send-certificate-chain"));
  CHECK(o.notes.empty());  // quietly
  // The command line takes it too (a script copied from a workflow), and help leaves it out.
  auto c = args({"--cache-dependencies=false"});
  validate(c);
  CHECK(c.notes.empty());
  REQUIRE(find_option("cache-dependencies"));
  CHECK(find_option("cache-dependencies")->ignored);
  CHECK(options_help().find("cache-dependencies") == std::string::npos);
}

TEST_CASE("help is generated from the table", "[cli]") {
  auto h = options_help();
  for (const auto& spec : option_table()) {
    if (spec.ignored) continue;
    CHECK(h.find("--" + std::string(spec.name)) != std::string::npos);
  }
}

TEST_CASE("the exclude-* inputs are the credential table's rows, in the chain's order", "[cli]") {
  auto table = option_table();
  std::size_t previous = 0;
  for (const auto& c : auth::kCredentialInfo) {
    INFO(c.exclude);
    const OptionSpec* spec = find_option(c.exclude);
    REQUIRE(spec != nullptr);
    CHECK(spec->type == OptType::boolean);
    CHECK(spec->default_value == "false");
    CHECK(spec->help == c.exclude_help);
    CHECK(spec->scope == Scope::both);
    auto at = static_cast<std::size_t>(spec - table.data());
    CHECK(at > previous);
    previous = at;
  }
  auto h = credentials_help();
  std::size_t pos = 0;
  int n = 0;
  for (const auto& c : auth::kCredentialInfo) {
    auto line =
        std::to_string(++n) + ". " + std::string(c.name) + ": needs " + std::string(c.needs);
    INFO(line);
    auto at = h.find(line);
    REQUIRE(at != std::string::npos);
    CHECK(at >= pos);
    pos = at;
  }
}

TEST_CASE("an option name outside the table is a bug, never an empty value", "[cli]") {
  // Names in the code are OptKeys, checked when tsign is compiled (cli_typed_names_* tests);
  // a name known only at run time is checked when it is looked up.
  CHECK(OptKey::named("files-folder").name() == "files-folder");
  CHECK_THROWS_AS(OptKey::named("files-fodler"), std::logic_error);
  CHECK_THROWS_AS(OptKey::of(OptionSpec{.name = "endpoint"}), std::logic_error);  // not a row
  CHECK(OptKey("endpoint").spec().name == "endpoint");
}
