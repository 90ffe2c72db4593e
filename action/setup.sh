#!/usr/bin/env bash
# The action's "Set up tsign" step: finds the tsign binary for this runner and names it in the
# step output `tsign`.
#
# Follows the GitHub runner conventions for tool caches (actions/tool-cache:
# $RUNNER_TOOL_CACHE/<tool>/<version>/<arch>, with the sibling marker <arch>.complete written
# last) and workflow commands (::error::, https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions).
#
#   1. tsign-path given: use that binary as it is (a local build); no download, no checksum.
#   2. Otherwise pick the release asset for runner.os/runner.arch, and take it from the tool cache
#      when the .complete marker is there, else download it with curl from tsign-download-url
#      (default: this action's GitHub release v<dist/version>).
#   3. Either way check its SHA-256 against dist/checksums.sha256 committed at this action's ref,
#      so a cached or downloaded binary runs only if it is exactly the one released. A mismatch
#      stops the action here, before tsign touches any file.
#
# Inputs arrive through the environment only (action.yml's env:), never pasted into this script:
#   TSIGN_ACTION_PATH, TSIGN_ACTION_REPOSITORY, TSIGN_RUNNER_OS, TSIGN_RUNNER_ARCH, TSIGN_PATH,
#   TSIGN_DOWNLOAD_URL, and the runner's RUNNER_TOOL_CACHE, RUNNER_TEMP, GITHUB_OUTPUT.
#   TSIGN_DOWNLOAD_TIMEOUT (seconds, default 300), set by a workflow's env: when it needs to, bounds
#   the download: no attempt lasts longer, and no retry starts after it.
# Runs with bash on Linux, macOS and Windows (Git Bash).
set -euo pipefail

# Workflow-command data escaping: % CR LF (a message must stay one command).
gh_escape() {
  local m=$1
  m=${m//%/%25}
  m=${m//$'\r'/%0D}
  m=${m//$'\n'/%0A}
  printf '%s' "$m"
}
fail() {
  printf '::error title=tsign setup::%s\n' "$(gh_escape "$1")"
  exit 1
}

# On Windows, turn C:\... into /c/... so every path below is one style.
to_unix_path() {
  if command -v cygpath >/dev/null 2>&1; then cygpath -u "$1"; else printf '%s' "$1"; fi
}

: "${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set: this script runs as a step of the tsign action}"
action_path=$(to_unix_path "${TSIGN_ACTION_PATH:-$(cd "$(dirname "$0")/.." && pwd)}")

if [ -n "${TSIGN_PATH:-}" ]; then
  exe=$(to_unix_path "$TSIGN_PATH")
  [ -f "$exe" ] || fail "tsign-path: '$TSIGN_PATH' is not a file"
  [ -x "$exe" ] || fail "tsign-path: '$TSIGN_PATH' is not executable (chmod +x it)"
  echo "tsign: using $TSIGN_PATH (tsign-path; no download, no checksum)"
  printf 'tsign=%s\n' "$exe" >>"$GITHUB_OUTPUT"
  exit 0
fi

os=${TSIGN_RUNNER_OS:-}
arch=${TSIGN_RUNNER_ARCH:-}
case "$os/$arch" in
  Linux/X64) asset=tsign-linux-x64 ;;
  Linux/ARM64) asset=tsign-linux-arm64 ;;
  macOS/ARM64) asset=tsign-macos-arm64 ;;
  Windows/X64) asset=tsign-windows-x64.exe ;;
  Windows/ARM64) asset=tsign-windows-arm64.exe ;;
  *) fail "no tsign release for runner.os '$os' and runner.arch '$arch' (there are Linux X64/ARM64, macOS ARM64, Windows X64/ARM64); build tsign and pass it as tsign-path" ;;
esac
exe_name=tsign
[ "$os" = Windows ] && exe_name=tsign.exe
# The tool cache names architectures as Node's os.arch() does (x64, arm64).
cache_arch=$(printf '%s' "$arch" | tr '[:upper:]' '[:lower:]')

version_file="$action_path/dist/version"
[ -f "$version_file" ] || fail "$version_file is missing: this ref of the action is incomplete"
version=$(tr -d ' \t\r\n' <"$version_file")
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$ ]] ||
  fail "$version_file holds '$version', not a version like 1.2.3"

