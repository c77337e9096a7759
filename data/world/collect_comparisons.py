"""Comparison collection in the default world: a policy writes K responses per prompt and a
simulated labeler ranks them (paper section 3.4: labelers rank K = 4..9 outputs of the models).

    python data/world/collect_comparisons.py --policy=out/sft

Samples K responses per prompt of prompts_rm.jsonl from a checkpoint (batched, KV cache), drops
exact duplicates (a ranking between identical texts carries no preference; the count is
printed), has one labeler of a pool rank each prompt's responses, and writes K-wise comparison
files in the DESIGN.md format, with each response's gold score and whether it emitted
end-of-text as extra "gold" and "ended" fields (the reward model leaves out responses that never
ended; PPO and evaluation give them a fixed penalty):
    comparisons_train.jsonl, comparisons_val.jsonl, comparisons_meta.json
It prints the labeler agreement measured on these very samples (a second, independent labeler
ranks every prompt again) and the samples' mean gold score.
"""
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))   # repo root
from nanoinstruct import common, ddp, world
from nanoinstruct.data import read_jsonl, write_jsonl
from nanoinstruct.model import generate
from nanoinstruct.tokenizer import decode_response, encode_prompt

defaults = dict(
    policy="out/sft",         # the checkpoint whose samples the labelers rank (paper: SFT and later policies)
    prompts_file="data/world/prompts_rm.jsonl",
    out_dir="data/world",     # where comparisons_{train,val}.jsonl and comparisons_meta.json go
    n_prompts=0,              # 0 = all prompts of the file
    k_min=4, k_max=9,         # K responses per prompt, drawn uniformly from this range (paper: 4 to 9)
    val_frac=0.1,             # share of the prompts held out as comparisons_val.jsonl
    n_labelers=10,            # simulated labelers in the pool; one ranks each prompt
    temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=48,
    batch_size=128,           # sequences sampled at once
    device="auto", dtype="auto", seed=1337,
)
cfg = common.get_config(defaults)
device, ctx, _ = common.setup(cfg)
rank, world_size = ddp.init_distributed(device)   # torchrun: the batches are shared out; (0, 1) without
rng = random.Random(cfg["seed"])
gen = torch.Generator(device).manual_seed(cfg["seed"] + rank)

model, ckpt = common.load_model(cfg["policy"], device)
enc, _ = common.load_tokenizer("", ckpt)   # the one the policy's checkpoint carries
block = model.config.block_size
prompts = [r["prompt"] for r in read_jsonl(cfg["prompts_file"], "prompts")]
prompts = prompts[:cfg["n_prompts"]] if cfg["n_prompts"] else prompts

# 1. sample K responses per prompt: the K copies of a prompt sit in the same batches
jobs = [(i, p) for i, p in enumerate(prompts) for _ in range(rng.randint(cfg["k_min"], cfg["k_max"]))]
samples = [[] for _ in prompts]   # per prompt: [(text, ended)]
t0 = time.time()
for b in common.progress(range(rank * cfg["batch_size"], len(jobs), world_size * cfg["batch_size"]),
                         "sampling: batch", every_s=10):   # torchrun: every world_size-th batch
    chunk = jobs[b:b + cfg["batch_size"]]
    ids = [encode_prompt(enc, p)[-(block - cfg["max_new_tokens"]):] for _, p in chunk]
    with ctx:
        tokens, prompt_mask, _, _ = generate(model, ids, cfg["max_new_tokens"], enc.eot_token, cfg["temperature"],
                                             cfg["top_k"] or None, cfg["top_p"], generator=gen)
    for (i, _), t in zip(chunk, tokens[:, prompt_mask.size(1):].tolist()):
        samples[i].append(decode_response(enc, t))
if world_size > 1:   # torchrun: rank 0 gathers every process's samples, then ranks and writes alone
    parts = [None] * world_size
    torch.distributed.all_gather_object(parts, samples)
    samples = [[s for part in parts for s in part[i]] for i in range(len(prompts))]
    if rank != 0:
        raise SystemExit(0)

# 2. labelers rank each prompt's distinct responses
groups, dropped_dupes, dropped_prompts = [], 0, 0
for p, s in zip(prompts, samples):
    distinct = list(dict.fromkeys(s))            # first occurrence of each (text, ended)
    dropped_dupes += len(s) - len(distinct)
    if len(distinct) < 2:
        dropped_prompts += 1
        continue
    groups.append((p, [t for t, _ in distinct], [e for _, e in distinct]))
rows = []
for p, texts, ended in groups:
    labeler = rng.randrange(cfg["n_labelers"])   # each prompt goes to one labeler of the pool
    rows.append({"prompt": p, "responses": texts, "ranking": world.rank(p, texts, labeler, ended),
                 "gold": [round(world.gold_score(p, t, e), 6) for t, e in zip(texts, ended)], "ended": ended})
# agreement: the pool's labeler 0 vs labeler 1 on every prompt, the paper's 72.6 +- 1.5% statistic
agreement = world.labeler_agreement([(p, t) for p, t, _ in groups], labelers=(0, 1), ended=[e for _, _, e in groups])

# 3. write train / val files split by prompt
n_val = int(len(rows) * cfg["val_frac"])
write_jsonl(os.path.join(cfg["out_dir"], "comparisons_train.jsonl"), rows[n_val:])
write_jsonl(os.path.join(cfg["out_dir"], "comparisons_val.jsonl"), rows[:n_val])
golds = [g for r in rows for g in r["gold"]]
ks = [len(r["responses"]) for r in rows]
meta = {"policy": cfg["policy"], "prompts": len(rows), "train_prompts": len(rows) - n_val, "val_prompts": n_val,
        "responses": sum(ks), "comparisons": sum(k * (k - 1) // 2 for k in ks), "k_mean": sum(ks) / len(ks),
        "duplicates_dropped": dropped_dupes, "prompts_dropped": dropped_prompts,
        "labeler_agreement": agreement, "mean_gold": sum(golds) / len(golds),
        "no_eot_frac": sum(not e for _, _, es in groups for e in es) / sum(ks)}
json.dump(meta, open(os.path.join(cfg["out_dir"], "comparisons_meta.json"), "w"), indent=2)
print(f"wrote {len(rows) - n_val} train / {n_val} val prompts, {meta['comparisons']} comparisons "
      f"(K mean {meta['k_mean']:.1f}; {dropped_dupes} duplicate responses and {dropped_prompts} prompts "
      f"with < 2 distinct responses dropped) to {cfg['out_dir']}")
print(f"labeler agreement {agreement:.3f} (paper: 0.726 +- 0.015) | mean gold score of the samples "
      f"{meta['mean_gold']:.3f} | {time.time() - t0:.0f}s")
