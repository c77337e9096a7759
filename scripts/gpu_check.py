"""Helpers of scripts/gpu_check.sh: GPT-2-shaped stages on random local data, nothing downloaded.

  python scripts/gpu_check.py data DIR [--n_layer=12 ...]   # random GPT-2 124M checkpoint + data files
  python scripts/gpu_check.py stage NAME OUT_JSON SCRIPT [--key=value ...]
  python scripts/gpu_check.py summary OUT_JSON STAGE_JSON ...

`data` writes DIR/base (a checkpoint with random weights, GPT-2 124M's shape by default),
DIR/bytes.tiktoken (a byte-level tokenizer with the model's vocabulary: the 256 bytes, filler
tokens "<i>" that no text merges into, and end-of-text last, so N random letters are N tokens,
any sampled id decodes, and no BPE has to be trained or fetched), demonstrations, K = 2 comparisons and
prompts of about 300 + 200 tokens, and a random pretraining token file. `stage` runs one stage
script in this process (runpy, as `python SCRIPT ...` would) and writes its wall time, CUDA
peak memory and the median tokens/s of its metrics.jsonl to OUT_JSON. `summary` prints one
table and writes all stages into one JSON.
"""
import json
import os
import random
import runpy
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import numpy as np
import torch

from nanoinstruct import common
from nanoinstruct.data import write_jsonl
from nanoinstruct.tokenizer import save_ranks


def text(rng, n):
    """n random lower-case letters and spaces: n tokens of the byte-level tokenizer."""
    return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz     ") for _ in range(n)).strip() or "a"


def make_data(out, argv):
    cfg = common.get_config(dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, block_size=1024,
                                 n_demos=6400, n_comparisons=6400, n_prompts=3200, prompt_chars=300,
                                 response_chars=200, ptx_tokens=2_000_000, seed=0), argv)
    rng = random.Random(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    ranks = {bytes([i]): i for i in range(256)}
    ranks.update({f"<{i}>".encode(): 256 + i for i in range(cfg["vocab_size"] - 257)})   # EOT: vocab_size - 1
    save_ranks(ranks, os.path.join(out, "bytes.tiktoken"))
    arch = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "block_size")}
    model, _ = common.load_model("scratch", **arch)
    common.save_run(os.path.join(out, "base"), {"tokenizer": os.path.join(out, "bytes.tiktoken")}, model, 0)
    P, R = cfg["prompt_chars"], cfg["response_chars"]
    for split, n in (("train", cfg["n_demos"]), ("val", 64)):
        write_jsonl(os.path.join(out, f"demos_{split}.jsonl"),
                    [{"prompt": text(rng, P), "response": text(rng, R)} for _ in range(n)])
    for split, n in (("train", cfg["n_comparisons"]), ("val", 64)):
        write_jsonl(os.path.join(out, f"comparisons_{split}.jsonl"),
                    [{"prompt": text(rng, P), "responses": [text(rng, R), text(rng, R)], "ranking": [0, 1]}
                     for _ in range(n)])
    write_jsonl(os.path.join(out, "prompts.jsonl"), [{"prompt": text(rng, P)} for _ in range(cfg["n_prompts"])])
    np.random.default_rng(cfg["seed"]).integers(0, 256, cfg["ptx_tokens"], dtype=np.uint16).tofile(
        os.path.join(out, "ptx.bin"))
    print(f"{out}: random {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M-parameter checkpoint and data")


def run_stage(name, out_json, script, argv):
    out_dir = next((a.split("=", 1)[1] for a in argv if a.startswith("--out_dir=")), None)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    sys.argv = [script, *argv]
    t0 = time.time()
    runpy.run_path(script, run_name="__main__")
    rec = {"stage": name, "wall_s": round(time.time() - t0, 1)}
    if torch.cuda.is_available():
        rec["peak_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rec["device_name"] = torch.cuda.get_device_name()
    rows = [json.loads(line) for line in open(os.path.join(out_dir, "metrics.jsonl"))] if out_dir else []
    tps = [r["tok_per_s"] for r in rows[1:] if "tok_per_s" in r]   # the first line includes compiling
    if tps:
        rec.update(tok_per_s=round(statistics.median(tps)), steps=rows[-1]["step"] + 1)
    with open(out_json, "w") as f:
        json.dump(rec, f)
    print(f"== {name}: {json.dumps(rec)}")


def summary(out_json, stage_jsons):
    stages = [json.load(open(p)) for p in stage_jsons if os.path.exists(p)]
    print("| stage | steps | tokens/s (median of log lines) | peak memory (GB) | wall (s) |")
    print("| --- | --- | --- | --- | --- |")
    for s in stages:
        print(f"| {s['stage']} | {s.get('steps', '-')} | {s.get('tok_per_s', '-')} | {s.get('peak_mem_gb', '-')} | {s['wall_s']} |")
    old = json.load(open(out_json)) if os.path.exists(out_json) else {}
    with open(out_json, "w") as f:
        json.dump({**old, "stages": stages}, f, indent=2)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "data":
        make_data(args[0], args[1:])
    elif cmd == "stage":
        run_stage(args[0], args[1], args[2], args[3:])
    elif cmd == "summary":
        summary(args[0], args[1:])
    else:
        sys.exit(f"unknown command {cmd!r}: data, stage or summary")
