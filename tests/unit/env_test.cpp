// The registry of environment variables (src/platform/env.hpp): one declaration per variable,
// the --help listing, sensitive values never printed, and no other reader in src/.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>

#include "platform/env.hpp"

using namespace tsign;

namespace {
env::Lookup env_of(std::map<std::string, std::string> m) {
  return [m](const std::string& k) -> std::optional<std::string> {
    auto it = m.find(k);
    if (it == m.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("every environment variable is declared once, with a description", "[env]") {
  std::set<std::string_view> names;
  for (const auto& v : env::kVariables) {
    INFO(v.name);
    CHECK(names.insert(v.name).second);
    CHECK_FALSE(v.description.empty());
  }
  // The ones that carry tokens and secrets are marked.
  for (env::Var v : {env::Var("AZURE_CLIENT_SECRET"), env::Var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
                     env::Var("IDENTITY_HEADER")}) {
    INFO(v.name());
    CHECK(v.spec().sensitive);
  }
  CHECK_FALSE(env::Var("AZURE_TENANT_ID").spec().sensitive);
}

TEST_CASE("the listing names every variable with its description", "[env]") {
  auto h = env::help();
  for (const auto& v : env::kVariables) {
    INFO(v.name);
    CHECK(h.find(std::string(v.name)) != std::string::npos);
    CHECK(h.find(std::string(v.description)) != std::string::npos);
  }
  CHECK(h.find("AZURE_CLIENT_SECRET") != std::string::npos);
  CHECK(std::regex_search(h, std::regex("AZURE_CLIENT_SECRET +[^\n]*\\[sensitive\\]")));
  CHECK(h.find("INPUT_<NAME>") != std::string::npos);
  CHECK(h.find("HTTPS_PROXY") != std::string::npos);
}

TEST_CASE("a sensitive variable's value is never printed", "[env]") {
  auto e = env_of({{"AZURE_CLIENT_SECRET", "s3cret-value-1"},
                   {"ACTIONS_ID_TOKEN_REQUEST_TOKEN", "gh-token-2"},
                   {"IDENTITY_HEADER", "hdr-3"},
                   {"AZURE_TENANT_ID", "tenant-4"},
                   {"NOT_DECLARED", "other-5"}});
  auto s = env::set_summary(e);
  CHECK(s.find("AZURE_TENANT_ID=tenant-4") != std::string::npos);
  CHECK(s.find("AZURE_CLIENT_SECRET (set, value hidden)") != std::string::npos);
  for (auto secret : {"s3cret-value-1", "gh-token-2", "hdr-3", "other-5"}) {
    INFO(secret);
    CHECK(s.find(secret) == std::string::npos);
  }
  CHECK(env::help().find("s3cret") == std::string::npos);
}

TEST_CASE("a proxy URL is printed with its password masked, never whole", "[env][proxy]") {
  auto s = env::set_summary(env_of({{"HTTPS_PROXY", "http://alice:pa55-w0rd@proxy.corp:3128"},
                                    {"http_proxy", "http://bob:raw@at/slash@proxy:8080/"},
                                    {"HTTP_PROXY", "http://proxy.corp:3128"},
                                    {"NO_PROXY", ".corp,10.0.0.0/8"}}));
  CHECK(s.find("HTTPS_PROXY=http://alice:***@proxy.corp:3128") != std::string::npos);
  CHECK(s.find("http_proxy=http://bob:***@proxy:8080/") != std::string::npos);
  CHECK(s.find("HTTP_PROXY=http://proxy.corp:3128") != std::string::npos);
  CHECK(s.find("NO_PROXY=.corp,10.0.0.0/8") != std::string::npos);
  for (auto secret : {"pa55-w0rd", "raw", "slash"}) {
    INFO(secret);
    CHECK(s.find(secret) == std::string::npos);
  }
  CHECK(env::mask_url_password("proxy:3128") == "proxy:3128");
  CHECK(env::mask_url_password("alice@proxy:3128") == "alice@proxy:3128");  // no password
  CHECK(env::mask_url_password("alice:x@proxy:3128") == "alice:***@proxy:3128");
  CHECK(std::regex_search(env::help(), std::regex("HTTPS_PROXY +[^\n]*\\[password masked\\]")));
}

TEST_CASE("reading an undeclared variable is a bug, declared names and INPUT_* are read", "[env]") {
  auto p = env::process();
  CHECK_THROWS_AS(p("AZURE_TENNANT_ID"), std::logic_error);
  CHECK_THROWS_AS(p("INPUT_"), std::logic_error);
  CHECK_NOTHROW(p("AZURE_TENANT_ID"));
  CHECK_NOTHROW(p("INPUT_FILES_FOLDER"));
  CHECK(env::declared("RUNNER_DEBUG"));
  CHECK(env::declared("HTTPS_PROXY"));
  CHECK(env::declared("no_proxy"));
  // An injected environment goes through the same names.
  CHECK(env::get(env_of({{"RUNNER_TEMP", "/t"}}), "RUNNER_TEMP") ==
        std::optional<std::string>("/t"));
}

// Every read of the environment in src/ goes through the registry: the only getenv calls are
// platform::getenv's own definition (the UTF-16 conversion on Windows) and the registry's one
// call of it.
TEST_CASE("no source file reads the environment except the registry", "[env]") {
  namespace fs = std::filesystem;
  const fs::path src = fs::path(TSIGN_SOURCE_DIR) / "src";
  const std::regex reader(R"(getenv\s*\(|GetEnvironmentVariable|secure_getenv|_wgetenv)");
  std::vector<std::string> offenders;
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(src)) {
    if (!e.is_regular_file()) continue;
    auto ext = e.path().extension();
    if (ext != ".cpp" && ext != ".hpp") continue;
    ++files;
    auto rel = e.path().lexically_relative(src).generic_string();
    std::ifstream in(e.path());
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (!std::regex_search(line, reader)) continue;
      const bool platform = rel.rfind("platform/", 0) == 0;
      const bool allowed =
          (rel == "platform/env.cpp" && line.find("platform::getenv(name)") != std::string::npos) ||
          (platform && (line.find("std::optional<std::string> getenv(const std::string& name)") !=
                            std::string::npos ||
                        line.find("std::getenv(name.c_str())") != std::string::npos ||
                        line.find("GetEnvironmentVariableW(wname.c_str()") != std::string::npos));
      if (!allowed) offenders.push_back(rel + ":" + std::to_string(n) + ": " + line);
    }
  }
  CHECK(files > 50);  // the scan really saw the sources
  for (const auto& o : offenders) UNSCOPED_INFO(o);
  CHECK(offenders.empty());
}
