"""Where the reward model is wrong: its accuracy against the gold score on the validation
comparisons, split by family and by what the two responses of a pair differ in (the content's
correctness, the prompt's constraint, or only style: padding, hedging, length).

    python experiments/rm_errors.py --rm=out/rm --val_file=out/world/comparisons_val.jsonl
"""
import os
import sys
from collections import defaultdict

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.data import comparison_batch, drop_unended, read_jsonl  # noqa: E402
from nanoinstruct.model import last_token_scores  # noqa: E402

cfg = common.get_config(dict(rm="out/rm", val_file="data/world/comparisons_val.jsonl", device="cpu", batch_size=16))
model, ckpt = common.load_model(cfg["rm"], cfg["device"], scalar_head=True, verbose=False)
model.eval()
enc, _ = common.load_tokenizer("", ckpt)
rows, _, _ = drop_unended(read_jsonl(cfg["val_file"], "comparisons"))
hits = defaultdict(lambda: [0, 0])
with torch.no_grad():
    for i in range(0, len(rows), cfg["batch_size"]):
        chunk = rows[i:i + cfg["batch_size"]]
        x, last, idx, _, _ = comparison_batch(chunk, enc, model.config.block_size, cfg["device"])
        scores = last_token_scores(model, x, last).tolist()
        for c, ids in zip(chunk, idx.tolist()):
            fam = world.family_of(c["prompt"])
            order = [j for j in c["ranking"]]           # row k of ids holds response order[k]
            s = {order[k]: scores[r] for k, r in enumerate(ids) if r >= 0}
            parts = {j: (world.correctness(c["prompt"], t), world.constraint_ok(c["prompt"], t), world.style(c["prompt"], t))
                     for j, t in enumerate(c["responses"])}
            for a in range(len(c["responses"])):
                for b in range(a + 1, len(c["responses"])):
                    ga, gb = c["gold"][a], c["gold"][b]
                    if abs(ga - gb) < 1e-6:
                        continue
                    pa, pb = parts[a], parts[b]
                    kind = "correctness" if abs(pa[0] - pb[0]) > 1e-6 else "constraint" if pa[1] != pb[1] else "style only"
                    ok = (s[a] > s[b]) == (ga > gb)
                    for key in (("all",), ("family", fam), ("differs in", kind)):
                        hits[key][0] += ok
                        hits[key][1] += 1
n_all = hits[("all",)][1]
for key in sorted(hits, key=lambda k: (len(k), k)):
    a, n = hits[key]
    print(f"{' '.join(key):28s} gold accuracy {a / n:.3f}  ({n} pairs, {n / n_all:.0%})")
