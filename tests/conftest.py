"""Shared test setup: the repo root on sys.path, two CPU threads (the CI machine's cores), and the
one slow fixture the suite shares: the README's shell commands, run in order from a fresh copy of
the repository, each mapped onto the micro preset (`readme_run`); its `PRESET=configs/micro bash
run.sh` is the end-to-end pipeline that test_stages.py reads (`micro`). Slow phases announce
themselves on the terminal, so `pytest -q` shows where it is."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
torch.set_num_threads(2)

# configs/micro/<file> -> the script it sizes down (test_configs.py checks every preset's keys)
MICRO_PRESETS = {"world.py": "data/world/prepare.py", "pretrain.py": "pretrain.py", "sft.py": "train_sft.py",
                 "collect.py": "data/world/collect_comparisons.py", "rm.py": "train_rm.py",
                 "ppo.py": "train_ppo.py", "evaluate.py": "evaluate.py", "bench.py": "bench.py",
                 "overoptimization.py": "experiments/overoptimization.py", "habits.py": "experiments/habits.py",
                 "frontier.py": "experiments/frontier.py",
                 "profile_steps.py": "experiments/profile_steps.py"}   # the experiments' micro settings
PRESET_OF = {script: f"configs/micro/{name}" for name, script in MICRO_PRESETS.items()}


def announce(config, msg):
    """A line on the terminal even under -q and output capture: which slow phase is running."""
    capman = config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        sys.stderr.write(f"\n  [{msg}]")
        sys.stderr.flush()


# ----------------------------------------------------------------------------- the README's commands

def readme_commands(path=os.path.join(ROOT, "README.md")):
    """The commands of README.md's fenced bash blocks, in order: (line number, command, the
    reason it cannot run here or None). A command's reason is its `[needs ...]` mark, e.g.
    `# [needs internet]` or `# [needs GPU]` in its trailing comment."""
    out, fence = [], None
    for n, line in enumerate(open(path, encoding="utf-8"), 1):
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence not in ("bash", "sh", "shell") or not line.strip() or line.lstrip().startswith("#"):
            continue
        mark = re.search(r"\[needs ([^\]]+)\]", line)
        command = shlex.split(line, comments=True)
        if command:
            out.append((n, command, f"needs {mark.group(1)}" if mark else None))
    return out


def micro_command(words):
    """A README command as the test runs it: the same script and flags, the micro preset's sizes
    (configs/micro/<stage>.py first, so the README's own flags win; PRESET=configs/micro for
    run.sh), this Python for `python`. Returns (env, argv), or None with a reason to skip."""
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    if words[:3] == ["python", "-m", "pytest"] or words[:2] == ["bash", "scripts/test.sh"]:
        return None, "the test suite itself (this test is part of it)"
    if words[:2] == ["bash", "run.sh"]:
        env.setdefault("PRESET", "configs/micro")
        return (env, words), None
    if words and words[0] in ("python", "python3") and len(words) > 1:
        script = words[1]
        preset = [f"--config={PRESET_OF[script]}"] if script in PRESET_OF else []
        return (env, [sys.executable, script, *preset, *words[2:]]), None
    return (env, words), None


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory, pytestconfig):
    """Copies the repository (its tracked files and new ones, nothing ignored) into a fresh
    directory and runs every README command there in order, mapped by `micro_command`. A
    `bash run.sh OUT` whose mapped form already ran with another OUT is not run again: that
    run's directory is copied to OUT (the full run, mapped to micro, IS the micro run).
    Returns (the copy's root, [result per command]): result = dict(line, command, skipped,
    returncode, stdout (stderr merged in), seconds)."""
    copy = tmp_path_factory.mktemp("fresh_clone")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                           cwd=ROOT, capture_output=True, text=True)
    if files.returncode == 0:
        for rel in filter(None, files.stdout.split("\0")):
            if os.path.isfile(os.path.join(ROOT, rel)):
                os.makedirs(os.path.dirname(copy / rel), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, rel), copy / rel)
    else:   # not a git checkout: everything but outputs and caches
        shutil.copytree(ROOT, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            ".git", "out*", "__pycache__", ".pytest_cache", ".venv", "*.bin", "*.jsonl", "*.tiktoken"))
    results, runs_done = [], {}
    announce(pytestconfig, "fixture readme_run: the README's commands, in a fresh copy, on the micro preset")
    for line, words, reason in readme_commands(os.path.join(copy, "README.md")):
        res = {"line": line, "command": shlex.join(words), "skipped": reason, "returncode": None,
               "stdout": "", "seconds": 0.0}
        results.append(res)
        if reason:
            continue
        mapped, reason = micro_command(list(words))
        if reason:
            res["skipped"] = reason
            continue
        env, argv = mapped
        if argv[:2] == ["bash", "run.sh"]:
            out = argv[2] if len(argv) > 2 else "out"
            key = tuple(sorted(env.items()))
            if key in runs_done:       # the same micro pipeline: reuse it
                if os.path.normpath(out) != os.path.normpath(runs_done[key]["out"]):
                    shutil.copytree(copy / runs_done[key]["out"], copy / out, symlinks=True, dirs_exist_ok=True)
                res.update(returncode=0, stdout=runs_done[key]["stdout"], reused=runs_done[key]["out"])
                continue
        announce(pytestconfig, f"README line {line}: {res['command']}")
        t0 = time.time()
        proc = subprocess.Popen(argv, cwd=copy, env={**os.environ, "PYTHON": sys.executable, **env},
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines = []
        for text in proc.stdout:       # run.sh's stage banners, live
            lines.append(text)
            if text.startswith("=== ["):
                announce(pytestconfig, "  run.sh stage " + text.split("]")[0][5:])
        res.update(stdout="".join(lines), returncode=proc.wait(), seconds=time.time() - t0)
        if argv[:2] == ["bash", "run.sh"] and res["returncode"] == 0:
            runs_done[tuple(sorted(env.items()))] = {"out": argv[2] if len(argv) > 2 else "out", "stdout": res["stdout"]}
    return copy, results


@pytest.fixture(scope="session")
def micro(readme_run):
    """The README's micro run (`PRESET=configs/micro bash run.sh out_micro`): (its OUT, its stdout)."""
    copy, results = readme_run
    runs = [r for r in results if r["command"].startswith("PRESET=configs/micro bash run.sh") and not r["skipped"]]
    assert runs, "README.md has no `PRESET=configs/micro bash run.sh OUT` command"
    r = runs[0]
    assert r["returncode"] == 0, r["stdout"][-4000:]
    out = shlex.split(r["command"])[3:4] or ["out"]
    return copy / out[0], r["stdout"]


# ----------------------------------------------------------------------------- scripts, in one process

RUNNER = r"""
import contextlib, io, json, os, runpy, sys
sys.path.insert(0, {root!r})
results = []
for script, argv, cwd in {jobs!r}:
    out, err, code = io.StringIO(), io.StringIO(), 0
    os.chdir(cwd)
    sys.argv = [script, *argv]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (print(e.code, file=sys.stderr) or 1)
        except Exception as e:
            import traceback; traceback.print_exc(); code = "exception"
    results.append({{"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}})
print(json.dumps(results))
"""


def run_scripts(jobs, timeout=300):
    """Run [(script path, argv, cwd), ...] one after another in ONE fresh Python process (torch
    imported once: several scripts in the time of two), each as `python SCRIPT ARGV` would run
    it from cwd. Returns per job {"code": exit status (0, 2, ... or "exception"), "stdout", "stderr"}."""
    import json
    code = RUNNER.format(root=ROOT, jobs=[(os.path.join(ROOT, s), list(a), str(c)) for s, a, c in jobs])
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])
