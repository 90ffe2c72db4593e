#include "engine/engine.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "formats/format.hpp"
#include "platform/platform.hpp"
#include "tsa/timestamp_client.hpp"

namespace tsign::engine {

namespace asio = boost::asio;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string_view status_name(Status s) {
  switch (s) {
    case Status::signed_ok:
      return "signed";
    case Status::failed:
      return "failed";
    case Status::skipped:
      return "skipped";
    case Status::planned:
      return "planned";
  }
  return "failed";
}

std::size_t RunResult::count(Status s) const {
  return static_cast<std::size_t>(std::count_if(
      files.begin(), files.end(), [s](const FileResult& f) { return f.status == s; }));
}

std::string signal_name(int signo) {
  if (signo == SIGINT) return "SIGINT";
  if (signo == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(signo);
}

ExitCode RunResult::exit_code() const {
  if (fatal_code) return *fatal_code;
  if (interrupted_signal != 0) return interrupted_by(interrupted_signal);
  if (deadline_passed && count(Status::failed) > 0) return ExitCode::deadline;
  if (budget_reached && count(Status::failed) > 0) return ExitCode::budget;
  if (count(Status::failed) > 0) return ExitCode::file_failed;
  return ExitCode::ok;
}

namespace {

// A file not signed because the run's signature budget is spent (engine-internal: the run's
// exit code says it, RunResult::budget_reached).
struct BudgetReached : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Everything a file carries from the hashing stage to the writing stage.
class CopyOutput;

struct Prepared {
  std::unique_ptr<formats::SignableFile> file;
  // Formats that copy while digesting (SignableFile::digest_copying): the signed copy, written
  // during the digest pass, and the original's stamp from before it.
  std::unique_ptr<platform::ReplaceFile> out;
  std::unique_ptr<CopyOutput> copy;
  platform::FileStamp stamp;
  std::optional<Bytes> existing;
  Bytes digest;  // the file digest the signature is made over
  std::optional<authenticode::PreparedSignature> signature;
  bool skip = false;
  std::string skip_reason;
};

// Writes the signed copy through a ReplaceFile while hashing it for the report. A large file is
// hashed on a thread of its own, one chunk behind the writing, so the hash adds no wall time: the
// writing thread only copies each chunk (1 MiB) into the one hand-over buffer.
class HashingOutput : public formats::SignedOutput {
 public:
  // hash false: a plain writer (nobody reads the hash: Settings::file_hashes).
  HashingOutput(platform::ReplaceFile& f, bool in_background, bool hash = true)
      : file_(f), hasher_(DigestAlg::sha256), hash_(hash) {
    if (hash && in_background) thread_ = std::thread([this] { hash_handed_over(); });
  }
  ~HashingOutput() override { stop(); }
  HashingOutput(const HashingOutput&) = delete;
  HashingOutput& operator=(const HashingOutput&) = delete;

  void write(ByteView data) override {
    file_.write(data);
    if (!hash_) return;
    if (!thread_.joinable()) {
      hasher_.update(data);
      return;
    }
    std::unique_lock lock(m_);
    cv_.wait(lock, [this] { return !full_; });
    handed_.assign(data.begin(), data.end());
    full_ = true;
    cv_.notify_all();
  }
  Bytes finish() {
    stop();
    return hasher_.finish();
  }

 private:
  void hash_handed_over() {
    Bytes chunk;
    for (;;) {
      {
        std::unique_lock lock(m_);
        cv_.wait(lock, [this] { return full_ || done_; });
        if (!full_) return;  // done, and everything handed over is hashed
        chunk.swap(handed_);
        full_ = false;
      }
      cv_.notify_all();
      hasher_.update(chunk);
    }
  }
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(m_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  platform::ReplaceFile& file_;
  Hasher hasher_;  // touched by the thread only while it runs
  const bool hash_;
  std::thread thread_;
  std::mutex m_;
  std::condition_variable cv_;
  Bytes handed_;
  bool full_ = false, done_ = false;
};

// The signed copy a format writes while it digests the original (SignableFile::digest_copying).
// A large file is written on a thread of its own, up to formats::kLendDepth chunks behind the
// reading, so the copy overlaps the hashing instead of adding to it. A chunk lent (lend) is
// written from the format's own buffer; a chunk written (write) is first copied into a buffer of
// the queue's. Handing over a chunk waits while kLendDepth are queued or being written; patch()
// and finish() wait until every chunk handed over is written.
//
// Threading: write, lend, settle, patch, finish and the accessors are called by one thread, the
// format's; the writing thread touches file_ and before_ only while it runs, and the queue only
// under m_.
class CopyOutput : public formats::PatchableOutput {
 public:
  // hash_before: also the plain SHA-256 of the bytes handed over (the original's, for the
  // report), on the same thread as the writing. In the background, the thread also lets the
  // page cache drop the part of `original` the format has read past (read_past): the rename
  // would otherwise drop it all at once, after everything else.
  CopyOutput(platform::ReplaceFile& f, const fs::path& original, bool in_background,
             bool hash_before)
      : file_(f) {
    if (hash_before) before_.emplace(DigestAlg::sha256);
    if (in_background) {
      release_.emplace(original);
      thread_ = std::thread([this] { write_handed_over(); });
    }
  }
  // Joins without throwing: a write error not yet collected dies with the copy, which the
  // ReplaceFile beside it discards.
  ~CopyOutput() override { join(); }
  CopyOutput(const CopyOutput&) = delete;
  CopyOutput& operator=(const CopyOutput&) = delete;

  void write(ByteView data) override { hand_over(data, false); }
  void lend(ByteView data) override { hand_over(data, true); }
  void settle() override {
    if (!thread_.joinable()) return;
    std::unique_lock lock(m_);
    cv_.wait(lock, [this] { return queue_.empty() || error_; });
    rethrow();
  }
  void read_past(std::uint64_t offset) override {
    if (!thread_.joinable()) return;
    std::lock_guard lock(m_);
    read_past_ = std::max(read_past_, offset);
  }
  void patch(std::uint64_t offset, ByteView data) override {
    stop();
    file_.patch(offset, data);
  }
  // Every chunk handed over is written (or its error thrown).
  void finish() { stop(); }
  // After finish(): how many bytes were handed over, and the hasher of hash_before (null
  // without it), to be fed the rest of the original and finished by the caller.
  std::uint64_t handed_over() const { return handed_over_; }
  Hasher* before() { return before_ ? &*before_ : nullptr; }

 private:
  struct Chunk {
    ByteView data;  // the lender's bytes, or own's
    Bytes own;      // a copy made by write()
  };

  void consume(ByteView data) {
    file_.write(data);
    if (before_) before_->update(data);
  }
  void hand_over(ByteView data, bool lent) {
    handed_over_ += data.size();
    if (!thread_.joinable()) {
      consume(data);
      return;
    }
    Bytes own;
    if (!lent) {
      {
        std::lock_guard lock(m_);
        if (!spare_.empty()) {
          own = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      own.assign(data.begin(), data.end());  // outside the lock: the writer goes on meanwhile
    }
    std::unique_lock lock(m_);
    // Once this returns, the chunk handed over kLendDepth chunks ago is written: its lender may
    // use that buffer again.
    cv_.wait(lock, [this] { return queue_.size() < formats::kLendDepth || error_; });
    rethrow();
    queue_.push_back({data, std::move(own)});
    if (!lent) queue_.back().data = queue_.back().own;
    cv_.notify_all();
  }
  void write_handed_over() {
    std::uint64_t released = 0;
    for (;;) {
      ByteView chunk;
      std::uint64_t read_past = 0;
      {
        std::unique_lock lock(m_);
        cv_.wait(lock, [this] { return !queue_.empty() || done_; });
        if (queue_.empty()) return;
        chunk = queue_.front().data;  // stays queued (counted) until it is written
        read_past = read_past_;
      }
      // A few MiB at a time: each call walks the cache.
      if (read_past >= released + kReleaseStep) {
        release_->release(released, read_past - released);
        released = read_past;
      }
      std::exception_ptr error;
      try {
        consume(chunk);
      } catch (...) {
        error = std::current_exception();
      }
      {
        std::lock_guard lock(m_);
        if (!queue_.front().own.empty()) spare_.push_back(std::move(queue_.front().own));
        queue_.pop_front();
        if (error) error_ = error;
      }
      cv_.notify_all();
      if (error) return;
    }
  }
  void join() {
    if (thread_.joinable()) {
      {
        std::lock_guard lock(m_);
        done_ = true;
      }
      cv_.notify_all();
      thread_.join();
      release_.reset();  // the original is not held open past the writing
    }
  }
  void stop() {
    join();
    rethrow();
  }
  // The writer's error, from every call after it: nothing handed over is written any more.
  void rethrow() {
    if (error_) std::rethrow_exception(error_);
  }

  static constexpr std::uint64_t kReleaseStep = 8 << 20;

  platform::ReplaceFile& file_;
  std::optional<Hasher> before_;                       // touched by the thread only while it runs
  std::optional<platform::PageCacheRelease> release_;  // the same
  std::uint64_t read_past_ = 0;                        // under m_
  std::uint64_t handed_over_ = 0;
  std::thread thread_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Chunk> queue_;   // handed over, not yet written; the front one is being written
  std::vector<Bytes> spare_;  // write()'s copies once written, to be reused
  bool done_ = false;
  std::exception_ptr error_;
};

// The largest signature a run may embed, bounded before it exists so that a file it could not fit
// in is refused before a signature is paid for (docs/usage.md, "How files are written"). What tsign
// embeds is the service's chain, the signed attributes, the signature and a time-stamp token
// with its own chain: 10 to 20 KB. 1 MiB leaves room for any chain; a nested signature adds the
// existing one's size.
constexpr std::uint64_t kSignatureBudget = std::uint64_t{1} << 20;

// Files from this size on hash their signed copy in the background (a thread per file costs
// more than it saves on small ones).
constexpr std::uint64_t kBackgroundHashBytes = 16 * 1024 * 1024;

// Files from this size on are read (and copied while read) on a pool of their own
// (Run::large_pool_): the hashing of a few large files would otherwise hold every pool thread for
// seconds while small files, ready in a millisecond, wait to send their first request. With two
// pools the kernel shares the cores between both kinds, and the small files' requests go out while
// the large files hash (the service's answers take longer than the hashing of a small file anyway).
constexpr std::uint64_t kLargeFileBytes = 16 * 1024 * 1024;

// Feeds `h` the file's bytes from `from` to its end.
void hash_rest_of(platform::ReadFile& f, std::uint64_t from, Hasher& h) {
  Bytes buf(static_cast<std::size_t>(std::min<std::uint64_t>(1 << 20, f.size())));
  for (std::uint64_t off = from; off < f.size();) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), f.size() - off));
    f.read_at(off, std::span<std::uint8_t>(buf.data(), n));
    h.update(ByteView(buf.data(), n));
    off += n;
  }
}

void hash_rest_of(const fs::path& p, std::uint64_t from, Hasher& h) {
  platform::ReadFile f(p);
  hash_rest_of(f, from, h);
}

std::string sha256_of(platform::ReadFile& f) {
  Hasher h(DigestAlg::sha256);
  hash_rest_of(f, 0, h);
  return to_hex(h.finish());
}

std::string sha256_of_file(const fs::path& p) {
  platform::ReadFile f(p);
  return sha256_of(f);
}

// An error's text without the file name it starts with: the log line, the annotation and the
// summary name the file already.
std::string without_name(std::string msg, const FileResult& r) {
  for (const auto& p : {r.path, r.target}) {
    auto prefix = platform::to_utf8(p) + ": ";
    if (!p.empty() && msg.rfind(prefix, 0) == 0) return msg.substr(prefix.size());
  }
  return msg;
}

class Run {
 public:
  Run(const Selection& sel, const Settings& s, Log& log, const OnFileDone& on_done)
      : files_(sel.files.size()),
        settings_(s),
        log_(log),
        on_done_(on_done),
        pool_(pool_size()),
        large_pool_(pool_size()),
        write_pool_(write_pool_size()),
        start_(s.started.value_or(Clock::now())),
        deadline_(start_ + s.timeout) {
    // The files to sign first (workers index them), the skipped names after; sorted at the end.
    for (const auto& f : sel.files) {
      FileResult r;
      r.path = f.path;
      r.target = f.target.empty() ? f.path : f.target;
      r.aliases = f.aliases;
      r.bytes = f.bytes;
      result_.files.push_back(std::move(r));
    }
    for (const auto& k : sel.skipped) {
      FileResult r;
      r.path = k.path;
      r.target = k.target;
      r.status = Status::skipped;
      r.error = k.reason;
      result_.files.push_back(std::move(r));
    }
  }

  RunResult execute(const SignerFactory& make_signer) {
    http::ClientOptions hopts;
    hopts.deadline = deadline_;
    // Each file in flight holds at most one request; the pool must not be the tighter bound.
    hopts.max_connections_per_host = std::max<std::size_t>(
        hopts.max_connections_per_host, static_cast<std::size_t>(settings_.concurrency));
    hopts.on_retry = [this](const std::string& why) { log_.debug(why); };
    http::Client http(ioc_.get_executor(), hopts);
    Services services{ioc_.get_executor(), http, log_};

    if (!settings_.dry_run) {
      handle_ = make_signer(services);
      if (!settings_.timestamp_urls.empty())
        tsa_.emplace(http, settings_.timestamp_urls, settings_.timestamp_digest);
    }
    int workers = settings_.concurrency > 0 ? settings_.concurrency : handle_.preferred_concurrency;
    // A CPU-bound signer: four files per hashing thread, so that one is hashed or signed while
    // the others are written and renamed (which may wait on the disk).
    if (workers <= 0 || settings_.dry_run) workers = 4 * static_cast<int>(pool_size());
    workers = std::max(1, std::min<int>(workers, static_cast<int>(files_)));
    total_ = result_.files.size();
    for (std::size_t i = files_; i < total_; ++i) finish(result_.files[i]);

    asio::steady_timer deadline_timer(ioc_, deadline_);
    deadline_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) deadline_hit_ = true;
    });
    // Ctrl-C / SIGTERM: start no new file and let those in flight finish (each is then signed
    // or untouched); a second signal ends the process at once, originals still intact.
    asio::signal_set signals(ioc_, SIGINT, SIGTERM);
    // Reported as an interruption (exit 128 + N), never as the deadline.
    signals.async_wait([this, &signals](boost::system::error_code ec, int signo) {
      if (ec) return;
      if (result_.interrupted_signal == 0) {
        result_.interrupted_signal = signo;
        stop("interrupted by " + signal_name(signo));
        log_.warning("interrupted by " + signal_name(signo) +
                     ": finishing the files in flight, starting no new file; interrupt again "
                     "to abort");
      }
      signals.async_wait([](boost::system::error_code e, int again) {
        if (e) return;
        platform::abandon_temporaries();  // no half-written copy stays beside a file
        std::_Exit(static_cast<int>(interrupted_by(again)));
      });
    });
    active_ = workers;
    for (int w = 0; w < workers; ++w)
      asio::co_spawn(ioc_, worker(), [this, &deadline_timer, &signals](std::exception_ptr) {
        if (--active_ == 0) {
          deadline_timer.cancel();
          signals.cancel();
        }
      });
    ioc_.run();
    pool_.join();
    large_pool_.join();
    write_pool_.join();
    std::stable_sort(result_.files.begin(), result_.files.end(),
                     [](const FileResult& a, const FileResult& b) { return a.path < b.path; });

