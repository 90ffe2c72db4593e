// Runs Debian's tinyproxy as a child process for a test: a generated configuration (a free
// loopback port, Basic credentials, the CONNECT ports the test needs, its log in the test's
// folder), in the foreground (-d), stopped with SIGTERM when destroyed. Ready once its port
// accepts a connection, polled against a bounded deadline; never a fixed sleep.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

extern char** environ;

namespace it {

// A loopback TCP port nobody listens on at this moment (the kernel's choice for port 0).
inline int free_loopback_port() {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (s < 0 || bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free loopback port");
  close(s);
  return ntohs(a.sin_port);
}

inline bool accepts(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  bool ok = s >= 0 && connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (s >= 0) close(s);
  return ok;
}

class Tinyproxy {
 public:
  Tinyproxy(const fs::path& dir, const std::string& user, const std::string& password,
            const std::vector<int>& connect_ports)
      : dir_(dir), port_(free_loopback_port()) {
    fs::create_directories(dir);
    std::string conf = "Port " + std::to_string(port_) +
                       "\nListen 127.0.0.1\nTimeout 60\nMaxClients 100\nAllow 127.0.0.1\n"
                       "LogLevel Connect\nLogFile \"" +
                       (dir / "tinyproxy.log").string() + "\"\nBasicAuth " + user + " " + password +
                       "\nConnectPort 443\n";
    for (int p : connect_ports) conf += "ConnectPort " + std::to_string(p) + "\n";
    write_file(dir / "tinyproxy.conf", conf);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string out = (dir / "tinyproxy.out").string();
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    std::vector<std::string> args = {"tinyproxy", "-d", "-c", (dir / "tinyproxy.conf").string()};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawnp(&pid_, "tinyproxy", &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
      throw std::runtime_error("cannot start tinyproxy (is it installed? scripts/setup)");
    // Ready when its port accepts; an exit meanwhile is reported with its output.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!accepts(port_)) {
      int st = 0;
      if (waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("tinyproxy exited before it listened:\n" + read_file(out));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("tinyproxy did not listen within 20 s:\n" + read_file(out));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // a poll interval
    }
  }
  ~Tinyproxy() { stop(); }
  Tinyproxy(const Tinyproxy&) = delete;
  Tinyproxy& operator=(const Tinyproxy&) = delete;

  int port() const { return port_; }
  // http://user:password@127.0.0.1:port
  std::string url(const std::string& user, const std::string& password) const {
    return "http://" + user + ":" + password + "@127.0.0.1:" + std::to_string(port_);
  }
  std::string log() const {
    return fs::exists(dir_ / "tinyproxy.log") ? read_file(dir_ / "tinyproxy.log") : std::string();
  }

 private:
  void stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  fs::path dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace it