sums_file="$action_path/dist/checksums.sha256"
[ -f "$sums_file" ] || fail "$sums_file is missing: this ref of the action is incomplete"
expected=$(awk -v name="$asset" '
  /^[[:space:]]*(#|$)/ { next }
  { n = $2; sub(/^\*/, "", n); sub(/\r$/, "", n); if (n == name) { print tolower($1); exit } }
' "$sums_file")
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] ||
  fail "dist/checksums.sha256 at this ref has no SHA-256 for $asset (tsign $version): use a released tag of the action, or tsign-path for a build of your own"

# Chosen here, not inside sha256_of: a failure inside $(...) would hide the ::error:: line.
if command -v sha256sum >/dev/null 2>&1; then
  hash_cmd=(sha256sum)
elif command -v shasum >/dev/null 2>&1; then
  hash_cmd=(shasum -a 256) # macOS
else
  fail "neither sha256sum nor shasum is available to check the tsign binary"
fi
sha256_of() {
  local line
  line=$("${hash_cmd[@]}" "$1")
  line=${line%% *}
  # sha256sum prefixes the digest with \ when the file name has a backslash or newline.
  printf '%s' "${line#\\}" | tr '[:upper:]' '[:lower:]'
}

tool_cache=${RUNNER_TOOL_CACHE:-}
if [ -z "$tool_cache" ]; then
  : "${RUNNER_TEMP:?neither RUNNER_TOOL_CACHE nor RUNNER_TEMP is set}"
  tool_cache="$RUNNER_TEMP/tool-cache"
fi
tool_cache=$(to_unix_path "$tool_cache")
dir="$tool_cache/tsign/$version/$cache_arch"
marker="$dir.complete"
exe="$dir/$exe_name"

if [ -f "$marker" ] && [ -f "$exe" ]; then
  actual=$(sha256_of "$exe")
  if [ "$actual" = "$expected" ]; then
    echo "tsign $version ($asset): from the tool cache, SHA-256 $actual matches dist/checksums.sha256"
    printf 'tsign=%s\n' "$exe" >>"$GITHUB_OUTPUT"
    exit 0
  fi
  # A cache entry that changed since it was written is not trusted; fetch the release again.
  echo "::warning title=tsign setup::the cached $exe has SHA-256 $actual, not $expected; downloading it again"
fi

base=${TSIGN_DOWNLOAD_URL:-}
if [ -z "$base" ]; then
  repo=${TSIGN_ACTION_REPOSITORY:-}
  [ -n "$repo" ] ||
    fail "cannot tell which repository this action comes from (github.action_repository is empty, as for a local 'uses: ./'): set tsign-path or tsign-download-url"
  base="https://github.com/$repo/releases/download/v$version"
fi
url="${base%/}/$asset"

max_time=${TSIGN_DOWNLOAD_TIMEOUT:-300}
[[ "$max_time" =~ ^[1-9][0-9]{0,5}$ ]] ||
  fail "TSIGN_DOWNLOAD_TIMEOUT is '$max_time', not a number of seconds (1 to 999999)"

# The marker goes first, so an interrupted run leaves a cold cache rather than a half-written warm one.
rm -f "$marker"
mkdir -p "$dir"
# A file of its own: jobs that share a tool cache (several runners on one self-hosted machine) may
# download at the same time, and one must not delete or rename the other's partial file.
part=$(mktemp "$dir/$exe_name.download.XXXXXX") || fail "cannot create a temporary file in $dir"
trap 'rm -f "$part"' EXIT
echo "tsign $version ($asset): downloading $url"
curl --fail --location --silent --show-error --retry 5 --retry-connrefused --connect-timeout 30 \
  --max-time "$max_time" --retry-max-time "$max_time" --output "$part" "$url" || {
  rc=$?
  [ "$rc" != 28 ] ||
    fail "the download of $url did not finish within $max_time s (TSIGN_DOWNLOAD_TIMEOUT); check the network or tsign-download-url"
  fail "could not download $url (curl exit $rc); check tsign-download-url, or that release v$version has the asset $asset"
}
actual=$(sha256_of "$part")
if [ "$actual" != "$expected" ]; then
  fail "checksum mismatch for $asset from $url: SHA-256 $actual, but dist/checksums.sha256 at this action's ref says $expected. Nothing was run or signed."
fi
chmod 755 "$part"
# Another job may have put the same checked binary there first, and Windows refuses to replace an
# executable that is running: then the one in place is used if it is the release.
if ! mv -f "$part" "$exe" 2>/dev/null; then
  [ -f "$exe" ] && [ "$(sha256_of "$exe")" = "$expected" ] ||
    fail "cannot put the downloaded tsign at $exe"
fi
# Written last: its presence means the directory holds a complete, checked binary.
: >"$marker"
echo "tsign $version ($asset): SHA-256 $actual matches; cached in $dir"
printf 'tsign=%s\n' "$exe" >>"$GITHUB_OUTPUT"
