// Every platform-specific call lives behind this header and the two it includes: environment,
// UTF-8 paths, the console, the command line and the trust store here; files (wide paths on
// Windows) and atomic replacement in files.hpp; child processes in process.hpp. Nothing else in
// src/ may use POSIX- or Win32-only APIs.
#pragma once

#include <array>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "platform/files.hpp"  // it tames <windows.h> (see there)
#include "platform/process.hpp"

namespace tsign::platform {

std::optional<std::string> getenv(const std::string& name);

// UTF-8 text <-> filesystem paths (UTF-16 on Windows).
std::string to_utf8(const std::filesystem::path& p);
std::filesystem::path from_utf8(std::string_view s);

bool is_terminal(std::FILE* stream);
// Makes the console print UTF-8 correctly (Windows); a no-op elsewhere.
void setup_console();
// Keeps the buffers a run frees in the heap, for the next file (glibc; a no-op elsewhere). Every
// file takes and gives back buffers of 1 MiB (the chunks of its digest pass and of its copy):
// glibc returns those to the system (mmap and munmap, or trimming the heap), and each file then
// faults them in again — 90 000 page faults and 0.1 s of system time for wine's 545 DLLs, plus
// munmap's TLB shootdowns between the threads; 5 800 faults with them kept. Call at start-up.
void setup_memory();
// The command-line arguments after the program name, as UTF-8 (on Windows read from the UTF-16
// command line: main's argv is in the ANSI code page and loses other characters).
std::vector<std::string> args_utf8(int argc, char** argv);

// Adds the platform's trusted roots to an OpenSSL context: SSL_CERT_FILE when set, else the
// system store (the Windows ROOT store on Windows, OpenSSL's default paths elsewhere, plus the
// system's own CA bundle when OpenSSL's compiled-in one is missing: see kSystemCaBundles).
void load_trust_roots(SSL_CTX* ctx);
void load_trust_roots(X509_STORE* store);

// Where Unix systems keep their CA bundle, probed in this order. A released binary carries the
// OpenSSL of the machine that built it, whose compiled-in bundle path (Alpine's /etc/ssl/cert.pem
// for the static Linux build, Homebrew's prefix for macOS) need not exist where it runs: RHEL and
// Fedora keep theirs under /etc/pki, macOS without Homebrew has only /etc/ssl/cert.pem
// (docs/usage.md, "Credentials, hosts and trust").
inline constexpr std::array<std::string_view, 6> kSystemCaBundles = {
    "/etc/ssl/certs/ca-certificates.crt",                 // Debian, Ubuntu, Alpine, Arch, Gentoo
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  // RHEL, CentOS, Rocky, Alma, Fedora
    "/etc/pki/tls/certs/ca-bundle.crt",                   // older RHEL and Fedora
    "/etc/ssl/ca-bundle.pem",                             // openSUSE, SLES
    "/etc/pki/tls/cacert.pem",                            // OpenELEC
    "/etc/ssl/cert.pem",                                  // macOS, Alpine, FreeBSD
};

// The bundle to load besides OpenSSL's default paths: none when OpenSSL's own file
// (`openssl_default`) exists, else the first of `candidates` that is a readable file.
std::optional<std::filesystem::path> extra_ca_bundle(
    const std::filesystem::path& openssl_default,
    std::span<const std::string_view> candidates = kSystemCaBundles);

}  // namespace tsign::platform
