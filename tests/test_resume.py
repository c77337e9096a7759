"""Training that survives (issue 21): every stage resumed after a stop equals the run that never
stopped, a kill cannot tear a checkpoint or a metrics line, a diverging run stops without saving
its broken state, and two runs cannot share one out_dir."""
import contextlib
import io
import json
import os
import runpy
import signal
import subprocess
import sys

import pytest
import torch

from nanoinstruct import common

from conftest import ROOT   # and the `micro` pipeline fixture


def run(*args, code=0):
    """A stage script run in this process (runpy: no interpreter and torch start-up per run, which
    is most of a micro run's time); its stdout. The exit status must be `code`; the out_dir lock
    the run took is let go."""
    out = io.StringIO()
    argv, status = sys.argv, 0
    sys.argv = list(args)
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(os.path.join(ROOT, args[0]), run_name="__main__")
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
        while common._locks:
            os.close(common._locks.pop())
    assert status == code, out.getvalue()[-3000:]
    return out.getvalue()


def stage_args(stage, out):
    """A few steps of each stage on the micro pipeline, with dropout on (the RNG state matters),
    more than one epoch (the data order matters) and, for PPO, a prompt cursor that wraps and an
    adaptive beta."""
    w = out / "world"
    return {
        "pretrain": ["pretrain.py", "--config=configs/micro/pretrain.py", f"--train_bin={w / 'train.bin'}",
                     f"--val_bin={w / 'val.bin'}", f"--tokenizer={w / 'tokenizer.tiktoken'}", "--max_steps=6",
                     "--dropout=0.1", "--eval_interval=3"],
        "sft": ["train_sft.py", "--config=configs/micro/sft.py", f"--init_from={out / 'base'}",
                f"--train_file={w / 'demos_train.jsonl'}", f"--val_file={w / 'demos_val.jsonl'}", "--epochs=2",
                "--batch_size=24", "--ptx_frac=0.2", f"--ptx_bin={w / 'train.bin'}", "--dropout=0.1",
                "--eval_interval=2", "--log_interval=1", "--n_samples=0"],
        "rm": ["train_rm.py", "--config=configs/micro/rm.py", f"--init_from={out / 'sft'}",
               f"--train_file={w / 'comparisons_train.jsonl'}", f"--val_file={w / 'comparisons_val.jsonl'}",
               f"--norm_file={w / 'demos_train.jsonl'}", "--epochs=2", "--batch_size=6", "--dropout=0.1",
               "--eval_interval=2", "--log_interval=1"],
        "ppo": ["train_ppo.py", "--config=configs/micro/ppo.py", f"--init_from={out / 'sft'}",
                f"--reward_model={out / 'rm'}", f"--prompts_file={w / 'prompts_ppo.jsonl'}",
                f"--ptx_bin={w / 'train.bin'}", "--iterations=3", "--rollout_batch=12", "--adaptive_kl=True",
                "--log_samples=0"],
    }[stage]


def metrics(run_dir):
    """metrics.jsonl without its timing columns."""
    rows = [json.loads(line) for line in open(run_dir / "metrics.jsonl")]
    return [{k: v for k, v in r.items() if k not in ("tok_per_s", "elapsed_s")} for r in rows]


def same(a, b):
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.parametrize("stage", ["pretrain", "sft", "rm", "ppo"])
def test_stopped_and_resumed_run_equals_the_uninterrupted_one(stage, micro, tmp_path):
    """Stopped after step 1 (a mid-run checkpoint), resumed with nothing but --init_from=resume and
    --out_dir: the same metrics step for step and a bit-identical checkpoint (weights, optimiser
    moments, RNGs, data order; for PPO also the value model, beta and the prompt cursor)."""
    out, _ = micro
    args = stage_args(stage, out)
    a, b = tmp_path / "a", tmp_path / "b"
    run(*args, f"--out_dir={a}")
    run(*args, f"--out_dir={b}", "--stop_step=1")
    partial = common.load_checkpoint(str(b))
    assert partial["step"] == 1 and partial["finished"] is False
    with pytest.raises(SystemExit):   # a later stage must not take the stopped run for a finished one
        common.load_model(str(b), verbose=False)
    stdout = run(args[0], "--init_from=resume", f"--out_dir={b}")
    assert "resuming" in stdout and "changed from" not in stdout
    assert len(metrics(a)) >= 3 and metrics(a) == metrics(b)
    ca, cb = common.load_checkpoint(str(a)), common.load_checkpoint(str(b))
    assert ca["finished"] is True and ca.keys() == cb.keys()
    for key in ca:
        if key not in ("config", "summary"):   # (the RM's summary holds its wall time)
            assert same(ca[key], cb[key]), key
    if stage == "ppo":
        assert "value" in ca and ca["kl_coef"] != 0.1   # the value model and the adapted beta travel too


