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

namespace {

// A name as the reader knows it: relative to the workspace when it lies inside it (absolute
// runner paths are long and all alike), else as given.
std::string display_name(const std::filesystem::path& p, const std::filesystem::path& base) {
  if (!base.empty() && p.is_absolute()) {
    auto rel = p.lexically_normal().lexically_relative(base.lexically_normal());
    if (!rel.empty() && *rel.begin() != "..") return platform::to_utf8(rel);
  }
  return platform::to_utf8(p);
}

// Signed / failed / skipped of a group of files.
struct Counts {
  std::size_t n[3] = {0, 0, 0};
  void add(engine::Status s) {
    ++n[s == engine::Status::signed_ok ? 0 : s == engine::Status::failed ? 1 : 2];
  }
  std::size_t total() const { return n[0] + n[1] + n[2]; }
};

// A small table of counts by key; past `rows`, the groups with the most files are shown and the
// rest summed up in one line.
std::string counts_table(const std::string& title, const std::map<std::string, Counts>& groups,
                         std::size_t rows) {
  std::vector<std::pair<std::string, Counts>> v(groups.begin(), groups.end());
  // Too many to show: the groups with failures first (a reader looks for those), then the
  // largest; the rest are summed in one row.
  if (v.size() > rows)
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
      if (a.second.n[1] != b.second.n[1]) return a.second.n[1] > b.second.n[1];
      return a.second.total() > b.second.total();
    });
  else  // by name, the files of no recognised format last
    std::stable_partition(v.begin(), v.end(),
                          [](const auto& g) { return g.first != kUnrecognised; });
  std::string t = "| " + title + " | Signed | Failed | Skipped |\n|---|---:|---:|---:|\n";
  for (std::size_t i = 0; i < v.size() && i < rows; ++i)
    t += "| " + escape_markdown(v[i].first) + " | " + std::to_string(v[i].second.n[0]) + " | " +
         std::to_string(v[i].second.n[1]) + " | " + std::to_string(v[i].second.n[2]) + " |\n";
  if (v.size() > rows) {
    Counts rest;
    for (std::size_t i = rows; i < v.size(); ++i)
      for (int k = 0; k < 3; ++k) rest.n[k] += v[i].second.n[k];
    t += "| …" + std::to_string(v.size() - rows) + " more | " + std::to_string(rest.n[0]) + " | " +
         std::to_string(rest.n[1]) + " | " + std::to_string(rest.n[2]) + " |\n";
  }
  return t + "\n";
}

// Cuts a section to `room` bytes at a line end, saying where the rest is.
std::string bounded(std::string text, std::size_t room, const std::string& what) {
  if (text.size() <= room) return text;
  auto cut = text.rfind('\n', room > 80 ? room - 80 : 0);
  text.resize(cut == std::string::npos ? 0 : cut + 1);
  return text + "\n…(" + what + " truncated; see the JSON report)\n\n";
}

}  // namespace

