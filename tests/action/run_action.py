#!/usr/bin/env python3
"""Runs a composite action.yml the way the GitHub Actions runner does, on this machine.

Implements the parts of GitHub's "Metadata syntax for GitHub Actions" (composite actions) and the
runner's step protocol that action.yml uses:
  - inputs: the given `with:` values, else each input's `default`, else '';
  - `${{ inputs.* }}`, `${{ runner.os }}`, `${{ runner.arch }}`, `${{ github.action_path }}`,
    `${{ github.action_repository }}` and `${{ steps.<id>.outputs.<name> }}` are substituted in
    `env:`, `with:` and the action's `outputs:` values; any other expression is an error;
  - a `run:` body must contain no expression at all (pasting inputs into a script is script
    injection); it runs as the runner runs bash steps: `bash --noprofile --norc -eo pipefail FILE`;
  - each step gets a fresh GITHUB_OUTPUT file (`name=value` and `name<<DELIM` multi-line values)
    and a fresh GITHUB_STEP_SUMMARY file, appended to the job summary after the step;
  - the first failing step fails the action and the steps after it do not run.

usage: run_action.py --action-dir DIR --inputs FILE.json --work DIR --result FILE.json
                     [--runner-os Linux] [--runner-arch X64] [--action-repository OWNER/NAME]
RUNNER_TEMP and RUNNER_TOOL_CACHE come from the environment (made under --work when unset).
Exit status: 0 when every step succeeded, 1 when a step failed, 2 for a harness error.
"""

import argparse
import json
import os
import re
import subprocess
import sys

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


class HarnessError(Exception):
    pass


def parse_output_file(path):
    """GITHUB_OUTPUT / GITHUB_ENV syntax: name=value lines and name<<DELIM ... DELIM blocks."""
    out = {}
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    i = 0
    while i < len(lines):
        line = lines[i].rstrip("\r")
        i += 1
        if not line:
            continue
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc != -1 and (eq == -1 or heredoc < eq):
            name, delim = line[:heredoc], line[heredoc + 2:]
            value = []
            while True:
                if i >= len(lines):
                    raise HarnessError(f"{path}: multi-line value '{name}' never ends ({delim})")
                cur = lines[i].rstrip("\r")
                i += 1
                if cur == delim:
                    break
                value.append(cur)
            out[name] = "\n".join(value)
        elif eq != -1:
            out[line[:eq]] = line[eq + 1:]
        else:
            raise HarnessError(f"{path}: malformed line {line!r}")
    return out


class Context:
    def __init__(self, inputs, runner_os, runner_arch, action_path, action_repository):
        self.inputs = inputs
        self.runner = {"os": runner_os, "arch": runner_arch}
        self.github = {"action_path": action_path, "action_repository": action_repository}
        self.steps = {}

    def lookup(self, expr):
        parts = expr.split(".")
        if len(parts) == 2 and parts[0] == "inputs":
            if parts[1] not in self.inputs:
                raise HarnessError(f"expression {expr!r} names an undeclared input")
            return self.inputs[parts[1]]
        if len(parts) == 2 and parts[0] == "runner" and parts[1] in self.runner:
            return self.runner[parts[1]]
        if len(parts) == 2 and parts[0] == "github" and parts[1] in self.github:
            return self.github[parts[1]]
        if len(parts) == 4 and parts[0] == "steps" and parts[2] == "outputs":
            if parts[1] not in self.steps:
                # The runner gives '' for a step that has not run (or has no id).
                return ""
            return self.steps[parts[1]].get(parts[3], "")
        raise HarnessError(f"unsupported expression ${{{{ {expr} }}}}")

    def substitute(self, value):
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        return EXPR.sub(lambda m: self.lookup(m.group(1)), str(value))


