// The run's log. Two implementations: plain lines (a terminal or a file) and GitHub workflow
// commands (gha/). Passed by reference; there is no global logger.
#pragma once

#include <string>

#include "common/secret.hpp"

namespace tsign {

class Log {
 public:
  virtual ~Log() = default;
  virtual void info(const std::string& msg) = 0;
  virtual void warning(const std::string& msg) = 0;
  // `file` may be empty; under GitHub it becomes the annotation's file property.
  virtual void error(const std::string& msg, const std::string& file = {}) = 0;
  virtual void debug(const std::string& msg) = 0;
  // Called for every secret as soon as it exists, before anything could print it
  // (GitHub: `::add-mask::`). Must be thread-safe.
  virtual void mask(const Secret& secret) = 0;
  virtual void group_begin(const std::string& title) = 0;
  virtual void group_end() = 0;
};

// Plain lines on stderr (info on stdout). Thread-safe.
class PlainLog : public Log {
 public:
  explicit PlainLog(bool debug = false) : debug_(debug) {}
  void info(const std::string& msg) override;
  void warning(const std::string& msg) override;
  void error(const std::string& msg, const std::string& file = {}) override;
  void debug(const std::string& msg) override;
  void mask(const Secret&) override {}
  void group_begin(const std::string& title) override;
  void group_end() override {}

 private:
  bool debug_;
};

// Collects nothing and prints nothing: for unit tests.
class NullLog : public Log {
 public:
  void info(const std::string&) override {}
  void warning(const std::string&) override {}
  void error(const std::string&, const std::string& = {}) override {}
  void debug(const std::string&) override {}
  void mask(const Secret&) override {}
  void group_begin(const std::string&) override {}
  void group_end() override {}
};

}  // namespace tsign
