// The text helpers every layer needs, once: ASCII case folding and trimming. Protocol tokens
// (HTTP header names, URL schemes and hosts, JSON status words, token types) compare without
// regard to ASCII case only (RFC 9110 §5.1, RFC 3986 §3.1/§3.2.2); the C library's tolower would
// follow the process's locale, so these do not use it.
#pragma once

#include <string>
#include <string_view>

namespace tsign {

constexpr char ascii_lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c;
}

constexpr char ascii_upper(char c) {
  return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c;
}

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}
inline std::string ascii_upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_upper(c);
  return out;
}

// Whether a and b are equal but for ASCII case.
constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

// The blank characters of the C locale's isspace, and HTTP's optional whitespace (RFC 9110
// §5.6.3: SP and HTAB only).
inline constexpr std::string_view kBlanks = " \t\r\n\f\v";
inline constexpr std::string_view kHttpOws = " \t";

// `s` without the characters of `blanks` at either end (a view into `s`).
constexpr std::string_view trim(std::string_view s, std::string_view blanks = kBlanks) {
  const auto b = s.find_first_not_of(blanks);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(blanks) - b + 1);
}

}  // namespace tsign
