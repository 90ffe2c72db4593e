/* wintrust_verify.exe: Windows' own Authenticode judge, WinVerifyTrust with
 * WINTRUST_ACTION_GENERIC_VERIFY_V2 (the policy signtool verify /pa and Explorer use), for the
 * tests. Built with the MinGW-w64 cross compiler and run under wine
 * (tests/support/wintrust/wintrust.cmake, tests/integration/wintrust.hpp); docs/judges.md says what
 * wine's implementation checks.
 *
 *   wintrust_verify.exe [--root CERT]... FILE...
 *
 * Each --root (PEM or DER) is added to the CurrentUser ROOT store first, so that the tests' own
 * PKI is trusted; the run uses a wine prefix of its own, never the one of scripts/test-windows.
 * Then every FILE is verified in this one process (a wine start costs about a second) and one line
 * per file is printed: "0x<HRESULT> <FILE>". The exit code is 0 only if every result is 0.
 * A path beginning with '/' is a Unix path, reached through wine's Z: drive. */
#include <windows.h> /* first: the other Windows headers need its types */

#include <softpub.h>
#include <stdio.h>
#include <wchar.h>
#include <wincrypt.h>
#include <wintrust.h>

/* Unix paths name the same file through Z:, wine's view of the root directory. */
static void windows_path(const wchar_t* arg, wchar_t* out, size_t n) {
  _snwprintf(out, n, arg[0] == L'/' ? L"Z:%ls" : L"%ls", arg);
  out[n - 1] = 0;
}

static BYTE* read_file(const wchar_t* path, DWORD* size) {
  HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
  if (h == INVALID_HANDLE_VALUE) return NULL;
  DWORD n = GetFileSize(h, NULL), got = 0;
  BYTE* buf = (BYTE*)HeapAlloc(GetProcessHeap(), 0, n + 1);
  if (buf && (!ReadFile(h, buf, n, &got, NULL) || got != n)) {
    HeapFree(GetProcessHeap(), 0, buf);
    buf = NULL;
  }
  CloseHandle(h);
  *size = n;
  return buf;
}

/* Adds one certificate (PEM or DER) to CurrentUser ROOT; 0 on success. */
static int trust_root(const wchar_t* arg) {
  wchar_t path[MAX_PATH * 2];
  windows_path(arg, path, sizeof path / sizeof *path);
  DWORD size = 0;
  BYTE* data = read_file(path, &size);
  if (!data) {
    fwprintf(stderr, L"wintrust_verify: cannot read %ls\n", path);
    return 1;
  }
  BYTE* der = data;
  DWORD der_size = size;
  DWORD n = 0;
  if (CryptStringToBinaryA((const char*)data, size, CRYPT_STRING_BASE64HEADER, NULL, &n, NULL,
                           NULL)) {
    der = (BYTE*)HeapAlloc(GetProcessHeap(), 0, n);
    CryptStringToBinaryA((const char*)data, size, CRYPT_STRING_BASE64HEADER, der, &n, NULL, NULL);
    der_size = n;
  }
  HCERTSTORE store =
      CertOpenStore(CERT_STORE_PROV_SYSTEM_W, 0, 0, CERT_SYSTEM_STORE_CURRENT_USER, L"ROOT");
  BOOL ok = store && CertAddEncodedCertificateToStore(store, X509_ASN_ENCODING, der, der_size,
                                                      CERT_STORE_ADD_USE_EXISTING, NULL);
  if (!ok)
    fwprintf(stderr, L"wintrust_verify: cannot trust %ls (error 0x%08lX)\n", path, GetLastError());
  if (store) CertCloseStore(store, 0);
  if (der != data) HeapFree(GetProcessHeap(), 0, der);
  HeapFree(GetProcessHeap(), 0, data);
  return ok ? 0 : 1;
}

static LONG verify(const wchar_t* path) {
  GUID action = WINTRUST_ACTION_GENERIC_VERIFY_V2;
  WINTRUST_FILE_INFO file = {0};
  file.cbStruct = sizeof file;
  file.pcwszFilePath = path;
  WINTRUST_DATA data = {0};
  data.cbStruct = sizeof data;
  data.dwUIChoice = WTD_UI_NONE;
  /* The test PKI publishes no CRL or OCSP responder: revocation is not what is judged here. */
  data.fdwRevocationChecks = WTD_REVOKE_NONE;
  data.dwProvFlags = WTD_REVOCATION_CHECK_NONE;
  data.dwUnionChoice = WTD_CHOICE_FILE;
  data.pFile = &file;
  data.dwStateAction = WTD_STATEACTION_VERIFY;
  LONG result = WinVerifyTrust((HWND)INVALID_HANDLE_VALUE, &action, &data);
  data.dwStateAction = WTD_STATEACTION_CLOSE;
  WinVerifyTrust((HWND)INVALID_HANDLE_VALUE, &action, &data);
  return result;
}

int wmain(int argc, wchar_t** argv) {
  int files = 0, failed = 0;
  for (int i = 1; i < argc; ++i) {
    if (wcscmp(argv[i], L"--root") == 0) {
      if (++i == argc || trust_root(argv[i]) != 0) return 2;
      continue;
    }
    wchar_t path[MAX_PATH * 2];
    windows_path(argv[i], path, sizeof path / sizeof *path);
    LONG r = verify(path);
    /* The argument as given, so the caller finds its own path in the line. */
    wprintf(L"0x%08lX %ls\n", (unsigned long)r, argv[i]);
    ++files;
    if (r != 0) ++failed;
  }
  if (files == 0) {
    fwprintf(stderr, L"usage: wintrust_verify.exe [--root CERT]... FILE...\n");
    return 2;
  }
  fflush(stdout);
  return failed ? 1 : 0;
}
