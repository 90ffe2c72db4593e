// Reading the options of the ONE option table (option_table.hpp) from the command line and
// from the action's INPUT_* variables, checking them, and the --help text derived from it.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cli/option_table.hpp"

namespace tsign::cli {

std::span<const OptionSpec> option_table();
std::span<const Alias> deprecated_aliases();
const OptionSpec* find_option(std::string_view name);

// The action-input environment variable of an option: INPUT_ + upper-case, '-' and ' ' -> '_'.
std::string input_env_name(std::string_view option_name);

// The options of one run, by key of the table (a name that is not an option does not compile).
class Options {
 public:
  // Raw value as given (after alias resolution), or nullopt when not given.
  std::optional<std::string> given(OptKey key) const;
  bool is_given(OptKey key) const { return given(key).has_value(); }
  // The value, or the table's default ("" when neither).
  std::string str(OptKey key) const;
  bool flag(OptKey key) const;
  std::optional<std::int64_t> integer(OptKey key) const;
  // A list option: split on commas and newlines, trimmed, empty items dropped.
  std::vector<std::string> list(OptKey key) const;

  void set(OptKey key, std::string value);

  std::vector<std::string> positional;  // free arguments (files)
  std::vector<std::string> notes;       // deprecations, no-effect options: log them once

 private:
  std::array<std::optional<std::string>, kOptionTable.size()> values_;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// Parses command-line flags: `--name value`, `--name=value`; a boolean alone means true.
// `--` ends the options. Throws InputError naming the flag for unknown flags, missing values and
// bad values.
Options parse_args(std::span<const std::string> args);

// Reads every action input from the environment (INPUT_NAME and the runner's INPUT_NAME-WITH-
// HYPHENS). Empty values count as not given.
Options parse_env(const EnvLookup& env);

// Validates every given value against its type (booleans: exactly true|True|TRUE|false|False|
// FALSE) and rejects unsupported options. Throws InputError naming the option.
void validate(const Options& opts);

// timestamp-rfc3161 read (docs/usage.md "Time-stamps"): the authorities to try in order for each
// file. Empty (or not given): the default authority; "none" (any case, alone): no time-stamp, an
// empty list. Throws InputError naming the option for an entry that is not an http(s) URL, or
// "none" among URLs.
std::vector<std::string> timestamp_urls(const Options& opts);

// Help text for `tsign sign --help` / `tsign action --help`, generated from the table.
std::string options_help();
// The credential chain for --help, generated from the credential table: each credential in the
// chain's order, what it needs and the input that skips it.
std::string credentials_help();

}  // namespace tsign::cli
