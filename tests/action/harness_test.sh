#!/usr/bin/env bash
# harness_test.sh TSIGN_BINARY SOURCE_DIR WORK_ROOT [FIXTURES_DIR]
#
# Runs the repository's action.yml end to end the way a GitHub runner does (run_action.py), with
# runner.os=Linux and runner.arch=X64, against:
#   - a fake GitHub release: `python3 -m http.server` on 127.0.0.1 (a free port) serving the built
#     tsign under the release asset names, with a dist/checksums.sha256 generated for it;
#   - `tsign emulator` (OIDC, Entra, Trusted Signing, time-stamp authority on loopback).
# Asserts what a workflow author relies on: the outputs, the job summary, that every signed file
# verifies with osslsigncode, the tool cache and its .complete marker, that a warm cache downloads
# nothing, that a wrong checksum stops the action before tsign runs (no file changed), tsign-path,
# the asset chosen for each runner.os/runner.arch, and that inputs cannot inject shell code.
# Every server it starts is stopped on exit.
set -euo pipefail

tsign=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
src=$(cd "$2" && pwd)
work_root=$3
fixtures=${4:-$work_root/fixtures}
here="$src/tests/action"

for tool in osslsigncode curl sha256sum; do
  command -v "$tool" >/dev/null || { echo "harness: $tool is missing (scripts/setup installs it)"; exit 1; }
done
# PyYAML: the first python3 that has it (pyenv's or Debian's python3-yaml).
py=""
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import yaml' 2>/dev/null; then py=$cand; break; fi
done
[ -n "$py" ] || { echo "harness: no python3 with PyYAML (scripts/setup installs python3-yaml)"; exit 1; }

mkdir -p "$work_root"
work=$(mktemp -d "$work_root/action-harness.XXXXXX")
http_pid="" emu_pid="" held_pid="" drain_pids=()
cleanup() {
  local status=$? pid
  # A killed server's `wait` returns 143; errexit must not cut the cleanup short.
  set +e
  for pid in "$http_pid" "$emu_pid" "$held_pid"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  for pid in "${drain_pids[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

passed=0
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
ok() {
  passed=$((passed + 1))
  echo "ok: $*"
}
json() { "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); exec("print("+sys.argv[2]+")")' "$@"; }

version=$(tr -d ' \t\r\n' <"$src/dist/version")

# --- inputs: PE files generated at test time -----------------------------------------------------
sh "$src/tests/support/make_fixtures.sh" "$fixtures" >/dev/null
make_bin() { # a fresh folder of unsigned files
  rm -rf "$1"
  mkdir -p "$1/plugins"
  cp "$fixtures/pe64.exe" "$1/app.exe"
  cp "$fixtures/pe64.dll" "$1/core.dll"
  cp "$fixtures/pe32.dll" "$1/plugins/legacy.dll"
  echo "not signed" >"$1/README.txt"
}
tree_digest() { (cd "$1" && find . -type f | LC_ALL=C sort | xargs sha256sum); }

# --- the action as a workflow checks it out: action.yml, action/, dist/ ------------------------------
assets=(tsign-linux-x64 tsign-linux-arm64 tsign-macos-arm64 tsign-windows-x64.exe tsign-windows-arm64.exe)
mkdir -p "$work/release"
for a in "${assets[@]}"; do cp "$tsign" "$work/release/$a"; done
make_action() { # make_action DIR [corrupt]
  mkdir -p "$1/dist"
  cp "$src/action.yml" "$1/"
  cp -R "$src/action" "$1/"
  cp "$src/dist/version" "$1/dist/"
  (cd "$work/release" && sha256sum "${assets[@]}") >"$1/dist/checksums.sha256"
  if [ "${2:-}" = corrupt ]; then
    # The committed digest of tsign-linux-x64 is that of another file: the asset must be refused.
    local other
    other=$(printf 'not the release' | sha256sum | cut -d' ' -f1)
    sed -i "s/^[0-9a-f]\{64\}  tsign-linux-x64\$/$other  tsign-linux-x64/" "$1/dist/checksums.sha256"
    grep -q "^$other  tsign-linux-x64\$" "$1/dist/checksums.sha256" || fail "could not corrupt the checksum"
  fi
}
make_action "$work/action-good"
make_action "$work/action-bad" corrupt

# --- the fake release server --------------------------------------------------------------------
mkfifo "$work/http.out"
"$py" -u -m http.server 0 --bind 127.0.0.1 --directory "$work/release" \
  >"$work/http.out" 2>"$work/http.log" &
http_pid=$!
exec 3<"$work/http.out"
IFS= read -r line <&3 || fail "the release server did not start: $(cat "$work/http.log")"
port=$(printf '%s\n' "$line" | sed -n 's/.* port \([0-9][0-9]*\).*/\1/p')
[ -n "$port" ] || fail "cannot read the release server's port from: $line"
cat <&3 >/dev/null &
drain_pids+=($!)
exec 3<&-
release_url="http://127.0.0.1:$port"
downloads() { grep -c "\"GET /$1 " "$work/http.log" || true; }

# --- the emulator ---------------------------------------------------------------------------------
mkfifo "$work/emu.out"
"$tsign" emulator --state-dir "$work/emu" >"$work/emu.out" 2>"$work/emu.err" &
emu_pid=$!
exec 3<"$work/emu.out"
ready=0
while IFS= read -r line <&3; do
  case "$line" in
    export\ *) eval "$line" ;;
    "# tsign emulator ready") ready=1; break ;;
  esac
