// Checks action.yml (GitHub's "Metadata syntax for GitHub Actions", composite actions) and dist/
// against the one option table (src/cli/options.cpp): the action's inputs are exactly the options
// with Scope::both, their deprecated aliases, and the two inputs that fetch the binary; each with
// the table's description and default; each passed to `tsign action` through env: as
// INPUT_<NAME>, never pasted into a script.
#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "platform/platform.hpp"

namespace json = boost::json;
using tsign::cli::Scope;

namespace {

const std::string kSource = TSIGN_SOURCE_DIR;
const std::set<std::string> kFetchInputs{"tsign-path", "tsign-download-url"};

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f);
  std::ostringstream os;
  os << f.rdbuf();
  return os.str();
}

// action.yml as JSON, through a real YAML parser (PyYAML), so the test reads what the runner reads.
json::object load_action() {
  const std::string code =
      "import json, sys, yaml\n"
      "json.dump(yaml.safe_load(open(sys.argv[1], encoding='utf-8')), sys.stdout)\n";
  std::string tried;
  for (const char* py : {"python3", "/usr/bin/python3"}) {
    auto r = tsign::platform::run_capture({py, "-c", code, kSource + "/action.yml"},
                                          std::chrono::seconds(60));
    if (r.exit_code == 0) return json::parse(r.out).as_object();
    tried += std::string(py) + ": " + (r.not_found ? "not found" : r.err) + "\n";
  }
  FAIL("no python3 could parse action.yml with PyYAML (scripts/setup installs python3-yaml):\n"
       << tried);
  return {};
}

std::set<std::string> table_inputs() {
  std::set<std::string> names;
  for (const auto& o : tsign::cli::option_table())
    if (o.scope == Scope::both) names.emplace(o.name);
  return names;
}

std::string str_of(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v) return {};
  REQUIRE(v->is_string());  // quoted in action.yml: the runner treats every input as a string
  return std::string(v->as_string());
}

