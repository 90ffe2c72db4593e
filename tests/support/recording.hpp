// Test doubles shared by the credential and signer tests: a Log that records what it is told,
// and a decoder for application/x-www-form-urlencoded request bodies (via Boost.URL).
#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include <boost/url/encoding_opts.hpp>
#include <boost/url/params_view.hpp>

#include "common/log.hpp"
#include "common/secret.hpp"

namespace tsign::test {

struct RecordingLog : Log {
  std::vector<std::string> lines, masked;
  void info(const std::string& m) override { lines.push_back(m); }
  void warning(const std::string& m) override { lines.push_back(m); }
  void error(const std::string& m, const std::string& = {}) override { lines.push_back(m); }
  void debug(const std::string& m) override { lines.push_back(m); }
  void mask(const Secret& s) override { masked.push_back(s.reveal()); }
  void group_begin(const std::string&) override {}
  void group_end() override {}
  bool was_masked(const std::string& v) const {
    return std::find(masked.begin(), masked.end(), v) != masked.end();
  }
};

// A form body as a map; '+' decodes to a space, as in HTML forms.
inline std::map<std::string, std::string> parse_form(const std::string& body) {
  boost::urls::encoding_opts opt;
  opt.space_as_plus = true;
  std::map<std::string, std::string> out;
  for (auto p : boost::urls::params_view(body, opt)) out[p.key] = p.value;
  return out;
}

}  // namespace tsign::test