done
[ "$ready" = 1 ] || fail "tsign emulator did not start: $(cat "$work/emu.err")"
cat <&3 >/dev/null &
drain_pids+=($!)
exec 3<&-

# run_case NAME ACTION_DIR TOOL_CACHE INPUTS_JSON [runner-os runner-arch] -> sets $rc, $out (dir)
run_case() {
  local name=$1 action_dir=$2 cache=$3 inputs=$4 os=${5:-Linux} arch=${6:-X64}
  out="$work/run-$name"
  mkdir -p "$out/runner-temp"
  printf '%s' "$inputs" >"$out/inputs.json"
  rc=0
  RUNNER_TEMP="$out/runner-temp" RUNNER_TOOL_CACHE="$cache" \
    "$py" "$here/run_action.py" --action-dir "$action_dir" --inputs "$out/inputs.json" \
    --work "$out" --result "$out/result.json" --runner-os "$os" --runner-arch "$arch" \
    --action-repository "example/tsign" >"$out/log" 2>&1 || rc=$?
  [ "$rc" -ne 2 ] || { cat "$out/log"; fail "$name: harness error"; }
}
inputs_for() { # inputs_for FOLDER [JSON object of more inputs] -> JSON
  local extra=${2:-}
  [ -n "$extra" ] || extra='{}'
  "$py" - "$1" "$release_url" "$extra" <<'EOF'
import json, os, sys
d = {
    "endpoint": os.environ["TSIGN_EMULATOR_ENDPOINT"],
    "signing-account-name": os.environ["TSIGN_EMULATOR_ACCOUNT"],
    "certificate-profile-name": os.environ["TSIGN_EMULATOR_PROFILE"],
    "files-folder": sys.argv[1],
    "files-folder-filter": "dll,exe",
    "files-folder-recurse": "true",
    "timestamp-rfc3161": os.environ["TSIGN_EMULATOR_TSA"],
    "tsign-download-url": sys.argv[2],
}
d.update(json.loads(sys.argv[3]))
print(json.dumps(d))
EOF
}
verify_all() {
  local f n=0
  while IFS= read -r f; do
    osslsigncode verify -CAfile "$TSIGN_EMULATOR_CODESIGN_ROOT" -TSA-CAfile "$TSIGN_EMULATOR_TSA_ROOT" \
      -in "$f" >"$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "$1: $f does not verify"; }
    n=$((n + 1))
  done < <(find "$2" -name '*.exe' -o -name '*.dll')
  [ "$n" = 3 ] || fail "$1: expected 3 PE files, found $n"
}

cache="$work/tool-cache"
marker="$cache/tsign/$version/x64.complete"

# 1. Cold cache: download, check, cache, sign. The description tries to inject shell code.
make_bin "$work/bin1"
evil='$(touch '"$work"'/pwned1)`touch '"$work"'/pwned2`"; touch '"$work"'/pwned3; echo "'
run_case cold "$work/action-good" "$cache" \
  "$(inputs_for "$work/bin1" "$("$py" -c 'import json,sys; print(json.dumps({"description": sys.argv[1]}))' "$evil")")"
