// The ONE option table (interface.md): every option is declared once here, with its name,
// default, help and type; the --flags, the INPUT_* variables and --help are all derived from it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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
  // An explicitly empty value means something (timestamp-rfc3161 "" = no time-stamp); for
  // every other option an empty action input counts as not given.
  bool empty_is_value = false;
  // Accepted for compatibility with Azure/artifact-signing-action; has no effect (a note is
  // logged once when given).
  bool no_effect = false;
  // Accepted and silently ignored (the anchor's credential switches for links tsign lacks).
  bool ignored = false;
  // Declared for the contract; using it fails with "not yet supported".
  bool unsupported = false;
};

struct Alias {
  std::string_view alias, name;
};

std::span<const OptionSpec> option_table();
std::span<const Alias> deprecated_aliases();
const OptionSpec* find_option(std::string_view name);

// The action-input environment variable of an option: INPUT_ + upper-case, '-' and ' ' -> '_'.
std::string input_env_name(std::string_view option_name);

class Options {
 public:
  // Raw value as given (after alias resolution), or nullopt when not given.
  std::optional<std::string> given(std::string_view name) const;
  bool is_given(std::string_view name) const { return given(name).has_value(); }
  // The value, or the table's default ("" when neither).
  std::string str(std::string_view name) const;
  bool flag(std::string_view name) const;
  std::optional<std::int64_t> integer(std::string_view name) const;
  // A list option: split on commas and newlines, trimmed, empty items dropped.
  std::vector<std::string> list(std::string_view name) const;

  void set(std::string_view name, std::string value);

  std::vector<std::string> positional;  // free arguments (files)
  std::vector<std::string> notes;       // deprecations, no-effect options: log them once

 private:
  std::map<std::string, std::string, std::less<>> values_;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Parses command-line flags: `--name value`, `--name=value`; a boolean alone means true.
// `--` ends the options. Throws InputError naming the flag for unknown flags, missing values and
// bad values.
Options parse_args(std::span<const std::string> args);

// Reads every action input from the environment (INPUT_NAME and the runner's INPUT_NAME-WITH-
// HYPHENS). Empty values count as not given, except for options with empty_is_value.
Options parse_env(const EnvLookup& env);

// Validates every given value against its type (booleans: exactly true|True|TRUE|false|False|
// FALSE) and rejects unsupported options. Throws InputError naming the option.
void validate(const Options& opts);

// Help text for `tsign sign --help` / `tsign action --help`, generated from the table.
std::string options_help();

}  // namespace tsign::cli