const json::object& step(const json::object& action, std::string_view id) {
  for (const auto& s : action.at("runs").at("steps").as_array())
    if (auto* i = s.as_object().if_contains("id"); i && i->is_string() && i->as_string() == id)
      return s.as_object();
  FAIL("action.yml has no step with id " << id);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("action.yml declares exactly the table's action inputs", "[action]") {
  auto action = load_action();
  std::set<std::string> declared;
  for (const auto& kv : action.at("inputs").as_object()) declared.emplace(kv.key());

  auto expected = table_inputs();
  for (const auto& a : tsign::cli::deprecated_aliases()) expected.emplace(a.alias);
  expected.insert(kFetchInputs.begin(), kFetchInputs.end());

  for (const auto& n : expected) {
    INFO("the table's input " << n << " is missing from action.yml");
    CHECK(declared.count(n) == 1);
  }
  for (const auto& n : declared) {
    INFO("action.yml's input " << n << " is not in the option table");
    CHECK(expected.count(n) == 1);
  }
}

TEST_CASE("each action input has the table's description and default", "[action]") {
  auto action = load_action();
  const auto& inputs = action.at("inputs").as_object();
  for (const auto& o : tsign::cli::option_table()) {
    if (o.scope != Scope::both) continue;
    INFO("input " << o.name);
    const auto& spec = inputs.at(o.name).as_object();
    CHECK(str_of(spec, "description") == o.help);
    if (o.default_value.empty())
      CHECK_FALSE(spec.contains("default"));
    else
      CHECK(str_of(spec, "default") == o.default_value);
  }
  for (const auto& a : tsign::cli::deprecated_aliases()) {
    INFO("alias " << a.alias);
    const auto& spec = inputs.at(a.alias).as_object();
    CHECK(str_of(spec, "deprecationMessage").find(std::string(a.name)) != std::string::npos);
    CHECK_FALSE(spec.contains("default"));  // a default would override the real name
  }
}

TEST_CASE("every input reaches tsign through env: and no script pastes an expression", "[action]") {
  auto action = load_action();
  const auto& sign = step(action, "sign");
  const auto& env = sign.at("env").as_object();
  std::set<std::string> passed;
  for (const auto& kv : action.at("inputs").as_object()) {
    std::string name = kv.key();
    if (kFetchInputs.count(name)) continue;
    INFO("input " << name);
    auto var = tsign::cli::input_env_name(name);
    REQUIRE(env.contains(var));
    CHECK(str_of(env, var) == "${{ inputs." + name + " }}");
    passed.insert(var);
  }
  // Nothing else in the Sign step's env looks like an input (a typo would go unread).
  for (const auto& kv : env)
    if (std::string(kv.key()).rfind("INPUT_", 0) == 0) CHECK(passed.count(kv.key()) == 1);
  CHECK(str_of(env, "TSIGN_EXE") == "${{ steps.setup.outputs.tsign }}");

  const auto& setup = step(action, "setup");
  CHECK(str_of(setup.at("env").as_object(), "TSIGN_PATH") == "${{ inputs.tsign-path }}");
  CHECK(str_of(setup.at("env").as_object(), "TSIGN_DOWNLOAD_URL") ==
        "${{ inputs.tsign-download-url }}");

  for (const auto& s : action.at("runs").at("steps").as_array()) {
    const auto& o = s.as_object();
    INFO("step " << str_of(o, "id"));
    CHECK(str_of(o, "shell") == "bash");  // one script for Linux, macOS and Windows (Git Bash)
    CHECK(str_of(o, "run").find("${{") == std::string::npos);
  }
}

TEST_CASE("the action's outputs are the six tsign writes, taken from the Sign step", "[action]") {
  auto action = load_action();
  std::set<std::string> names;
  for (const auto& kv : action.at("outputs").as_object()) {
    names.emplace(kv.key());
    INFO("output " << kv.key());
    CHECK(str_of(kv.value().as_object(), "value") ==
          "${{ steps.sign.outputs." + std::string(kv.key()) + " }}");
    CHECK_FALSE(str_of(kv.value().as_object(), "description").empty());
  }
  CHECK(names == std::set<std::string>{"signed-count", "failed-count", "skipped-count",
                                       "signed-files", "report", "subject-checksums"});
}

TEST_CASE("every flag `tsign sign --help` marks as an input is an action input", "[action]") {
  auto action = load_action();
  const auto& inputs = action.at("inputs").as_object();
  auto r = tsign::platform::run_capture({TSIGN_BINARY, "sign", "--help"}, std::chrono::seconds(60));
  REQUIRE(r.exit_code == 0);
  std::regex marked(R"(\(input: ([a-z0-9-]+)\))");
  int n = 0;
  for (std::sregex_iterator it(r.out.begin(), r.out.end(), marked), end; it != end; ++it, ++n) {
    INFO("--help names input " << (*it)[1]);
    CHECK(inputs.contains((*it)[1].str()));
  }
  CHECK(n >= 30);  // the help really lists the inputs (the format did not change under us)
}

TEST_CASE("dist/ holds the project version and a well-formed checksums file", "[action]") {
  auto version = read_text(kSource + "/dist/version");
  CHECK(version == std::string(TSIGN_VERSION) + "\n");

  const std::set<std::string> assets{"tsign-linux-x64", "tsign-linux-arm64", "tsign-macos-arm64",
                                     "tsign-windows-x64.exe", "tsign-windows-arm64.exe"};
  std::istringstream sums(read_text(kSource + "/dist/checksums.sha256"));
  std::regex line_re(R"(^([0-9a-f]{64}) [ *](\S+)$)");
  std::set<std::string> seen;
  for (std::string line; std::getline(sums, line);) {
    if (line.empty() || line[0] == '#') continue;
    INFO("line: " << line);
    std::smatch m;
    REQUIRE(std::regex_match(line, m, line_re));
    CHECK(assets.count(m[2].str()) == 1);
    CHECK(seen.insert(m[2].str()).second);
  }
  // Either not yet released (comments only) or one line for every asset.
  CHECK((seen.empty() || seen == assets));
}
