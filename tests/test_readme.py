"""Every shell command in README.md works as written: the session fixture `readme_run`
(conftest.py) copies the repository to a fresh directory and runs the README's fenced bash
commands there in order, each mapped onto the micro preset (same script, same flags, the sizes
of configs/micro/). A command the README marks `[needs internet]`, `[needs GPU]`, ... is
skipped with that reason; so is the test suite's own command."""
import json
import re
import shlex

import pytest

from conftest import PRESET_OF, micro_command, readme_commands

COMMANDS = readme_commands()


def test_readme_has_the_commands_a_learner_needs():
    text = [shlex.join(words) for _, words, _ in COMMANDS]
    first = {k: next(i for i, t in enumerate(text) if t.startswith(k)) for k in
             ("PRESET=configs/micro bash run.sh", "python sample.py --ckpt=out/ppo_ptx", "bash scripts/test.sh")}
    assert "bash run.sh" in text
    # the Quickstart: the micro run first, then the full run, then sampling its policy
    quick = [i for i, t in enumerate(text) if t == "bash run.sh"]
    assert first["PRESET=configs/micro bash run.sh"] < max(quick) < first["python sample.py --ckpt=out/ppo_ptx"]
    assert any(reason for _, _, reason in COMMANDS), "no command is marked [needs ...]"
    assert all(re.fullmatch(r"needs [\w ,.-]+", reason) for _, _, reason in COMMANDS if reason)


def test_mapping_keeps_the_readme_flags_and_sizes_them_down():
    env, argv = micro_command(["python", "train_ppo.py", "--ptx_coef=0", "--out_dir=out/ppo"])[0]
    assert argv[1:] == ["train_ppo.py", f"--config={PRESET_OF['train_ppo.py']}", "--ptx_coef=0", "--out_dir=out/ppo"]
    env, argv = micro_command(["EXTRA_ARGS=--seed=2", "bash", "run.sh", "out2"])[0]
    assert env == {"EXTRA_ARGS": "--seed=2", "PRESET": "configs/micro"} and argv == ["bash", "run.sh", "out2"]
    assert micro_command(["python", "-m", "pytest", "-q"])[0] is None


@pytest.mark.parametrize("line,words,reason", COMMANDS, ids=[f"README:{n}" for n, _, _ in COMMANDS])
def test_readme_command(readme_run, line, words, reason):
    _, results = readme_run
    r = next(r for r in results if r["line"] == line)
    if r["skipped"]:
        pytest.skip(f"README line {line} ({r['command']}): {r['skipped']}")
    assert r["returncode"] == 0, f"README line {line}: {r['command']} failed:\n{r['stdout'][-4000:]}"


def test_readme_commands_did_what_they_say(readme_run):
    copy, results = readme_run
    by = {r["command"]: r for r in results}
    out = by['python sample.py --ckpt=out/ppo_ptx \'--prompt=How do I feed the Bellor?\'']["stdout"]
    assert "=== prompt: 'How do I feed the Bellor?'" in out and "--- sample 1" in out
    # the full run, mapped to micro, is the micro run's pipeline: its files are where sample.py looked
    assert (copy / "out" / "ppo_ptx" / "ckpt.pt").exists() and (copy / "out_micro" / "eval" / "report.json").exists()
    assert "run.sh: done" in by["PRESET=configs/micro bash run.sh out_micro"]["stdout"]
    helped = by["python train_ppo.py --help"]["stdout"]
    assert helped.startswith("Stage 3: PPO") and "--kl_coef=0.1" in helped
    bench = json.load(open(copy / "bench_cpu.json"))
    assert bench and all(isinstance(v, (int, float, str, dict, list)) for v in bench.values())
