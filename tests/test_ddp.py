"""torchrun data parallelism on CPU (gloo), 2 processes (issue 21): the same global batch as one
process gives the same losses (within float tolerance: each process pads its own share) and the
same weights, and rank 0 alone writes. The processes are started as torchrun starts them (env://
rendezvous: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), without its agent."""
import json
import os
import socket
import subprocess
import sys

import pytest

from nanoinstruct import common

from conftest import ROOT   # and the `micro` pipeline fixture
from test_resume import run, stage_args   # run: in this process


def run_2proc(args):
    """args on 2 processes; (stdout of rank 0, stdout of rank 1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"})
             for r in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-3000:] + err[-3000:]
    return outs[0][0], outs[1][0]


DDP_ARGS = {   # dropout off (the processes draw their own masks), batches that split evenly or not
    "pretrain": ["--grad_accum=2", "--dropout=0.0", "--max_steps=3"],
    "sft": ["--epochs=1", "--batch_size=20", "--dropout=0.0", "--ptx_frac=0.2"],
    "rm": ["--epochs=1", "--batch_size=5", "--dropout=0.0"],
}


@pytest.mark.parametrize("stage", list(DDP_ARGS))
def test_two_processes_equal_one(stage, micro, tmp_path):
    out, _ = micro
    args = stage_args(stage, out) + DDP_ARGS[stage]
    one, two = tmp_path / "one", tmp_path / "two"
    run(*args, f"--out_dir={one}")
    rank0, rank1 = run_2proc(args + [f"--out_dir={two}"])
    assert rank1 == "" and rank0.strip()   # rank 0 alone prints ...
    rows1, rows2 = ([json.loads(line) for line in open(d / "metrics.jsonl")] for d in (one, two))
    assert [r["step"] for r in rows1] == [r["step"] for r in rows2]   # ... and logs each step once
    for r1, r2 in zip(rows1, rows2):
        for key in ("loss", "grad_norm", "val_loss", "accuracy"):
            if key in r1:
                assert r2[key] == pytest.approx(r1[key], rel=1e-3, abs=1e-5), (r1["step"], key)
    # the same weights, up to float noise (Adam can turn the rounding of a near-zero gradient into
    # a full step of one element, so the mean difference is compared, far below one lr step)
    m1, m2 = common.load_checkpoint(str(one))["model"], common.load_checkpoint(str(two))["model"]
    diff = sum((m1[k] - m2[k]).abs().sum().item() for k in m1) / sum(v.numel() for v in m1.values())
    assert diff < 1e-5, diff
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))


def test_ppo_on_two_processes(micro, tmp_path):
    """PPO's rollouts split over 2 processes (each samples its own, so the run is not the
    1-process one): it runs, logs every iteration once with finite global statistics, and rank 0
    alone writes the policy, the value model and the summary."""
    out, _ = micro
    args = stage_args("ppo", out) + ["--iterations=2", "--rollout_batch=8", "--minibatch_size=4", f"--out_dir={tmp_path}"]
    rank0, rank1 = run_2proc(args)
    assert rank1 == "" and rank0.strip()
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in rows] == [0, 1]
    for r in rows:
        for key in ("rm_score", "kl", "policy_loss", "value_loss", "ptx_loss", "entropy", "response_len", "gold"):
            assert r[key] == r[key] and abs(r[key]) < 1e6, key
        assert 0 <= r["no_eot_frac"] <= 1 and 0 <= r["clip_frac"] <= 1
    assert common.load_checkpoint(str(tmp_path))["finished"] is True
    assert (tmp_path / "value" / "ckpt.pt").exists() and (tmp_path / "summary.json").exists()
