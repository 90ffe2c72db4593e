#include "common/log.hpp"

#include <cstdio>
#include <mutex>

namespace tsign {

namespace {
std::mutex& out_mutex() {
  static std::mutex m;  // serialises whole lines from concurrent files; holds no state
  return m;
}
void line(std::FILE* f, const std::string& prefix, const std::string& msg) {
  std::lock_guard lock(out_mutex());
  std::fprintf(f, "%s%s\n", prefix.c_str(), msg.c_str());
  std::fflush(f);
}
}  // namespace

void PlainLog::info(const std::string& msg) {
  line(stdout, "", msg);
}
void PlainLog::warning(const std::string& msg) {
  line(stderr, "warning: ", msg);
}
void PlainLog::error(const std::string& msg, const std::string& file) {
  line(stderr, "error: ", file.empty() ? msg : file + ": " + msg);
}
void PlainLog::debug(const std::string& msg) {
  if (debug_) line(stderr, "debug: ", msg);
}
void PlainLog::group_begin(const std::string& title) {
  line(stdout, "", title);
}

}  // namespace tsign
