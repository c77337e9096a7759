"""Build the default world's files: tokenizer, pretraining tokens, demonstrations, prompts.

    python data/world/prepare.py                  # ~10 s on 2 CPU cores, offline
    python data/world/prepare.py --seed=2 --out_dir=data/world2

Everything is deterministic from --seed (the world's entities and facts are fixed; the seed picks
the corpus, the prompts and the demonstrations). Writes into --out_dir:
  tokenizer.tiktoken      BPE ranks trained on the corpus (+ the chat-rendered demonstrations)
  train.bin, val.bin      uint16 tokens of the pretraining corpus, documents separated by EOT
  demos_train.jsonl, demos_val.jsonl     {"prompt", "response"}: stage 1 (SFT)
  prompts_rm.jsonl        {"prompt"}: prompts whose sampled responses labelers rank (stage 2)
  prompts_ppo.jsonl       {"prompt"}: stage 3 (PPO)
  prompts_eval.jsonl      {"prompt"}: held out, in no training file; families interleaved
  benchmark.jsonl         {"context", "choices", "answer"}: the alignment-tax benchmark (cloze)
  meta.json               counts, demonstrators' flaw and habit rates and mean gold, labeler agreement
"""
import json
import os
import random
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from nanoinstruct import world  # noqa: E402
from nanoinstruct.common import get_config  # noqa: E402
from nanoinstruct.data import write_jsonl  # noqa: E402
from nanoinstruct.tokenizer import encode_prompt, encode_response, get_encoding, render_prompt, save_ranks, train_bpe  # noqa: E402

# ----------------------------------------------------------------------------- config
defaults = dict(
    seed=1337,               # picks the corpus, prompts and demonstrations (the world's facts are fixed)
    out_dir="data/world",    # where the files go
    n_pretrain_docs=12000,   # ~1.2M train tokens
    n_val_docs=500,          # ~50k val tokens
    n_demos_train=4000,      # SFT demonstrations
    n_demos_val=300,         # held-out demonstrations
    n_prompts_rm=8000,       # 4000 -> 8000: RM 0.684 / 0.767 -> 0.708 / 0.817 against labelers / gold (README)
    n_prompts_ppo=2000,      # PPO prompts
    n_eval_per_family=50,    # held-out evaluation prompts per task family
    flaw_rate=0.1,           # demonstrators' random flaws: noise around the right answer
    habit_strength=1.0,      # demonstrators' systematic habits (world.HABITS): 0 = none, 1 = the documented default
    vocab_size=4096,         # an upper bound: the world's words run out of merges near 1000
    bpe_chars=1_500_000,     # BPE trains on this much corpus text (enough: the word set is small)
)
cfg = get_config(defaults)
t0 = time.time()
seed, out = cfg["seed"], cfg["out_dir"]
os.makedirs(out, exist_ok=True)
stream = lambda name: random.Random(f"{name}:{seed}")   # independent RNG streams, one per output

# ----------------------------------------------------------------------------- content
rng = stream("corpus")
docs = [world.pretraining_document(rng) for _ in range(cfg["n_pretrain_docs"] + cfg["n_val_docs"])]
rng = stream("demos")
demos = [(p, *world.demonstrate(p, rng, cfg["flaw_rate"], cfg["habit_strength"], return_flaw=True))
         for p in world.sample_prompts(cfg["n_demos_train"] + cfg["n_demos_val"], rng, weights=world.FAMILY_WEIGHTS)]
prompts_rm = world.sample_prompts(cfg["n_prompts_rm"], stream("rm"), weights=world.FAMILY_WEIGHTS)
prompts_ppo = world.sample_prompts(cfg["n_prompts_ppo"], stream("ppo"), weights=world.FAMILY_WEIGHTS)
rng, eval_by_family = stream("eval"), []
for fam in world.FAMILIES:   # distinct prompts per family (the held-out side of every family has enough)
    seen = {}
    for _ in range(100 * cfg["n_eval_per_family"]):
        seen.setdefault(world.make_prompt(fam, rng, "eval"), None)
        if len(seen) == cfg["n_eval_per_family"]:
            break
    eval_by_family.append(list(seen))
prompts_eval = [p for group in zip(*eval_by_family) for p in group]   # interleaved: any prefix is balanced
train_prompts = {d[0] for d in demos} | set(prompts_rm) | set(prompts_ppo)
assert not train_prompts & set(prompts_eval), "evaluation prompts leaked into training files"

