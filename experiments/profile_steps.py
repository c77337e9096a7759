"""Where a decode step and a training step spend their time on this CPU, at bench.py's shape
(4 layers, 256 wide, vocab 8192; generate: 16 prompts of 64 + 64 new tokens; train: 8 x 256), and
what the same matrix products cost alone: the README's Speed section reads its figures here.

    python experiments/profile_steps.py                  # ~30 s on 2 cores
    python experiments/profile_steps.py --keep_freed=0   # glibc's default malloc: see aten::fill_
"""
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common  # noqa: E402
from nanoinstruct.model import GPT, GPTConfig, generate  # noqa: E402
from nanoinstruct.rlhf import ptx_loss  # noqa: E402

defaults = dict(
    threads=2,
    reps=7,            # timed repetitions per figure (the median is printed)
    rows=12,           # profiler table rows
    keep_freed=1,      # 1: common.keep_freed_memory() as common.setup does on CPU; 0: glibc's default
)
cfg = common.get_config(defaults)
if cfg["keep_freed"]:
    common.keep_freed_memory()
torch.set_num_threads(cfg["threads"])
V, C = 8192, 256
torch.manual_seed(0)
model = GPT(GPTConfig(block_size=256, vocab_size=V + 1, n_layer=4, n_head=4, n_embd=C, dropout=0.0))
prompts = torch.randint(1, V, (16, 64)).tolist()
x = torch.randint(1, V, (8, 256))
opt = common.make_optimizer(model, 1e-4, 0.1)
g = torch.Generator().manual_seed(0)


def decode():
    generate(model.eval(), prompts, 64, eot_id=V, generator=g)


def train():
    loss = ptx_loss(model.train().lm_logits(model(x)[:, :-1]), x[:, 1:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def median_s(fn):
    fn()
    times = []
    for _ in range(cfg["reps"]):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


for name, fn, per in (("generate (64 decode steps)", decode, 64), ("training step", train, 1)):
    t = median_s(fn)
    print(f"\n== {name}: {t:.3f} s median, {t / per * 1e3:.2f} ms per {'step' if per > 1 else 'call'}")
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=cfg["rows"],
                                                             max_name_column_width=34, max_shapes_column_width=48))

print("\n== the same products alone (weights hot in cache)")
for what, (m, k, n) in (("decode lm_head", (16, C, V + 1)), ("decode c_fc", (16, C, 4 * C)),
                        ("train lm_head", (2048, C, V)), ("train c_fc", (2048, C, 4 * C)), ("sgemm 2048^3", (2048, 2048, 2048))):
    a, b = torch.randn(m, k), torch.randn(k, n)
    t = median_s(lambda: a @ b)
    print(f"{what:16s} ({m} x {k}) @ ({k} x {n}): {t * 1e3:7.3f} ms, {2 * m * k * n / t / 1e9:6.1f} GFLOP/s")
q = torch.empty(16, V + 1)
print(f"Exp(1) noise for one decode step, exponential_: {median_s(lambda: q.exponential_(1, generator=g)) * 1e3:.2f} ms")
