#!/usr/bin/env bash
# verdict_test.sh — tests/fuzz/verdict.py on libFuzzer logs as the three kinds of run leave them:
# completed, interrupted with slow inputs written (once reported as a CRASH listing them), and a
# real crash. Prints "N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { # check NAME EXPECTED_STATUS EXPECTED_REGEX... -- runs verdict.py on $work/NAME
  local name=$1 want=$2 rc=0 out
  shift 2
  out=$(python3 "$here/verdict.py" demo "$work/$name.log" "$work/$name-artifacts" "$status" 30) || rc=$?
  local ok=1
  [ "$rc" = "$want" ] || { echo "FAIL $name: exit $rc, expected $want"; ok=0; }
  for re in "$@"; do
    if [[ $re == !* ]]; then
      ! grep -qE -- "${re:1}" <<<"$out" || { echo "FAIL $name: output matches '${re:1}'"; ok=0; }
    else
      grep -qE -- "$re" <<<"$out" || { echo "FAIL $name: no '$re' in: $out"; ok=0; }
    fi
  done
  if [ "$ok" = 1 ]; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); fi
}

# Completed: final stats, exit 0.
mkdir -p "$work/done-artifacts"
printf '#1000000\tDONE   cov: 10 ft: 20\nstat::number_of_executed_units: 10000000\n' >"$work/done.log"
status=0 check done 0 '^demo: 10000000 execs, 0 crashes \(30 s, 333333 execs/s\)$'

# Interrupted (Ctrl-C): libFuzzer says so, exits non-zero, has written slow-unit files.
mkdir -p "$work/stop-artifacts"
printf 'slow' >"$work/stop-artifacts/slow-unit-1234"
printf '#524288\tpulse  cov: 382\n==77== libFuzzer: run interrupted; exiting\n' >"$work/stop.log"
status=72 check stop 3 '^demo: interrupted after 524288 execs, 0 crashes' \
  'slow input \(not a failure\) slow-unit-1234' '!CRASH' '!crashing input'

# A real crash beside slow inputs: the crash input is listed, the slow one apart.
mkdir -p "$work/crash-artifacts"
printf '\x01\x02' >"$work/crash-artifacts/crash-abcd"
printf 'slow' >"$work/crash-artifacts/slow-unit-99"
printf '#10\tNEW\n==5==ERROR: AddressSanitizer: heap-buffer-overflow\nSUMMARY: AddressSanitizer\n' >"$work/crash.log"
status=1 check crash 1 '^demo: CRASH$' 'heap-buffer-overflow' \
  '^demo: crashing input crash-abcd \(hex\): 0102$' 'slow input \(not a failure\) slow-unit-99' \
  '!crashing input slow-unit'

# Interrupted, but a crash file exists: still a failure.
mkdir -p "$work/both-artifacts"
printf '\xff' >"$work/both-artifacts/leak-1"
printf '#9\tNEW\n==1== libFuzzer: run interrupted; exiting\n' >"$work/both.log"
status=72 check both 1 '^demo: CRASH$' 'crashing input leak-1'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