KILL_IN_SAVE = """
import os, signal, sys, torch
from nanoinstruct import common
from nanoinstruct.model import GPT, GPTConfig
m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16), verbose=False)
common.save_run(sys.argv[1], {"run": 1}, m, step=1)
real_save = torch.save
def dying_save(obj, f, *args, **kwargs):   # a kill -9 half-way through writing the next one
    real_save(obj, f)
    os.truncate(f, os.path.getsize(f) // 2)
    os.kill(os.getpid(), signal.SIGKILL)
torch.save = dying_save
common.save_run(sys.argv[1], {"run": 1}, m, step=2)
"""


def test_kill_during_checkpoint_write_keeps_the_last_checkpoint(tmp_path):
    r = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, str(tmp_path)], cwd=ROOT)
    assert r.returncode == -signal.SIGKILL
    assert common.load_checkpoint(str(tmp_path))["step"] == 1       # the last good one loads
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]   # the torn temp file ...
    common.lock_out_dir(str(tmp_path))                              # ... is swept by the next run
    os.close(common._locks.pop())
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_resumed_metrics_drop_a_torn_line_and_later_steps(tmp_path, capsys):
    log = common.MetricsLog(str(tmp_path), 10)
    for step in range(5):
        log.log(step, loss=float(step))
    os.write(log.fd, b'{"step": 5, "lo')   # a kill in the middle of a write
    os.close(log.fd)
    log = common.MetricsLog(str(tmp_path), 10, resume_step=2)       # the checkpoint was of step 2
    assert "torn last line" in capsys.readouterr().out
    log.log(3, loss=30.0)
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [(r["step"], r["loss"]) for r in rows] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 30.0)]


def test_divergence_stops_the_run_and_keeps_the_last_checkpoint(micro, tmp_path, capsys):
    """--lr=1e9 on a resumed run that checkpoints every step: exit 3 naming the step and the
    quantity; ckpt.pt is the last good step's (finite weights), never the broken one."""
    out, _ = micro
    args = stage_args("pretrain", out)
    run(*args, f"--out_dir={tmp_path}", "--stop_step=1")
    run("pretrain.py", "--init_from=resume", f"--out_dir={tmp_path}", "--lr=1e9", "--max_steps=20",
        "--ckpt_interval=1", code=3)
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: step ") and any(f"{q} is nan" in err or f"{q} is inf" in err
                                                  for q in ("loss", "grad_norm", "val_loss", "train_loss"))
    bad_step = int(err.split()[2].rstrip(":"))
    ckpt = common.load_checkpoint(str(tmp_path))
    assert ckpt["step"] == bad_step - 1 and bad_step > 2      # the last good step (one checkpoint a step)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert all(json.loads(line)["loss"] == json.loads(line)["loss"] for line in open(tmp_path / "metrics.jsonl"))


def test_rm_divergence_writes_no_summary_or_checkpoint(micro, tmp_path, capsys):
    out, _ = micro
    run(*stage_args("rm", out), f"--out_dir={tmp_path}", "--lr=1e9", code=3)
    assert "is nan" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists() and not (tmp_path / "ckpt.pt").exists()


def test_second_run_on_one_out_dir_is_refused(micro, tmp_path, capsys):
    out, _ = micro
    fd = os.open(tmp_path / "run.lock", os.O_RDWR | os.O_CREAT)
    import fcntl
    fcntl.flock(fd, fcntl.LOCK_EX)   # "the other run" (flock: another open file description conflicts)
    os.write(fd, b"pid 4242 on host, train.py")
    try:
        run(*stage_args("pretrain", out), f"--out_dir={tmp_path}", code=2)
    finally:
        os.close(fd)
    assert "in use by another run (pid 4242 on host, train.py)" in capsys.readouterr().err
    assert not (tmp_path / "metrics.jsonl").exists()