[ "$rc" = 0 ] || { cat "$out/log"; fail "cold: the action failed (exit $rc)"; }
ok "cold run: the action succeeded"
r="$out/result.json"
[ "$(json "$r" 'd["outputs"]["signed-count"]')" = 3 ] || fail "cold: signed-count is not 3: $(cat "$r")"
[ "$(json "$r" 'd["outputs"]["failed-count"]')" = 0 ] || fail "cold: failed-count is not 0"
[ "$(json "$r" 'd["outputs"]["skipped-count"]')" = 0 ] || fail "cold: skipped-count is not 0"
signed=$(json "$r" '"\n".join(sorted(d["outputs"]["signed-files"].split("\n")))')
expected=$(printf '%s\n' "$work/bin1/app.exe" "$work/bin1/core.dll" "$work/bin1/plugins/legacy.dll" | LC_ALL=C sort)
[ "$signed" = "$expected" ] || fail "cold: signed-files is
$signed
expected
$expected"
report=$(json "$r" 'd["outputs"]["report"]')
[ "$report" = "$out/runner-temp/tsign-report.json" ] || fail "cold: report output is '$report'"
[ "$(json "$report" 'd["totals"]["signed"]')" = 3 ] || fail "cold: the JSON report does not say 3 signed"
ok "cold run: outputs signed-count=3 failed-count=0 skipped-count=0, signed-files, report"
grep -q '^## tsign: 3 signed, 0 failed, 0 skipped' "$out/step-summary.md" || fail "cold: summary headline missing"
grep -q '^| File | Format | Size | Result | Time |' "$out/step-summary.md" || fail "cold: summary has no file table"
[ "$(grep -c '| signed |' "$out/step-summary.md")" = 3 ] || fail "cold: summary does not list 3 signed files"
ok "cold run: the job summary has the headline and one table row per signed file"
verify_all cold "$work/bin1"
ok "cold run: every signed file verifies with osslsigncode (chain and time-stamp)"
[ -f "$marker" ] || fail "cold: no tool-cache marker $marker"
cmp -s "$cache/tsign/$version/x64/tsign" "$tsign" || fail "cold: the cached binary is not the release asset"
[ "$(downloads tsign-linux-x64)" = 1 ] || fail "cold: expected 1 download, the server saw $(downloads tsign-linux-x64)"
ok "cold run: one download; tsign/$version/x64/tsign and x64.complete are in the tool cache"
[ ! -e "$work/pwned1" ] && [ ! -e "$work/pwned2" ] && [ ! -e "$work/pwned3" ] ||
  fail "an input's text was executed as shell code"
ok "an input with \$(...), backticks and quotes was passed as data, not run"

# 2. Warm cache: no download, checksum re-checked, signs again.
make_bin "$work/bin2"
run_case warm "$work/action-good" "$cache" "$(inputs_for "$work/bin2")"
[ "$rc" = 0 ] || { cat "$out/log"; fail "warm: the action failed (exit $rc)"; }
[ "$(json "$out/result.json" 'd["outputs"]["signed-count"]')" = 3 ] || fail "warm: signed-count is not 3"
[ "$(downloads tsign-linux-x64)" = 1 ] || fail "warm: the server saw another download"
grep -q 'from the tool cache, SHA-256 .* matches' "$out/log" || fail "warm: the cached binary's checksum was not re-checked"
verify_all warm "$work/bin2"
ok "warm run: no download, checksum re-checked, 3 files signed and verified"

# 3. Wrong checksum, cold cache: stops before tsign runs; nothing changes.
make_bin "$work/bin3"
before=$(tree_digest "$work/bin3")
run_case badsum-cold "$work/action-bad" "$work/tool-cache-bad" "$(inputs_for "$work/bin3")"
[ "$rc" != 0 ] || fail "badsum-cold: the action succeeded with a wrong checksum"
grep -q '^::error title=tsign setup::checksum mismatch for tsign-linux-x64' "$out/log" ||
  { cat "$out/log"; fail "badsum-cold: no ::error:: naming the checksum mismatch"; }
[ "$(json "$out/result.json" '[s["id"] for s in d["steps"]]')" = "['setup']" ] ||
  fail "badsum-cold: a step after setup ran"
