#include "gha/workflow.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "common/bytes.hpp"
#include "platform/platform.hpp"

namespace tsign::gha {

std::string escape_data(std::string_view s) {
  std::string o;
  for (char c : s) {
    if (c == '%')
      o += "%25";
    else if (c == '\r')
      o += "%0D";
    else if (c == '\n')
      o += "%0A";
    else
      o += c;
  }
  return o;
}

std::string escape_property(std::string_view s) {
  std::string o;
  for (char c : escape_data(s)) {
    if (c == ':')
      o += "%3A";
    else if (c == ',')
      o += "%2C";
    else
      o += c;
  }
  return o;
}

void GhaLog::emit(const std::string& line) {
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

void GhaLog::info(const std::string& msg) {
  emit(escape_data(msg));
}
void GhaLog::warning(const std::string& msg) {
  emit("::warning::" + escape_data(msg));
}
void GhaLog::error(const std::string& msg, const std::string& file) {
  if (file.empty())
    emit("::error::" + escape_data(msg));
  else
    emit("::error file=" + escape_property(file) + "::" + escape_data(msg));
}
void GhaLog::debug(const std::string& msg) {
  if (debug_) emit("::debug::" + escape_data(msg));
}
void GhaLog::mask(const Secret& secret) {
  if (!secret.empty()) emit("::add-mask::" + escape_data(secret.reveal()));
}
void GhaLog::group_begin(const std::string& title) {
  emit("::group::" + escape_data(title));
}
void GhaLog::group_end() {
  emit("::endgroup::");
}

std::string checksums_text(const engine::RunResult& r) {
  std::string out;
  for (const auto& f : r.files) {
    if (f.status != engine::Status::signed_ok || f.sha256_after.empty()) continue;
    const auto generic = f.path.generic_u8string();  // '/' between folders on every system
    std::string name(generic.begin(), generic.end()), escaped;
    for (char c : name) escaped += c == '\\' ? "\\\\" : c == '\n' ? "\\n" : std::string(1, c);
    out += (escaped != name ? "\\" : "") + f.sha256_after + "  " + escaped + "\n";
  }
  return out;
}

std::string outputs_text(const engine::RunResult& r, const std::string& report_path,
                         const std::string& checksums_path) {
  using engine::Status;
  std::ostringstream os;
  os << "signed-count=" << r.count(Status::signed_ok) << "\n";
  os << "failed-count=" << r.count(Status::failed) << "\n";
  os << "skipped-count=" << r.count(Status::skipped) + r.count(Status::planned) << "\n";
  std::string files;
  for (const auto& f : r.files)
    if (f.status == Status::signed_ok) files += platform::to_utf8(f.path) + "\n";
  // A random delimiter cannot collide with a file name (names with newlines included).
  std::string delim;
  do {
    delim = "TSIGN_" + to_hex(random_bytes(16));
  } while (files.find(delim) != std::string::npos);
  os << "signed-files<<" << delim << "\n" << files << delim << "\n";
  if (!report_path.empty()) os << "report=" << report_path << "\n";
  if (!checksums_path.empty()) os << "subject-checksums=" << checksums_path << "\n";
  return os.str();
}

std::string escape_markdown(std::string_view s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '|':
        o += "\\|";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '&':
        o += "&amp;";
        break;
      case '`':
        o += "\\`";
        break;
      case '*':
        o += "\\*";
        break;
      case '_':
        o += "\\_";
        break;
      case '[':
        o += "\\[";
        break;
      case ']':
        o += "\\]";
        break;
      case '\\':
        o += "\\\\";
        break;
      case '\n':
        o += "<br>";
        break;
      case '\r':
        break;
      default:
        o += c;
    }
  }
  return o;
}

