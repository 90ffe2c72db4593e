#include "engine/report.hpp"

#include <boost/json.hpp>

#include "platform/platform.hpp"

namespace tsign::engine {

namespace json = boost::json;

std::string report_json(const RunResult& r, const ReportContext& ctx) {
  json::object o;
  o["tool"] = "tsign";
  o["version"] = TSIGN_VERSION;
  o["endpoint"] = ctx.endpoint;
  o["account"] = ctx.account;
  o["profile"] = ctx.profile;
  if (r.certificate) {
    o["certificate"] = json::object{{"subject", r.certificate->subject},
                                    {"sha256", r.certificate->sha256_thumbprint},
                                    {"not_before", r.certificate->not_before},
                                    {"not_after", r.certificate->not_after}};
  } else {
    o["certificate"] = nullptr;
  }
  o["timestamp_url"] = ctx.timestamp_url;
  if (!ctx.correlation_id.empty()) o["correlation_id"] = ctx.correlation_id;
  o["duration_seconds"] = r.seconds;
  o["exit_code"] = static_cast<int>(r.exit_code());
  o["deadline_passed"] = r.deadline_passed;
  if (r.interrupted_signal != 0)
    o["interrupted"] = signal_name(r.interrupted_signal);
  else
    o["interrupted"] = nullptr;
  o["concurrency"] = json::object{{"files_in_flight", r.concurrency},
                                  {"throttled_answers", r.throttled},
                                  {"lowest_requests_in_flight", r.lowest_concurrency}};
  o["signatures"] = json::object{
      {"requested", r.signatures_requested},
      {"max", r.max_signatures > 0 ? json::value(r.max_signatures) : json::value(nullptr)},
      {"budget_reached", r.budget_reached}};
  o["totals"] = json::object{{"selected", r.files.size()},
                             {"signed", r.count(Status::signed_ok)},
                             {"failed", r.count(Status::failed)},
                             {"skipped", r.count(Status::skipped) + r.count(Status::planned)}};
  json::array files;
  for (const auto& f : r.files) {
    json::object jf;
    jf["path"] = platform::to_utf8(f.path);
    // The file written: differs from `path` when `path` is a symbolic link (kept as a link).
    jf["target"] = platform::to_utf8(f.target.empty() ? f.path : f.target);
    if (!f.aliases.empty()) {
      json::array names;
      for (const auto& a : f.aliases) names.push_back(json::string(platform::to_utf8(a)));
      jf["also_named"] = std::move(names);
    }
    jf["format"] = f.format;
    jf["status"] = std::string(status_name(f.status));
    jf["bytes"] = f.bytes;
    jf["sha256_before"] = f.sha256_before;
    jf["sha256_after"] = f.sha256_after;
    jf["seconds"] = f.seconds;
    if (f.status == Status::failed)
      jf["error"] = f.error;
    else
      jf["error"] = nullptr;
    if (f.status == Status::skipped || f.status == Status::planned) jf["note"] = f.error;
    files.push_back(std::move(jf));
  }
  o["files"] = std::move(files);
  return json::serialize(o) + "\n";
}

void write_report(const std::filesystem::path& path, const RunResult& r, const ReportContext& ctx) {
  auto text = report_json(r, ctx);
  platform::ReplaceFile out(path);
  out.write(as_bytes(text));
  out.commit();
}

}  // namespace tsign::engine
