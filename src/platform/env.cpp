// The registry of environment variables (env.hpp): the one place that reads the process
// environment (through platform::getenv, which converts from UTF-16 on Windows).
#include "platform/env.hpp"

#include <stdexcept>

#include "platform/platform.hpp"

namespace tsign::env {

namespace {

std::optional<std::string> read(const std::string& name) {
  return platform::getenv(name);
}

}  // namespace

std::optional<std::string> get(Var v) {
  return read(v.name());
}

std::optional<std::string> get(const Lookup& env, Var v) {
  return env(v.name());
}

bool declared(std::string_view name) {
  for (const auto& s : kVariables) {
    if (s.reader != Reader::tsign) continue;
    if (s.family ? name.size() > s.name.size() && name.starts_with(s.name) : name == s.name)
      return true;
  }
  return false;
}

Lookup process() {
  return [](const std::string& name) -> std::optional<std::string> {
    if (!declared(name))
      throw std::logic_error("environment variable " + name +
                             " is read but not declared in src/platform/env.hpp");
    return read(name);
  };
}

std::optional<std::string> get_named_by_user(const std::string& name) {
  return read(name);
}

std::string mask_url_password(std::string_view url) {
  // The user info ends at the LAST '@': a password written with a raw '@' (or '/', which would
  // end the authority) is still masked whole.
  const auto scheme = url.find("://");
  const std::size_t from = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto at = url.rfind('@');
  if (at == std::string_view::npos || at < from) return std::string(url);
  const auto colon = url.find(':', from);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

std::string help() {
  std::string out =
      "environment variables (the value of one marked [sensitive] is never printed):\n";
  for (const auto& s : kVariables) {
    std::string line = "  " + std::string(s.name);
    if (s.family) line += "<NAME>";
    if (line.size() < 34)
      line += std::string(34 - line.size(), ' ');
    else
      line += "\n" + std::string(34, ' ');
    line += s.description;
    if (s.sensitive) line += " [sensitive]";
    if (s.url_password) line += " [password masked]";
    if (s.reader == Reader::openssl) line += " (read by OpenSSL)";
    out += line + "\n";
  }
  out += "  the variable --pfx-password-env names: the --pfx password [sensitive]\n";
  return out;
}

std::string set_summary(const Lookup& env) {
  std::string out;
  for (const auto& s : kVariables) {
    if (s.family || s.reader != Reader::tsign) continue;
    auto v = env(std::string(s.name));
    if (!v) continue;
    if (!out.empty()) out += ", ";
    if (s.sensitive)
      out += std::string(s.name) + " (set, value hidden)";
    else
      out += std::string(s.name) + "=" + (s.url_password ? mask_url_password(*v) : *v);
  }
  return out;
}

}  // namespace tsign::env