# ----------------------------------------------------------------------------- tokenizer
bpe_text, n = [], 0
for d in docs:
    if n >= cfg["bpe_chars"]:
        break
    bpe_text.append(d)
    n += len(d)
bpe_text += [render_prompt(p) + " " + r for p, r, _, _ in demos]
save_ranks(train_bpe("\n".join(bpe_text), cfg["vocab_size"]), os.path.join(out, "tokenizer.tiktoken"))
enc = get_encoding(os.path.join(out, "tokenizer.tiktoken"))

# ----------------------------------------------------------------------------- save
written = []


def wrote(name, count):
    written.append((name, count, os.path.getsize(os.path.join(out, name))))


wrote("tokenizer.tiktoken", enc.n_vocab)
n_tokens = {}
for split, split_docs in (("train", docs[:cfg["n_pretrain_docs"]]), ("val", docs[cfg["n_pretrain_docs"]:])):
    ids = [t for doc in enc.encode_ordinary_batch(split_docs) for t in doc + [enc.eot_token]]
    np.array(ids, dtype=np.uint16).tofile(os.path.join(out, f"{split}.bin"))
    n_tokens[split] = len(ids)
    wrote(f"{split}.bin", len(ids))
for name, rows in (("demos_train", [{"prompt": p, "response": r} for p, r, _, _ in demos[:cfg["n_demos_train"]]]),
                   ("demos_val", [{"prompt": p, "response": r} for p, r, _, _ in demos[cfg["n_demos_train"]:]]),
                   ("prompts_rm", [{"prompt": p} for p in prompts_rm]),
                   ("prompts_ppo", [{"prompt": p} for p in prompts_ppo]),
                   ("prompts_eval", [{"prompt": p} for p in prompts_eval]),
                   ("benchmark", [{k: it[k] for k in ("context", "choices", "answer")} for it in world.benchmark_items()])):
    write_jsonl(os.path.join(out, name + ".jsonl"), rows)
    wrote(name + ".jsonl", len(rows))

flaws = [f for _, _, f, _ in demos]
response_tokens = [len(encode_response(enc, r)) for _, r, _, _ in demos]
habits = {h: sum(h in hs for _, _, _, hs in demos) / len(demos) for h in world.HABITS}
meta = {
    "seed": seed, "vocab_size": enc.n_vocab, "eot_token": enc.eot_token,
    "train_tokens": n_tokens["train"], "val_tokens": n_tokens["val"],
    "counts": {name: count for name, count, _ in written},
    "demo_flaw_rate": sum(f is not None for f in flaws) / len(flaws),
    "demo_flaws": {k: flaws.count(k) for k in sorted({f for f in flaws if f})},
    "demo_habits": habits, "habit_strength": cfg["habit_strength"],
    "demo_clean_rate": sum(r == world.reference_response(p) for p, r, _, _ in demos) / len(demos),
    "demo_mean_gold": sum(world.gold_score(p, r) for p, r, _, _ in demos) / len(demos),
    "max_prompt_tokens": max(len(encode_prompt(enc, p)) for p in train_prompts | set(prompts_eval)),
    "max_response_tokens": max(response_tokens),
    "labeler_sigma": world.LABELER_SIGMA,
    "labeler_agreement": world.labeler_agreement(world.calibration_set()),
    "families": {f: world.AIMS[f] for f in world.FAMILIES},
}
with open(os.path.join(out, "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
    f.write("\n")
wrote("meta.json", 1)

for name, count, size in written:
    unit = "tokens" if name.endswith(".bin") else "vocab" if name.endswith(".tiktoken") else "rows"
    print(f"{os.path.join(out, name):<36} {count:>9,} {unit:<6} {size / 1e6:8.2f} MB")
print(f"demonstrations: flaw rate {meta['demo_flaw_rate']:.3f}, habits (share of all) "
      + ", ".join(f"{h} {v:.2f}" for h, v in habits.items())
      + f"; best response {meta['demo_clean_rate']:.3f}, mean gold {meta['demo_mean_gold']:.3f}; "
      f"labeler agreement {meta['labeler_agreement']:.3f} (sigma {world.LABELER_SIGMA}); {time.time() - t0:.1f} s")
