// Every platform-specific call lives behind this header and the two it includes: environment,
// UTF-8 paths, the console, the command line and the trust store here; files (wide paths on
// Windows) and atomic replacement in files.hpp; child processes in process.hpp. Nothing else in
// src/ may use POSIX- or Win32-only APIs.
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
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
// The command-line arguments after the program name, as UTF-8 (on Windows read from the UTF-16
// command line: main's argv is in the ANSI code page and loses other characters).
std::vector<std::string> args_utf8(int argc, char** argv);

// Adds the platform's trusted roots to an OpenSSL context: SSL_CERT_FILE when set, else the
// system store (the Windows ROOT store on Windows, OpenSSL's default paths elsewhere).
void load_trust_roots(SSL_CTX* ctx);
void load_trust_roots(X509_STORE* store);

}  // namespace tsign::platform