namespace {
std::string human_size(std::uint64_t b) {
  char buf[32];
  if (b >= (1u << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  else if (b >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}
// A name as a Markdown code span. Nothing inside a code span is unescaped, so backslash escapes
// would show: the name goes in as it is, fenced by one backtick more than its longest run of
// backticks, padded with a space on each side (which the renderer strips) when it starts or
// ends with a backtick or a space. Line breaks would end the list item: shown as U+2424.
std::string code_span(std::string_view name) {
  std::string text;
  std::size_t run = 0, longest = 0;
  for (char c : name) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
    if (c == '\n' || c == '\r')
      text += "\u2424";
    else
      text += c;
  }
  std::string fence(longest + 1, '`');
  bool pad =
      !text.empty() && text.find_first_not_of(' ') != std::string::npos &&
      (text.front() == '`' || text.back() == '`' || text.front() == ' ' || text.back() == ' ');
  return pad ? fence + " " + text + " " + fence : fence + text + fence;
}
std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f s", s);
  return buf;
}
}  // namespace

std::string summary_markdown(const engine::RunResult& r, const engine::ReportContext& ctx,
                             std::size_t limit) {
  using engine::Status;
  std::ostringstream head;
  auto code = r.exit_code();
  head << "## tsign: " << r.count(Status::signed_ok) << " signed, " << r.count(Status::failed)
       << " failed, " << r.count(Status::skipped) + r.count(Status::planned) << " skipped\n\n";
  if (r.fatal_code) head << "> **Stopped:** " << escape_markdown(r.fatal_message) << "\n\n";
  if (r.budget_reached)
    head << "> **The signature budget was reached** (max-signatures " << r.max_signatures
         << "): files past it were not signed and are unchanged.\n\n";
  if (r.interrupted_signal != 0)
    head << "> **Interrupted** by " << engine::signal_name(r.interrupted_signal)
         << ": the files in flight were finished; files not started are unchanged.\n\n";
  if (r.deadline_passed)
    head << "> **The deadline passed**: files not signed by then are unchanged.\n\n";
  if (!ctx.report_error.empty()) head << "> **" << escape_markdown(ctx.report_error) << "**\n\n";
  head << "| | |\n|---|---|\n";
  if (!ctx.endpoint.empty()) head << "| Endpoint | " << escape_markdown(ctx.endpoint) << " |\n";
  if (!ctx.account.empty()) head << "| Account | " << escape_markdown(ctx.account) << " |\n";
  if (!ctx.profile.empty())
    head << "| Certificate profile | " << escape_markdown(ctx.profile) << " |\n";
  if (r.certificate) {
    head << "| Certificate | " << escape_markdown(r.certificate->subject) << " |\n";
    head << "| SHA-256 thumbprint | `" << r.certificate->sha256_thumbprint << "` |\n";
    head << "| Valid | " << r.certificate->not_before << " to " << r.certificate->not_after
         << " |\n";
  }
  head << "| Time-stamp authority | "
       << (ctx.timestamp_url.empty() ? std::string("none") : escape_markdown(ctx.timestamp_url))
       << " |\n";
  if (!ctx.correlation_id.empty())
    head << "| Correlation ID | " << escape_markdown(ctx.correlation_id) << " |\n";
  head << "| Duration | " << seconds(r.seconds) << " |\n";
  if (r.concurrency > 0) {
    head << "| Concurrency | " << r.concurrency << " files in flight";
    if (r.throttled > 0)
      head << "; the service throttled " << r.throttled << " request(s), paced down to "
           << r.lowest_concurrency << " in flight";
    head << " |\n";
  }
  head << "| Signatures requested | " << r.signatures_requested;
  if (r.max_signatures > 0) head << " of at most " << r.max_signatures << " (max-signatures)";
  head << " |\n";
  // What each format came to: a folder of mixed installers shows at a glance which kind failed.
  std::map<std::string, std::array<std::size_t, 3>> by_format;  // signed, failed, skipped
  for (const auto& f : r.files) {
    if (f.format.empty()) continue;
    auto& n = by_format[f.format];
    ++n[f.status == Status::signed_ok ? 0 : f.status == Status::failed ? 1 : 2];
  }
  if (!by_format.empty()) {
    head << "| Formats | ";
    const char* words[] = {" signed", " failed", " skipped"};
    bool first_format = true;
    for (const auto& [name, n] : by_format) {
      head << (first_format ? "" : " · ") << escape_markdown(name) << ": ";
      bool first = true;
      for (int k = 0; k < 3; ++k)
        if (n[k] > 0) {
          head << (first ? "" : ", ") << n[k] << words[k];
          first = false;
        }
      first_format = false;
    }
    head << " |\n";
  }
  head << "| Exit code | " << static_cast<int>(code) << " |\n\n";

  std::string failures, skipped;
  for (const auto& f : r.files) {
    if (f.status == Status::failed)
      failures +=
          "- " + code_span(platform::to_utf8(f.path)) + ": " + escape_markdown(f.error) + "\n";
    else if (f.status == Status::skipped && !f.error.empty())
      skipped +=
          "- " + code_span(platform::to_utf8(f.path)) + ": " + escape_markdown(f.error) + "\n";
  }

  std::string out = head.str();
  std::string table = "| File | Format | Size | Result | Time |\n|---|---|---:|---|---:|\n";
  std::size_t shown = 0;
  // Keep room for the failures section and the tail line.
  std::size_t budget = limit > out.size() + 2048 ? limit - out.size() - 2048 : 0;
  std::string fail_part = failures.empty() ? "" : "### Failures\n\n" + failures + "\n";
  if (fail_part.size() > budget / 2) {
    fail_part.resize(budget / 2);
    fail_part += "\n…(failures truncated; see the JSON report)\n\n";
  }
  if (!skipped.empty()) {
    std::string skip_part = "### Skipped\n\n" + skipped + "\n";
    std::size_t room = budget / 2 > fail_part.size() ? budget / 2 - fail_part.size() : 0;
    if (skip_part.size() > room) {
      skip_part.resize(room);
      skip_part += "\n…(skipped files truncated; see the JSON report)\n\n";
    }
    fail_part += skip_part;
  }
  budget = budget > fail_part.size() ? budget - fail_part.size() : 0;
  for (const auto& f : r.files) {
    std::string name = platform::to_utf8(f.path);
    if (!f.target.empty() && f.target != f.path) name += " → " + platform::to_utf8(f.target);
    std::string row = "| " + escape_markdown(name) + " | " +
                      (f.format.empty() ? std::string("–") : escape_markdown(f.format)) + " | " +
                      human_size(f.bytes) + " | " + std::string(engine::status_name(f.status)) +
                      " | " + seconds(f.seconds) + " |\n";
    if (table.size() + row.size() > budget) break;
    table += row;
    ++shown;
  }
  if (shown < r.files.size())
    table += "\n…and " + std::to_string(r.files.size() - shown) + " more (see the JSON report)\n";
  out += table + "\n" + fail_part;
  return out;
}

bool append_to_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  if (!f) return false;
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  return static_cast<bool>(f.flush());
}

}  // namespace tsign::gha