[ "$(tree_digest "$work/bin3")" = "$before" ] || fail "badsum-cold: files changed"
[ ! -e "$out/runner-temp/tsign-report.json" ] || fail "badsum-cold: tsign ran (it wrote a report)"
[ ! -e "$work/tool-cache-bad/tsign/$version/x64.complete" ] || fail "badsum-cold: the refused asset was marked complete"
[ -z "$(find "$work/tool-cache-bad" -type f)" ] || fail "badsum-cold: the refused asset stayed in the cache"
ok "wrong checksum (cold cache): ::error::, exit $rc, tsign not run, no file changed, nothing cached"

# 4. Wrong checksum with a warm cache: the cached binary is not trusted either.
cp -R "$cache" "$work/tool-cache-warm-bad"
run_case badsum-warm "$work/action-bad" "$work/tool-cache-warm-bad" "$(inputs_for "$work/bin3")"
[ "$rc" != 0 ] || fail "badsum-warm: the action succeeded with a wrong checksum"
grep -q '^::error title=tsign setup::checksum mismatch' "$out/log" || { cat "$out/log"; fail "badsum-warm: no ::error::"; }
[ "$(json "$out/result.json" 'len(d["steps"])')" = 1 ] || fail "badsum-warm: a step after setup ran"
[ "$(tree_digest "$work/bin3")" = "$before" ] || fail "badsum-warm: files changed"
ok "wrong checksum (warm cache): ::error::, exit $rc, tsign not run, no file changed"

# 5. tsign-path: a local build, no download, no tool cache; works without a release URL.
make_bin "$work/bin5"
n_before=$(downloads tsign-linux-x64)
run_case local "$work/action-good" "$work/tool-cache-local" \
  "$(inputs_for "$work/bin5" "$("$py" -c 'import json,sys; print(json.dumps({"tsign-path": sys.argv[1], "tsign-download-url": ""}))' "$tsign")")"
[ "$rc" = 0 ] || { cat "$out/log"; fail "tsign-path: the action failed (exit $rc)"; }
[ "$(json "$out/result.json" 'd["outputs"]["signed-count"]')" = 3 ] || fail "tsign-path: signed-count is not 3"
[ "$(downloads tsign-linux-x64)" = "$n_before" ] || fail "tsign-path: something was downloaded"
[ -z "$(find "$work/tool-cache-local" -mindepth 1)" ] || fail "tsign-path: the tool cache was used"
verify_all tsign-path "$work/bin5"
ok "tsign-path: the given binary signed 3 files; no download, no tool cache"

# 6. The asset for each runner.os/runner.arch (dry-run: nothing is signed).
make_bin "$work/bin6"
before=$(tree_digest "$work/bin6")
for combo in Linux:ARM64:tsign-linux-arm64:arm64:tsign macOS:ARM64:tsign-macos-arm64:arm64:tsign \
  Windows:X64:tsign-windows-x64.exe:x64:tsign.exe Windows:ARM64:tsign-windows-arm64.exe:arm64:tsign.exe; do
  IFS=: read -r os arch asset carch exe <<<"$combo"
  c="$work/tool-cache-$os-$arch"
  run_case "$os-$arch" "$work/action-good" "$c" "$(inputs_for "$work/bin6" '{"dry-run": "true"}')" "$os" "$arch"
  [ "$rc" = 0 ] || { cat "$out/log"; fail "$os/$arch: the action failed (exit $rc)"; }
  [ "$(downloads "$asset")" = 1 ] || fail "$os/$arch: $asset was not downloaded once"
  [ -x "$c/tsign/$version/$carch/$exe" ] && [ -f "$c/tsign/$version/$carch.complete" ] ||
    fail "$os/$arch: not cached as tsign/$version/$carch/$exe"
  [ "$(json "$out/result.json" 'd["outputs"]["signed-count"]')" = 0 ] || fail "$os/$arch: dry-run signed something"
done
[ "$(tree_digest "$work/bin6")" = "$before" ] || fail "dry-run changed a file"
ok "runner.os/runner.arch pick tsign-linux-arm64, tsign-macos-arm64, tsign-windows-{x64,arm64}.exe"
run_case macos-x64 "$work/action-good" "$work/tool-cache-mac" "$(inputs_for "$work/bin6")" macOS X64
[ "$rc" != 0 ] && grep -q "^::error title=tsign setup::no tsign release for runner.os 'macOS' and runner.arch 'X64'" "$out/log" ||
  { cat "$out/log"; fail "macOS/X64: expected a clear error"; }
ok "macOS/X64 (no release asset): a clear ::error:: naming tsign-path"

