// Child processes: run_capture (process.hpp) with a timeout, without a shell -- posix_spawnp and
// poll(2) on POSIX; CreateProcessW through cmd.exe in a kill-on-close job object on Windows.
#include "platform/process.hpp"

#include "platform/platform.hpp"

#ifdef _WIN32
#include <windows.h>

#include <thread>
#else
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>

extern char** environ;  // POSIX: the environment handed to posix_spawnp
#endif

namespace tsign::platform {

#ifdef _WIN32

namespace {

// Quotes one argument the way CommandLineToArgvW (and the C runtime) split it back.
std::wstring quote_arg(const std::wstring& a) {
  if (!a.empty() && a.find_first_of(L" \t\"") == std::wstring::npos) return a;
  std::wstring q = L"\"";
  std::size_t backslashes = 0;
  for (wchar_t c : a) {
    if (c == L'\\') {
      ++backslashes;
      continue;
    }
    if (c == L'"')
      q.append(backslashes * 2 + 1, L'\\');
    else
      q.append(backslashes, L'\\');
    backslashes = 0;
    q.push_back(c);
  }
  q.append(backslashes * 2, L'\\');
  q.push_back(L'"');
  return q;
}

struct Handle {
  HANDLE h = nullptr;
  ~Handle() {
    if (h && h != INVALID_HANDLE_VALUE) CloseHandle(h);
  }
};

void drain(HANDLE h, std::string& out) {
  char buf[4096];
  DWORD got = 0;
  // ::ReadFile is the Win32 call; unqualified it would name tsign::platform::ReadFile.
  while (::ReadFile(h, buf, sizeof buf, &got, nullptr) && got > 0) out.append(buf, got);
}

}  // namespace

RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  if (argv.empty()) return r;
  // CreateProcessW runs only .exe files; tools such as az are .cmd scripts, which need cmd.exe.
  std::wstring cmdline = L"cmd.exe /d /s /c \"";
  for (std::size_t i = 0; i < argv.size(); ++i) {
    if (i) cmdline += L' ';
    cmdline += quote_arg(from_utf8(argv[i]).wstring());
  }
  cmdline += L'"';

  SECURITY_ATTRIBUTES sa{sizeof(sa), nullptr, TRUE};
  Handle out_r, out_w, err_r, err_w;
  if (!CreatePipe(&out_r.h, &out_w.h, &sa, 0) || !CreatePipe(&err_r.h, &err_w.h, &sa, 0)) return r;
  SetHandleInformation(out_r.h, HANDLE_FLAG_INHERIT, 0);
  SetHandleInformation(err_r.h, HANDLE_FLAG_INHERIT, 0);

  // A job object so that a timeout also ends the grandchildren (cmd.exe starts python.exe).
  Handle job;
  job.h = CreateJobObjectW(nullptr, nullptr);
  if (job.h) {
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li{};
    li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
    SetInformationJobObject(job.h, JobObjectExtendedLimitInformation, &li, sizeof li);
  }

  STARTUPINFOW si{};
  si.cb = sizeof si;
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
  si.hStdOutput = out_w.h;
  si.hStdError = err_w.h;
  PROCESS_INFORMATION pi{};
  if (!CreateProcessW(nullptr, cmdline.data(), nullptr, nullptr, TRUE,
                      CREATE_NO_WINDOW | CREATE_SUSPENDED, nullptr, nullptr, &si, &pi)) {
    r.not_found = true;
    return r;
  }
  Handle proc, thread;
  proc.h = pi.hProcess;
  thread.h = pi.hThread;
  if (job.h) AssignProcessToJobObject(job.h, proc.h);
  ResumeThread(thread.h);
  CloseHandle(out_w.h);
  out_w.h = nullptr;
  CloseHandle(err_w.h);
  err_w.h = nullptr;

  // Pipes are read on their own threads so a chatty child never blocks on a full pipe.
  std::thread err_reader([&] { drain(err_r.h, r.err); });
  std::thread out_reader([&] { drain(out_r.h, r.out); });
  if (WaitForSingleObject(proc.h, static_cast<DWORD>(timeout.count())) == WAIT_TIMEOUT) {
    r.timed_out = true;
    if (job.h) TerminateJobObject(job.h, 1);
    TerminateProcess(proc.h, 1);
    WaitForSingleObject(proc.h, INFINITE);
  }
  if (job.h) {
    CloseHandle(job.h);  // ends any grandchild still holding the pipes
    job.h = nullptr;
  }
  out_reader.join();
  err_reader.join();
  DWORD code = 0;
  if (!r.timed_out && GetExitCodeProcess(proc.h, &code)) r.exit_code = static_cast<int>(code);
  // cmd.exe reports a missing command as exit code 9009.
  if (r.exit_code == 9009) r.not_found = true;
  return r;
}

#else

namespace {

struct Fd {
  int fd = -1;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

bool make_pipe(Fd& r, Fd& w) {
  int p[2];
  if (::pipe(p) != 0) return false;
  r.fd = p[0];
  w.fd = p[1];
  // Not inherited by children other processes spawn meanwhile; dup2 in the child clears it.
  ::fcntl(p[0], F_SETFD, FD_CLOEXEC);
  ::fcntl(p[1], F_SETFD, FD_CLOEXEC);
  return true;
}

}  // namespace

RunResult run_capture(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  RunResult r;
  if (argv.empty()) return r;
  Fd out_r, out_w, err_r, err_w;
  if (!make_pipe(out_r, out_w) || !make_pipe(err_r, err_w)) return r;

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.not_found = (rc == ENOENT || rc == EACCES);
    return r;
  }
  out_w.reset();
  err_w.reset();

  auto deadline = std::chrono::steady_clock::now() + timeout;
  Fd* fds[2] = {&out_r, &err_r};
  std::string* sinks[2] = {&r.out, &r.err};
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p[2];
    nfds_t n = 0;
    int which[2];
    for (int i = 0; i < 2; ++i) {
      if (fds[i]->fd < 0) continue;
      p[n] = pollfd{fds[i]->fd, POLLIN, 0};
      which[n++] = i;
    }
    int ready = ::poll(p, n, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) break;
    for (nfds_t k = 0; ready > 0 && k < n; ++k) {
      if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t got = ::read(p[k].fd, buf, sizeof buf);
      if (got > 0)
        sinks[which[k]]->append(buf, static_cast<std::size_t>(got));
      else if (got == 0 || errno != EINTR)
        fds[which[k]]->reset();
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  // posix_spawnp may report a missing program only through the child's exit status 127.
  if (r.exit_code == 127 && r.out.empty()) r.not_found = true;
  return r;
}

#endif

}  // namespace tsign::platform