std::string summary_markdown(const engine::RunResult& r, const engine::ReportContext& ctx,
                             std::size_t limit) {
  using engine::Status;
  const auto code = r.exit_code();
  const auto name_of = [&](const std::filesystem::path& p) { return display_name(p, ctx.base); };

  // What went wrong comes first: the title, the run's own failure, then each file's.
  std::ostringstream head;
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

  std::string failures, failures_more, skipped;
  std::size_t n_failed = 0;
  std::map<std::string, Counts> by_format, by_folder;
  for (const auto& f : r.files) {
    if (f.status == Status::failed)
      (n_failed++ < kSummaryFailuresShown ? failures : failures_more) +=
          "- " + code_span(name_of(f.path)) + ": " + escape_markdown(f.error) + "\n";
    else if (f.status == Status::skipped && !f.error.empty())
      skipped += "- " + code_span(name_of(f.path)) + ": " + escape_markdown(f.error) + "\n";
    by_format[f.format.empty() ? std::string(kUnrecognised) : f.format].add(f.status);
    auto folder = std::filesystem::path(name_of(f.path)).parent_path();
    by_folder[folder.empty() ? "." : platform::to_utf8(folder)].add(f.status);
  }

  // Counts by format and by folder: which kind, which part of the build.
  std::string counts;
  // Every file counts in the Format table, so its rows add up to the headline; it is left out
  // when no file's format was recognised at all (nothing to tell by format).
  if (!by_format.empty() && !(by_format.size() == 1 && by_format.count(std::string(kUnrecognised))))
    counts += counts_table("Format", by_format, kSummaryGroups);
  if (by_folder.size() > 1) counts += counts_table("Folder", by_folder, kSummaryGroups);

  std::ostringstream details;
  details << "| Run | |\n|---|---|\n";
  if (!ctx.endpoint.empty()) details << "| Endpoint | " << escape_markdown(ctx.endpoint) << " |\n";
  if (!ctx.account.empty()) details << "| Account | " << escape_markdown(ctx.account) << " |\n";
  if (!ctx.profile.empty())
    details << "| Certificate profile | " << escape_markdown(ctx.profile) << " |\n";
  if (r.certificate) {
    details << "| Certificate | " << escape_markdown(r.certificate->subject) << " |\n";
    details << "| SHA-256 thumbprint | `" << r.certificate->sha256_thumbprint << "` |\n";
    details << "| Valid | " << r.certificate->not_before << " to " << r.certificate->not_after
            << " |\n";
  }
  details << "| Time-stamp authority | "
          << (ctx.timestamp_url.empty() ? std::string("none") : escape_markdown(ctx.timestamp_url))
          << " |\n";
  if (!ctx.correlation_id.empty())
    details << "| Correlation ID | " << escape_markdown(ctx.correlation_id) << " |\n";
  details << "| Duration | " << seconds(r.seconds) << " |\n";
  if (r.concurrency > 0) {
    details << "| Concurrency | " << r.concurrency << " files in flight";
    if (r.throttled > 0)
      details << "; the service throttled " << r.throttled << " request(s), paced down to "
              << r.lowest_concurrency << " in flight";
    details << " |\n";
  }
  details << "| Signatures requested | " << r.signatures_requested;
  if (r.max_signatures > 0) details << " of at most " << r.max_signatures << " (max-signatures)";
  details << " |\n";
  details << "| Exit code | " << static_cast<int>(code) << " |\n\n";

  // Within `limit`: the fixed parts, then failures and skipped files (half the room left each at
  // most), then as many file rows as fit.
  std::string out = head.str();
  const std::size_t fixed = out.size() + counts.size() + details.str().size() + 2048;
  std::size_t room = limit > fixed ? limit - fixed : 0;
  // The first failures are listed, the others folded: the counts below stay near the top.
  if (!failures_more.empty())
    failures += "\n<details><summary>" + std::to_string(n_failed - kSummaryFailuresShown) +
                " more failures</summary>\n\n" + failures_more + "\n</details>\n";
  std::string fail_part =
      failures.empty()
          ? ""
          : bounded("### Failures (" + std::to_string(n_failed) + ")\n\n" + failures + "\n",
                    room / 2, "failures");
  room -= std::min(room, fail_part.size());
  std::string skip_part =
      skipped.empty() ? "" : bounded("### Skipped\n\n" + skipped + "\n", room / 2, "skipped files");
  room -= std::min(room, skip_part.size());

  std::string table = "| File | Format | Size | Result | Time |\n|---|---|---:|---|---:|\n";
  std::size_t shown = 0;
  for (const auto& f : r.files) {
    std::string name = name_of(f.path);
    if (!f.target.empty() && f.target != f.path) name += " → " + name_of(f.target);
    std::string row = "| " + escape_markdown(name) + " | " +
                      (f.format.empty() ? std::string("–") : escape_markdown(f.format)) + " | " +
                      human_size(f.bytes) + " | " + std::string(engine::status_name(f.status)) +
                      " | " + seconds(f.seconds) + " |\n";
    if (table.size() + row.size() > room) break;
    table += row;
    ++shown;
  }
  if (shown < r.files.size())
    table += "\n…and " + std::to_string(r.files.size() - shown) + " more (see the JSON report)\n";
  // A long table is folded: the counts above say what a reader needs first.
  if (r.files.size() > kSummaryUnfoldedRows)
    table = "<details><summary>All " + std::to_string(r.files.size()) + " files</summary>\n\n" +
            table + "\n</details>\n";

  out += fail_part + counts + details.str() + skip_part + table + "\n";
  return out;
}

bool append_to_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::app);
  if (!f) return false;
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  return static_cast<bool>(f.flush());
}

}  // namespace tsign::gha