# --- a release server that holds its answers (held_release.py) -------------------------------------
go="$work/held-go"
mkfifo "$work/held.out"
"$py" -u "$here/held_release.py" "$work/release" "$go" >"$work/held.out" 2>"$work/held.log" &
held_pid=$!
exec 3<"$work/held.out"
IFS= read -r line <&3 || fail "the held release server did not start: $(cat "$work/held.log")"
held_url="http://127.0.0.1:${line#port }"
exec 3<&-
held_gets() { grep -c "^GET /$1\$" "$work/held.log" || true; }

# 7. A download that stalls is abandoned after TSIGN_DOWNLOAD_TIMEOUT, with a clear error; nothing
#    is cached and tsign does not run.
make_bin "$work/bin7"
before=$(tree_digest "$work/bin7")
TSIGN_DOWNLOAD_TIMEOUT=2 run_case stalled "$work/action-good" "$work/tool-cache-stalled" \
  "$(inputs_for "$work/bin7" "$("$py" -c 'import json,sys; print(json.dumps({"tsign-download-url": sys.argv[1]}))' "$held_url")")"
[ "$rc" != 0 ] || fail "stalled: the action succeeded without its binary"
grep -q "^::error title=tsign setup::the download of $held_url/tsign-linux-x64 did not finish within 2 s (TSIGN_DOWNLOAD_TIMEOUT)" "$out/log" ||
  { cat "$out/log"; fail "stalled: no ::error:: naming the time bound"; }
[ "$(json "$out/result.json" '[s["id"] for s in d["steps"]]')" = "['setup']" ] || fail "stalled: a step after setup ran"
[ -z "$(find "$work/tool-cache-stalled" -type f)" ] || fail "stalled: a partial download stayed in the tool cache"
[ "$(tree_digest "$work/bin7")" = "$before" ] || fail "stalled: files changed"
ok "a stalled download: abandoned after TSIGN_DOWNLOAD_TIMEOUT=2 with a clear ::error::, nothing cached"

# 8. Two jobs share one tool cache (one self-hosted machine) and download at the same time: job A's
#    download is held half-way while job B downloads, checks, caches and signs; then A finishes.
#    Both must sign: neither may delete or rename the other's partial file.
shared="$work/tool-cache-shared"
make_bin "$work/bin8a"
make_bin "$work/bin8b"
a_inputs=$(inputs_for "$work/bin8a" "$("$py" -c 'import json,sys; print(json.dumps({"tsign-download-url": sys.argv[1]}))' "$held_url")")
n_held=$(held_gets tsign-linux-x64)
(run_case shared-a "$work/action-good" "$shared" "$a_inputs"; echo "$rc" >"$work/rc-a") &
a_pid=$!
# Wait for A's request to reach the server and its partial file to appear (an event, not a delay).
for _ in $(seq 600); do
  [ "$(held_gets tsign-linux-x64)" -gt "$n_held" ] &&
    [ -n "$(find "$shared" -name 'tsign.download*' -size +0 2>/dev/null)" ] && break
  kill -0 "$a_pid" 2>/dev/null || break
  "$py" -c 'import time; time.sleep(0.05)'
done
[ -n "$(find "$shared" -name 'tsign.download*' -size +0 2>/dev/null)" ] ||
  { cat "$work/run-shared-a/log" 2>/dev/null; fail "shared: job A's download never started"; }
run_case shared-b "$work/action-good" "$shared" "$(inputs_for "$work/bin8b")"
rc_b=$rc
: >"$go"
wait "$a_pid"
rc_a=$(cat "$work/rc-a")
[ "$rc_b" = 0 ] || { cat "$work/run-shared-b/log"; fail "shared: job B failed (exit $rc_b)"; }
[ "$rc_a" = 0 ] || { cat "$work/run-shared-a/log"; fail "shared: job A failed (exit $rc_a) after B downloaded into the same cache"; }
verify_all shared-a "$work/bin8a"
verify_all shared-b "$work/bin8b"
[ -f "$shared/tsign/$version/x64.complete" ] && cmp -s "$shared/tsign/$version/x64/tsign" "$tsign" ||
  fail "shared: the cache does not hold the release binary with its marker"
[ -z "$(find "$shared" -name 'tsign.download*')" ] || fail "shared: a partial download was left behind"
ok "two jobs downloading into one tool cache at once: both sign, one complete binary cached"

echo "action harness: $passed checks passed"
echo "$passed passed, 0 failed"
