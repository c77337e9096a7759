"""torchrun data parallelism on CPU (gloo), 2 processes (issue 21): the same global batch as one
process gives the same losses (within float tolerance: each process pads its own share) and the
same weights, for every training stage, PPO's rollouts included; evaluation shares out its
sampling batches; a stopped and resumed 2-process run is the uninterrupted one; rank 0 alone
writes. The processes are started as torchrun starts them (env://
rendezvous: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), without its agent."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from nanoinstruct import common

from conftest import ROOT   # and the `micro` pipeline fixture
from test_resume import metrics, run, same, stage_args   # run: in this process


def run_2proc(args):
    """args on 2 processes; (stdout of rank 0, stdout of rank 1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
                                   "PYTHONUNBUFFERED": "1"})   # a process that aborts still shows how far it got
             for r in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    if any(p.returncode for p in procs):   # both processes' ends: the one that failed first may be either
        raise AssertionError(f"{args} on 2 processes: exit codes {[p.returncode for p in procs]}\n" + "\n".join(
            f"--- rank {r} stdout:\n{out[-3000:]}\n--- rank {r} stderr:\n{err[-3000:]}" for r, (out, err) in enumerate(outs)))
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


def test_ppo_two_processes_equal_one(micro, tmp_path):
    """PPO's rollouts split over 2 processes, every random stream the same on both and each taking
    its rows of what it draws (the sampling noise of the global batch, generate's shard=, with the
    stop agreed by both; the minibatches' permutation of the global batch): the run one process
    makes, to float rounding (each process pads its own rows), and rank 0 alone writes. Minibatches
    of 2 of the 8 rollouts fall to one process only, at times: the other's zero-weighted stand-in."""
    out, _ = micro
    # small learning rates: Adam turns float noise in a near-zero gradient into a full step of one
    # element (above), whose effect on later statistics grows with the lr
    args = stage_args("ppo", out) + ["--iterations=2", "--rollout_batch=8", "--minibatch_size=2", "--ppo_epochs=2",
                                     "--lr=3e-6", "--value_lr=1e-6"]
    one, two = tmp_path / "one", tmp_path / "two"
    run(*args, f"--out_dir={one}")
    rank0, rank1 = run_2proc(args + [f"--out_dir={two}"])
    assert rank1 == "" and rank0.strip()
    rows1, rows2 = ([json.loads(line) for line in open(d / "metrics.jsonl")] for d in (one, two))
    assert [r["step"] for r in rows1] == [r["step"] for r in rows2] == [0, 1]
    for r1, r2 in zip(rows1, rows2):
        assert r1.keys() == r2.keys()
        for key in r1.keys() - {"step", "tok_per_s", "elapsed_s"}:
            assert r2[key] == pytest.approx(r1[key], rel=2e-3, abs=5e-4), (r1["step"], key)
    # the policy and the value model: the two runs differ by a small part of how far training moved them
    for name, start in (("", out / "sft"), ("value", out / "rm")):
        m0, m1, m2 = (common.load_checkpoint(str(d))["model"] for d in (start, one / name, two / name))
        moved, diff = (sum((m[k] - m1[k]).abs().sum().item() for k in m1) for m in (m0, m2))
        assert diff < 0.01 * moved, (name, diff / moved)
    assert common.load_checkpoint(str(two))["finished"] is True
    assert sorted(os.listdir(one)) == sorted(os.listdir(two))
    assert (two / "value" / "ckpt.pt").exists() and (two / "summary.json").exists()


def test_evaluation_shares_out_its_batches(micro, tmp_path):
    """evaluate.py on 2 processes: each samples every other batch (3 batches: rank 0 takes two)
    with its own stream, rank 0 gathers them in order and alone writes the report. The first batch
    is rank 0's first, drawn from the one-process stream, so its samples are the one-process
    run's; the report has every row and key the one-process report has."""
    out, _ = micro
    args = ["evaluate.py", "--config=configs/micro/evaluate.py", "--policies=sft,ppo", "--temperatures=0.7",
            "--best_of=2", "--max_prompts=5", "--samples_per_prompt=2", "--batch_size=4",
            f"--prompts_file={out / 'world' / 'prompts_eval.jsonl'}", f"--val_bin={out / 'world' / 'val.bin'}",
            f"--benchmark_file={out / 'world' / 'benchmark.jsonl'}"]
    one, two = tmp_path / "one", tmp_path / "two"
    for d in (one, two):   # the run's policies and RM, linked, so that each evaluation writes its own eval/
        d.mkdir()
        for name in ("sft", "ppo", "rm"):
            (d / name).symlink_to(out / name)
    run(*args, f"--out={one}")
    rank0, rank1 = run_2proc(args + [f"--out={two}"])
    assert rank1 == "" and "wrote" in rank0
    rep1, rep2 = (json.load(open(d / "eval" / "report.json")) for d in (one, two))

    def keys(a):
        return {k: keys(v) for k, v in a.items()} if isinstance(a, dict) else None
    assert keys(rep1) == keys(rep2)
    for kind in ("policies", "references"):
        for name, row in rep2[kind].items():
            assert 0 <= row["win_rate_ties_half"] <= 1 and row["rm_score"] == row["rm_score"], name
            # the benchmark's chunks and the LM-loss batches are shared out too: the same figures
            ref = rep1[kind][name]
            assert abs(row["pretrain_val_loss"] - ref["pretrain_val_loss"]) < 1e-3 * ref["pretrain_val_loss"], name
            assert abs(row["benchmark_accuracy"] - ref["benchmark_accuracy"]) <= 2 / 440, name
    s1, s2 = (json.load(open(d / "eval" / "samples.json")) for d in (one, two))
    assert s1["prompts"] == s2["prompts"] and len(s2["prompts"]) == 5
    for name in s1:   # sample-major: the first batch holds the first sample of prompts 0..3
        if name != "prompts":
            assert len(s2[name]) == 5 and all(len(x) == 2 for x in s2[name])
            assert [x[0] for x in s1[name][:4]] == [x[0] for x in s2[name][:4]], name
    assert any(s1[n] != s2[n] for n in s1)   # rank 1's batches come from its own stream
    assert sorted(os.listdir(one / "eval")) == sorted(os.listdir(two / "eval"))


def test_two_processes_stopped_and_resumed_equal_uninterrupted(micro, tmp_path):
    """SFT on 2 processes with dropout on, stopped after step 1 and resumed with --init_from=resume:
    the uninterrupted 2-process run, metrics step for step and the checkpoint bit for bit. Each
    process's dropout stream is its own (the shares of a batch differ in shape), so rank 0 writes
    every process's RNG state and each restores its own."""
    out, _ = micro
    args = stage_args("sft", out)
    a, b = tmp_path / "a", tmp_path / "b"
    run_2proc(args + [f"--out_dir={a}"])
    run_2proc(args + [f"--out_dir={b}", "--stop_step=1"])
    partial = common.load_checkpoint(str(b))
    assert partial["step"] == 1 and len(partial["rng"]["per_rank"]) == 2
    assert not torch.equal(*(r["torch"] for r in partial["rng"]["per_rank"]))   # the two streams differ
    rank0, _ = run_2proc([args[0], "--init_from=resume", f"--out_dir={b}"])
    assert "resuming" in rank0 and "not exactly" not in rank0
    assert len(metrics(a)) >= 3 and metrics(a) == metrics(b)
    ca, cb = common.load_checkpoint(str(a)), common.load_checkpoint(str(b))
    assert ca.keys() == cb.keys()
    for key in ca.keys() - {"config"}:
        assert same(ca[key], cb[key]), key
