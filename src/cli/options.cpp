#include "cli/options.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <sstream>
#include <stdexcept>

#include "common/error.hpp"
#include "common/text.hpp"

namespace tsign::cli {

namespace {

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
  return kOptionTable;
}
std::span<const Alias> deprecated_aliases() {
  return kAliases;
}

const OptionSpec* find_option(std::string_view name) {
  for (const auto& o : kOptionTable)
    if (o.name == name) return &o;
  return nullptr;
}

OptKey OptKey::of(const OptionSpec& row) {
  const OptionSpec* first = kOptionTable.data();
  if (&row < first || &row >= first + kOptionTable.size())
    throw std::logic_error("option '" + std::string(row.name) + "' is not a row of the table");
  return OptKey(Row{}, static_cast<std::size_t>(&row - first));
}

OptKey OptKey::named(std::string_view name) {
  const OptionSpec* spec = find_option(name);
  if (!spec)
    throw std::logic_error("option '" + std::string(name) +
                           "' is read but not declared in src/cli/option_table.hpp");
  return of(*spec);
}

std::string input_env_name(std::string_view name) {
  std::string out = "INPUT_";
  for (char c : name) {
    if (c == '-' || c == ' ')
      out.push_back('_');
    else
      out.push_back(ascii_upper(c));
  }
  return out;
}

std::optional<std::string> Options::given(OptKey key) const {
  return values_[key.index()];
}

std::string Options::str(OptKey key) const {
  if (auto v = given(key)) return *v;
  return std::string(key.spec().default_value);
}

bool Options::flag(OptKey key) const {
  bool b = false;
  valid_boolean(str(key), &b);
  return b;
}

std::optional<std::int64_t> Options::integer(OptKey key) const {
  auto v = str(key);
  if (v.empty()) return std::nullopt;
  return parse_int(trim(v));
}

std::vector<std::string> Options::list(OptKey key) const {
  std::vector<std::string> out;
  std::string cur;
  for (char c : str(key) + ",") {
    if (c == ',' || c == '\n') {
      auto t = trim(cur);
      if (!t.empty()) out.emplace_back(t);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  return out;
}

void Options::set(OptKey key, std::string value) {
  values_[key.index()] = std::move(value);
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
    opts.set(OptKey::of(*spec), *value);
  }
  return opts;
}

Options parse_env(const EnvLookup& env) {
  Options opts;
  auto read = [&](std::string_view name) -> std::optional<std::string> {
    // The runner's own spelling keeps hyphens (INPUT_FILES-FOLDER); ours replaces them.
    std::string upper = "INPUT_";
    for (char c : name) upper.push_back(c == ' ' ? '_' : ascii_upper(c));
    if (auto v = env(input_env_name(name))) return v;
    if (auto v = env(upper)) return v;
    return std::nullopt;
  };
  for (const auto& spec : kOptionTable) {
    if (spec.scope != Scope::both) continue;
    auto v = read(spec.name);
    if (!v || v->empty()) continue;
    note_no_effect(spec, opts);
    opts.set(OptKey::of(spec), *v);
  }
  for (const auto& a : kAliases) {
    auto v = read(a.alias);
    if (!v || v->empty()) continue;
    opts.notes.push_back("input " + std::string(a.alias) + " is deprecated; use " +
                         std::string(a.name) + " instead");
    if (auto key = OptKey::named(a.name); !opts.is_given(key)) opts.set(key, *v);
  }
  return opts;
}

std::vector<std::string> timestamp_urls(const Options& opts) {
  const OptKey key("timestamp-rfc3161");
  auto urls = opts.list(key);
  if (urls.empty()) return {std::string(key.spec().default_value)};
  const bool none = std::any_of(urls.begin(), urls.end(),
                                [](const std::string& u) { return ascii_lower(u) == "none"; });
  if (none) {
    if (urls.size() > 1)
      throw InputError(
          "timestamp-rfc3161: 'none' turns time-stamping off and cannot be listed "
          "with authorities");
    return {};
  }
  for (const auto& u : urls) {
    const std::string lower = ascii_lower(u);
    if ((lower.rfind("http://", 0) != 0 && lower.rfind("https://", 0) != 0) ||
        u.find_first_of(" \t") != std::string::npos)
      throw InputError("timestamp-rfc3161: '" + u +
                       "' is not an http:// or https:// URL (list authorities separated by "
                       "commas; none = no time-stamp)");
  }
  return urls;
}

void validate(const Options& opts) {
  for (const auto& spec : kOptionTable) {
    auto v = opts.given(OptKey::of(spec));
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
        std::string up = ascii_upper(trim(*v));
        // Without a default, empty means "not given" (api-version: automatic).
        bool ok = up.empty() && spec.default_value.empty();
        std::string_view cs = spec.choices;
        while (!cs.empty()) {
          auto comma = cs.find(',');
          if (iequals(cs.substr(0, comma), up)) ok = true;
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
  for (const auto& spec : kOptionTable) {
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

std::string credentials_help() {
  std::string out = "credentials (tried in this order; the first that applies wins):\n";
  int n = 0;
  for (const auto& c : auth::kCredentialInfo) {
    out += "  " + std::to_string(++n) + ". " + std::string(c.name) + ": needs " +
           std::string(c.needs) + "; skipped with --" + std::string(c.exclude) + "\n";
  }
  return out;
}

}  // namespace tsign::cli
