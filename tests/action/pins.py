#!/usr/bin/env python3
"""pins.py SOURCE_DIR — checks that the workflows and the repository's own actions name exactly
what they run: every action from another repository pinned by a full commit SHA with its release
in a comment (`uses: owner/name@<40 hex> # v1.2.3`), every container image pinned by digest, and
every digest in a workflow equal to the one in .github/docker/*/Dockerfile, which Dependabot keeps
current (.github/dependabot.yml also has to cover each of those folders and the actions).

usage: pins.py SOURCE_DIR            check the repository; exit 1 naming each finding
       pins.py --self-test           the check refuses known-bad lines (a check that passes
                                     everything would prove nothing)
"""

import pathlib
import re
import sys

import yaml

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$")
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
RELEASE_COMMENT = re.compile(r"^\s*#\s*v\d+(\.\d+)*\s*$")
IMAGE = re.compile(r"\b((?:[a-z0-9.-]+/)?[a-z0-9._-]+):([A-Za-z0-9._-]+)(@sha256:[0-9a-f]{64})?")
FROM = re.compile(r"^FROM\s+(\S+?):(\S+?)@(sha256:[0-9a-f]{64})\s*$", re.M)


def check_uses(path, text):
    findings = []
    for n, line in enumerate(text.splitlines(), 1):
        m = USES.match(line)
        if not m:
            continue
        ref, rest = m.group(1).strip("'\""), m.group(2)
        if ref.startswith("./"):
            continue  # this repository's own action, at the commit being run
        if ref.startswith("docker://"):
            findings.append(f"{path}:{n}: {ref}: run images through .github/docker, not docker://")
        elif not PINNED.match(ref):
            findings.append(f"{path}:{n}: {ref} is not pinned by a full commit SHA")
        elif not RELEASE_COMMENT.match(rest):
            findings.append(f"{path}:{n}: {ref} has no '# vX.Y.Z' comment naming its release")
    return findings


def check_images(path, text, digests):
    """Images in `container:` keys and in `docker run/build` lines of a workflow."""
    findings = []
    for n, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0]
        if not re.search(r"\bcontainer:\s*\S|\bimage:\s*\S|docker\s+(run|pull)\b", body):
            continue
        for m in IMAGE.finditer(body):
            name, tag, digest = m.group(1), m.group(2), m.group(3)
            if name in ("tsign-static-build",) or "/" in tag:
                continue  # the image release.yml builds from its Dockerfile
            if not digest:
                findings.append(f"{path}:{n}: image {name}:{tag} is not pinned by digest")
                continue
            want = digests.get((name, tag))
            if want is None:
                findings.append(f"{path}:{n}: image {name}:{tag} has no Dockerfile under "
                                ".github/docker for Dependabot to keep current")
            elif want != digest[1:]:
                findings.append(f"{path}:{n}: {name}:{tag} is pinned to {digest[1:]}, but "
                                f".github/docker says {want}: copy the Dockerfile's digest here")
    return findings


def check(src):
    src = pathlib.Path(src)
    findings = []
    digests = {}
    docker_dirs = []
    for df in sorted((src / ".github/docker").glob("*/Dockerfile")):
        docker_dirs.append("/" + str(df.parent.relative_to(src)))
        froms = FROM.findall(df.read_text())
        if not froms:
            findings.append(f"{df.relative_to(src)}: FROM is not pinned by digest (image:tag@sha256:…)")
        for name, tag, digest in froms:
            digests[(name, tag)] = digest
    files = sorted((src / ".github/workflows").glob("*.yml")) + \
        sorted((src / ".github/actions").glob("*/action.yml")) + [src / "action.yml"]
    for f in files:
        text = f.read_text()
        rel = f.relative_to(src)
        findings += check_uses(rel, text)
        findings += check_images(rel, text, digests)
    dep = src / ".github/dependabot.yml"
    if not dep.is_file():
        findings.append(".github/dependabot.yml is missing")
    else:
        updates = yaml.safe_load(dep.read_text()).get("updates", [])
        covered = {}
        for u in updates:
            dirs = u.get("directories") or [u.get("directory")]
            covered.setdefault(u.get("package-ecosystem"), set()).update(dirs)
        if "/" not in covered.get("github-actions", set()):
            findings.append(".github/dependabot.yml: no github-actions updates for '/'")
        for a in sorted((src / ".github/actions").glob("*/action.yml")):
            d = "/" + str(a.parent.relative_to(src))
            if d not in covered.get("github-actions", set()):
                findings.append(f".github/dependabot.yml: github-actions does not cover {d}")
        for d in docker_dirs:
            if d not in covered.get("docker", set()):
                findings.append(f".github/dependabot.yml: docker does not cover {d}")
    return findings


def self_test():
    digests = {("debian", "bookworm"): "sha256:" + "a" * 64}
    bad = {
        "a tag": "      - uses: actions/checkout@v5\n",
        "a short SHA": "      - uses: actions/checkout@fbc6f39 # v5.1.0\n",
        "no release comment": "      - uses: actions/checkout@" + "f" * 40 + "\n",
    }
    failures = [k for k, t in bad.items() if not check_uses("x.yml", t)]
    if check_uses("x.yml", "      - uses: actions/checkout@" + "f" * 40 + " # v5.1.0\n"):
        failures.append("a pinned action was refused")
    if check_uses("x.yml", "      - uses: ./.github/actions/e2e\n"):
        failures.append("a local action was refused")
    imgs = {
        "an unpinned container": "    container: debian:bookworm\n",
        "a digest other than the Dockerfile's": f"    container: debian:bookworm@sha256:{'b' * 64}\n",
        "an unpinned docker run": "          docker run --rm alpine:3.22 true\n",
        "an image without a Dockerfile": f"    container: ubuntu:24.04@sha256:{'a' * 64}\n",
    }
    failures += [k for k, t in imgs.items() if not check_images("x.yml", t, digests)]
    if check_images("x.yml", f"    container: debian:bookworm@sha256:{'a' * 64}\n", digests):
        failures.append("the Dockerfile's digest was refused")
    for f in failures:
        print(f"pins.py self-test: {f}: not as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        sys.exit(self_test())
    found = check(sys.argv[1])
    for f in found:
        print(f)
    sys.exit(1 if found else 0)