    result_.deadline_passed = deadline_hit_ || any_deadline_failure_;
    result_.concurrency = workers;
    result_.max_signatures = settings_.max_signatures;
    auto hs = http.stats();
    result_.throttled = hs.throttled;
    result_.lowest_concurrency = hs.lowest_limit;
    if (hs.throttled > 0)
      log_.info("the service throttled " + std::to_string(hs.throttled) +
                " request(s); tsign paced itself down to " + std::to_string(hs.lowest_limit) +
                " request(s) in flight at the lowest");
    result_.seconds = std::chrono::duration<double>(Clock::now() - start_).count();
    return std::move(result_);
  }

 private:
  static std::size_t pool_size() {
    return std::max(1u, std::min(4u, std::thread::hardware_concurrency()));
  }
  static std::size_t write_pool_size() { return 4 * pool_size(); }

  // Runs `f` on the hashing/writing pool for a file of `bytes` (large files have their own,
  // kLargeFileBytes) and resumes on the io thread with its result.
  template <typename F>
  auto on_pool(std::uint64_t bytes, F f) -> asio::awaitable<decltype(f())> {
    using R = decltype(f());
    auto& pool = bytes >= kLargeFileBytes ? large_pool_ : pool_;
    co_return co_await asio::co_spawn(
        pool, [f = std::move(f)]() mutable -> asio::awaitable<R> { co_return f(); },
        asio::use_awaitable);
  }

  asio::awaitable<void> worker() {
    while (next_ < files_) {
      std::size_t i = next_++;
      FileResult& r = result_.files[i];
      if (stop_ || deadline_hit_ || Clock::now() >= deadline_) {
        r.status = Status::failed;
        if (stop_) {
          r.error = "not signed: " + stop_reason_ + "; the file is unchanged";
        } else {
          r.error = "not started: the run's deadline (" +
                    std::to_string(settings_.timeout.count()) + " s) passed";
          any_deadline_failure_ = true;
        }
        finish(r);
        continue;
      }
      co_await process(r);
      finish(r);
    }
  }

  void finish(const FileResult& r) {
    ++done_;
    if (on_done_) on_done_(r, done_, total_);
  }

  // No new file is started; the first reason is the one files not started give.
  void stop(const std::string& reason) {
    if (stop_) return;
    stop_ = true;
    stop_reason_ = reason;
  }

  asio::awaitable<void> process(FileResult& r) {
    auto t0 = Clock::now();
    try {
      Prepared prep = co_await on_pool(r.bytes, [this, &r] { return prepare(r); });
      if (prep.skip) {
        r.status = settings_.dry_run ? Status::planned : Status::skipped;
        r.error = prep.skip_reason;
      } else {
        // A format's rule about the certificate (an app package's Publisher must be its subject)
        // is checked against the certificate the service signs with, learnt for free, before a
        // signature is paid for.
        if (prep.file->needs_signing_certificate())
          prep.file->check_signing_certificate(co_await signing_leaf());
        // The budget is counted where the request is made (on the io thread, so no two files
        // take the last signature): the file that would exceed it is not signed, none is started
        // after it, and the files in flight finish.
        if (settings_.max_signatures > 0 &&
            result_.signatures_requested >= settings_.max_signatures) {
          const std::string reason = "the signature budget, max-signatures (" +
                                     std::to_string(settings_.max_signatures) + "), is spent";
          result_.budget_reached = true;
          stop(reason);
          throw BudgetReached("not signed: " + reason + "; the file is unchanged");
        }
        ++result_.signatures_requested;
        // (An if, not a conditional expression: GCC 12 mishandles a co_await of one.)
        signer::SignResult res;
        if (handle_.cpu_bound())
          res = co_await asio::co_spawn(
              pool_, handle_.signer->sign(prep.signature->digest_to_sign(), settings_.sign.alg),
              asio::use_awaitable);
        else
          res = co_await handle_.signer->sign(prep.signature->digest_to_sign(), settings_.sign.alg);
        // Checks the signature against the returned leaf and its EKU before anything is kept.
        Bytes der = prep.signature->assemble(res);
        // Again with the certificate that did sign (the service's leaf rotates), before a
        // time-stamp is requested for the signature.
        prep.file->check_signing_certificate(
            authenticode::certificate_der(res.chain.front().get()));
        if (!result_.certificate && !res.chain.empty())
          result_.certificate = authenticode::describe_certificate(res.chain.front().get());
        if (tsa_) {
          auto stamp = co_await tsa_->stamp(authenticode::signature_value(der));
          for (const auto& why : stamp.failures)
            log_.warning(platform::to_utf8(r.path) + ": time-stamp authority " + why +
                         "; the next one was asked");
          der = authenticode::add_timestamp(der, stamp.token);
        }
        if (settings_.append && prep.existing) der = authenticode::nest(*prep.existing, der);
        co_await asio::co_spawn(
            write_pool_,
            [this, &r, &prep, &der]() -> asio::awaitable<void> {
              write(r, prep, der);
              co_return;
            },
            asio::use_awaitable);
        r.status = Status::signed_ok;
      }
    } catch (const BudgetReached& e) {
      r.status = Status::failed;
      r.error = e.what();
    } catch (const DeadlineError& e) {
      r.status = Status::failed;
      r.error = without_name(e.what(), r);
      any_deadline_failure_ = true;
    } catch (const Error& e) {
      r.status = Status::failed;
      r.error = without_name(e.what(), r);
      if (e.code() == ExitCode::auth || e.code() == ExitCode::input) {
        // The identity or the account is wrong: every other file would fail the same way. It
        // outranks an interruption that came first (docs/usage.md "Exit codes").
        if (!result_.fatal_code) {
          result_.fatal_code = e.code();
          result_.fatal_message = e.what();
        }
        stop(e.what());
      }
    } catch (const std::exception& e) {
      r.status = Status::failed;
      r.error = std::string("internal error: ") + e.what();
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  }

  // The DER of the signing certificate, asked of the signer once per run: the first file that
  // needs it fetches it while the others wait (all on the io thread). A fetch that fails is not
  // remembered: the next file asks again (an identity error stops the run anyway).
  asio::awaitable<Bytes> signing_leaf() {
    while (!leaf_ && fetching_leaf_) {
      if (!leaf_gate_)
        leaf_gate_.emplace(co_await asio::this_coro::executor,
                           asio::steady_timer::time_point::max());
      // Woken by cancel() when the fetch is done: that error code is the wake-up.
      co_await leaf_gate_->async_wait(asio::as_tuple(asio::use_awaitable));
    }
    if (leaf_) co_return *leaf_;
    fetching_leaf_ = true;
    struct Done {
      Run& run;
      ~Done() {
        run.fetching_leaf_ = false;
        if (run.leaf_gate_) run.leaf_gate_->cancel();
      }
    } done{*this};
    auto chain = co_await handle_.signer->certificate_chain();
    if (chain.empty()) throw FileError("the signer named no signing certificate");
    leaf_ = authenticode::certificate_der(chain.front().get());
    co_return *leaf_;
  }

  // Pool stage 1: open by content, check writable, digest, build the attributes to sign.
  Prepared prepare(FileResult& r) {
    Prepared p;
    const auto name = platform::to_utf8(r.path);
    // A link is never replaced: everything is read from and written to its target.
    try {
      p.file = formats::open(r.target);
    } catch (const Error&) {
      // Recognised but malformed: still counted with its kind in the summary and the report.
      r.format = std::string(formats::recognised_format(r.target));
      throw;
    }
    r.format = std::string(p.file->format_name());
    r.bytes = p.file->size();
    if (!settings_.dry_run && platform::is_read_only(r.target))
      throw FileError(name + ": the file is read-only; make it writable to sign it");
    p.existing = p.file->existing_signature();
    // Every local reason to refuse the file comes before the request that is paid for.
    p.file->check_can_embed(kSignatureBudget +
                            (settings_.append && p.existing ? p.existing->size() : 0));
    if (settings_.append && p.existing) {
      // The existing signature is decoded here, not when the file is opened (formats read only
      // its outline): one that cannot take a nested signature is refused before one is bought.
      try {
        authenticode::check_nestable(*p.existing);
      } catch (const Error& e) {
        throw FileError(name + ": cannot append a signature: " + e.what());
      }
      p.file->check_can_nest(settings_.sign.alg);
    }
    if (settings_.dry_run) {
      p.skip = true;
      p.skip_reason = p.existing ? "would be signed (has a signature now)" : "would be signed";
      return p;
    }
    if (settings_.skip_signed && p.existing) {
      authenticode::VerifyOptions vo;
      vo.roots = settings_.skip_signed_roots;
      vo.tsa_roots = settings_.skip_signed_roots;
      auto v = authenticode::verify(*p.file, vo);
      if (v.ok()) {
        p.skip = true;
        p.skip_reason = "already signed by " + v.signatures.front().subject;
        return p;
      }
    }
    // The plain SHA-256 for the report runs beside the Authenticode digest: two hashes of one
    // file cost one hash of wall time on a multi-core runner.
    if (!settings_.append && p.file->copies_while_digesting()) {
      // One read for the whole signing: the signed copy is written during the digest pass (and
      // the report's hash of the original taken from the same bytes), and write() checks the
      // stamp taken here to know nobody wrote the original since.
      p.stamp = platform::file_stamp(r.target);
      p.out = std::make_unique<platform::ReplaceFile>(r.target);
      const bool verbatim = p.file->copy_is_verbatim();
      // A copy that is not the original's bytes (a cabinet's rewritten header) cannot give the
      // original's hash: it is read on its own, beside the digest pass.
      std::future<std::string> before_apart;
      if (settings_.file_hashes && !verbatim)
        before_apart =
            std::async(std::launch::async, [path = r.target] { return sha256_of_file(path); });
      p.copy = std::make_unique<CopyOutput>(*p.out, r.target, r.bytes >= kBackgroundHashBytes,
                                            settings_.file_hashes && verbatim);
      p.digest = p.file->digest_copying(settings_.sign.alg, *p.copy);
      p.copy->finish();
      if (Hasher* before = p.copy->before()) {
        // The copy holds the content; the original's old signature table is the rest.
        hash_rest_of(r.target, p.copy->handed_over(), *before);
        r.sha256_before = to_hex(before->finish());
      }
      if (before_apart.valid()) r.sha256_before = before_apart.get();
    } else {
      std::future<std::string> before;
      if (settings_.file_hashes)
        before = std::async(std::launch::async, [path = r.target] { return sha256_of_file(path); });
      p.digest = p.file->digest(settings_.sign.alg);
      if (before.valid()) r.sha256_before = before.get();
    }
    p.signature = authenticode::PreparedSignature::prepare(p.file->signed_content(), p.digest,
                                                           settings_.sign);
    return p;
  }

  // Pool stage 2: the signed copy beside the original, checked, then renamed over it.
  void write(FileResult& r, Prepared& p, const Bytes& der) {
    if (p.copy) return finish_copy(r, p, der);
    const auto name = platform::to_utf8(r.path);
    platform::ReplaceFile out(r.target);
    HashingOutput hashing(out, r.bytes >= kBackgroundHashBytes, settings_.file_hashes);
    const Bytes written =
        settings_.append ? p.file->write_signed_keeping_others(der, hashing, settings_.sign.alg)
                         : p.file->write_signed(der, hashing, settings_.sign.alg);
    out.close();
    // The bytes written must be the bytes whose digest was signed: a file edited while tsign
    // waited for the service is left as the edit made it, not replaced by a copy whose
    // signature no longer matches (the digest of the copy is taken as it is written).
    if (written != p.digest)
      throw FileError(name +
                      ": the file changed while it was being signed (its content is no longer "
                      "what was hashed); it was left as it is now: sign it again");
    // The copy is checked before it replaces the original: parsed again as a whole by the format
    // (structure, certificate table at the end, nothing smuggled after the signature) and its
    // signature must be exactly the one built and verified above.
    auto copy = formats::open(out.read_path(), r.target);
    auto embedded = copy->existing_signature();
    if (!embedded || *embedded != der)
      throw FileError(platform::to_utf8(r.path) +
                      ": the signed copy failed its own check (the signature read back differs); "
                      "the original is unchanged");
    copy.reset();
    p.file.reset();  // close the original before replacing it (required on Windows)
    out.commit();
    const Bytes after = hashing.finish();
    if (settings_.file_hashes) r.sha256_after = to_hex(after);
  }

  // Pool stage 2 for a copy written during the digest pass: the format fills it in, then the
  // same checks as write()'s before it replaces the original. Its content is the bytes that were
  // digested by construction; that nobody wrote the original since is what the stamp says.
  void finish_copy(FileResult& r, Prepared& p, const Bytes& der) {
    const auto name = platform::to_utf8(r.path);
    p.file->finish_copy(der, *p.copy);
    p.copy->finish();
    p.out->close();
    if (platform::file_stamp(r.target) != p.stamp)
      throw FileError(name +
                      ": the file changed while it was being signed (it was written after it "
                      "was hashed); it was left as it is now: sign it again");
    auto copy = formats::open(p.out->read_path(), r.target);
    auto embedded = copy->existing_signature();
    if (!embedded || *embedded != der)
      throw FileError(name +
                      ": the signed copy failed its own check (the signature read back differs); "
                      "the original is unchanged");
    copy.reset();
    p.file.reset();  // close the original before replacing it (required on Windows)
    // The hash after is read from the copy, opened before the rename, while the rename runs:
    // replacing a file can take as long as a fifth of hashing it (freeing the original's pages
    // and blocks, which a file system mounted with `discard` hands to the disk there and then).
    std::future<std::string> after;
    if (settings_.file_hashes)
      after = std::async(
          std::launch::async,
          [f = std::make_shared<platform::ReadFile>(p.out->read_path())] { return sha256_of(*f); });
    p.out->commit();
    if (after.valid()) r.sha256_after = after.get();
  }

  const std::size_t files_;  // result_.files[0, files_) are signed, the rest were skipped
  std::size_t total_ = 0;
  const Settings& settings_;
  Log& log_;
  const OnFileDone& on_done_;
  asio::io_context ioc_{1};
  // Hashing (with the copy made while hashing) and CPU-bound signing: pool_ for files under
  // kLargeFileBytes, large_pool_ for the others; both pool_size() threads. The write stage
  // (filling in the copy, checking it, the rename) on write_pool_, write_pool_size() threads:
  // it mostly waits on the file system (a rename over a file may wait for the disk to discard
  // the replaced file's blocks, ~1 ms each where the file system is mounted with `discard`),
  // and on a pool larger than the cores those waits do not hold the hashing and signing
  // threads up. Nothing on them touches Run's state but the FileResult and Prepared of their
  // own file.
  asio::thread_pool pool_;
  asio::thread_pool large_pool_;
  asio::thread_pool write_pool_;
  Clock::time_point start_, deadline_;
  SignerHandle handle_;
  std::optional<tsa::TimestampAuthorities> tsa_;
  RunResult result_;
  std::size_t next_ = 0, done_ = 0;
  int active_ = 0;
  bool stop_ = false, deadline_hit_ = false, any_deadline_failure_ = false;
  std::string stop_reason_;
  // The signing certificate (signing_leaf()); io thread only.
  std::optional<Bytes> leaf_;
  bool fetching_leaf_ = false;
  std::optional<asio::steady_timer> leaf_gate_;
};

}  // namespace

RunResult run(const Selection& selection, const Settings& settings,
              const SignerFactory& make_signer, Log& log, const OnFileDone& on_done) {
  Run r(selection, settings, log, on_done);
  return r.execute(make_signer);
}

RunResult run(const std::vector<fs::path>& files, const Settings& settings,
              const SignerFactory& make_signer, Log& log, const OnFileDone& on_done) {
  Selection sel;
  for (const auto& f : files) {
    std::error_code ec;
    auto size = fs::file_size(f, ec);
    sel.files.push_back({f, f, {}, ec ? 0 : size});
  }
  return run(sel, settings, make_signer, log, on_done);
}

}  // namespace tsign::engine