def run(args):
    with open(os.path.join(args.action_dir, "action.yml"), encoding="utf-8") as f:
        action = yaml.safe_load(f)
    with open(args.inputs, encoding="utf-8") as f:
        given = json.load(f)

    declared = action.get("inputs") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise HarnessError(f"inputs not declared in action.yml: {', '.join(unknown)}")
    inputs = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in given:
            inputs[name] = str(given[name])
        elif "default" in spec:
            inputs[name] = Context(None, "", "", "", "").substitute(spec["default"])
        else:
            inputs[name] = ""

    runs = action.get("runs") or {}
    if runs.get("using") != "composite":
        raise HarnessError("action.yml is not a composite action")

    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    action_dir = os.path.abspath(args.action_dir)
    ctx = Context(inputs, args.runner_os, args.runner_arch, action_dir, args.action_repository)

    base_env = dict(os.environ)
    base_env.setdefault("RUNNER_TEMP", os.path.join(work, "runner-temp"))
    base_env.setdefault("RUNNER_TOOL_CACHE", os.path.join(work, "tool-cache"))
    os.makedirs(base_env["RUNNER_TEMP"], exist_ok=True)
    os.makedirs(base_env["RUNNER_TOOL_CACHE"], exist_ok=True)
    summary_path = os.path.join(work, "step-summary.md")
    open(summary_path, "a", encoding="utf-8").close()
    base_env.update({
        "GITHUB_ACTIONS": "true",
        "GITHUB_ACTION_PATH": action_dir,
        "GITHUB_ACTION_REPOSITORY": args.action_repository,
        "RUNNER_OS": args.runner_os,
        "RUNNER_ARCH": args.runner_arch,
    })

    result = {"steps": [], "outputs": {}, "conclusion": "success"}
    for index, step in enumerate(runs.get("steps") or []):
        step_id = step.get("id") or f"__{index}"
        for key in ("if", "uses", "working-directory"):
            if key in step:
                raise HarnessError(f"step {step_id}: '{key}' is not supported by this harness")
        script = step.get("run")
        if script is None:
            raise HarnessError(f"step {step_id}: no run:")
        if EXPR.search(script):
            raise HarnessError(f"step {step_id}: run: contains an expression; pass it via env:")
        if step.get("shell") != "bash":
            raise HarnessError(f"step {step_id}: shell must be bash (it runs on every OS)")

        step_dir = os.path.join(work, f"step-{index}")
        os.makedirs(step_dir, exist_ok=True)
        files = {n: os.path.join(step_dir, n) for n in ("output", "summary", "env", "path")}
        for p in files.values():
            open(p, "w").close()
        script_path = os.path.join(step_dir, "script.sh")
        with open(script_path, "w", encoding="utf-8") as f:
            f.write(script)

        env = dict(base_env)
        env.update({
            "GITHUB_OUTPUT": files["output"],
            "GITHUB_STEP_SUMMARY": files["summary"],
            "GITHUB_ENV": files["env"],
            "GITHUB_PATH": files["path"],
        })
        for k, v in (step.get("env") or {}).items():
            env[str(k)] = ctx.substitute(v)

        print(f"##[group]Run {step.get('name', step_id)}", flush=True)
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", script_path],
                              env=env, cwd=work, check=False)
        print("##[endgroup]", flush=True)
        outputs = parse_output_file(files["output"])
        ctx.steps[step_id] = outputs
        with open(files["summary"], encoding="utf-8") as s, \
                open(summary_path, "a", encoding="utf-8") as total:
            total.write(s.read())
        result["steps"].append({"id": step_id, "exit_code": proc.returncode, "outputs": outputs})
        if proc.returncode != 0:
            result["conclusion"] = "failure"
            break

    for name, spec in (action.get("outputs") or {}).items():
        result["outputs"][name] = ctx.substitute((spec or {}).get("value"))
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    return 0 if result["conclusion"] == "success" else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--action-dir", required=True)
    p.add_argument("--inputs", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--runner-os", default="Linux")
    p.add_argument("--runner-arch", default="X64")
    p.add_argument("--action-repository", default="")
    try:
        return run(p.parse_args())
    except HarnessError as e:
        print(f"run_action.py: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
