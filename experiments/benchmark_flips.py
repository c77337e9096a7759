"""Where the alignment tax is, item by item: each policy's benchmark choices (scored as
evaluate.py scores them, fp32), then for SFT -> PPO, SFT -> PPO-ptx and PPO -> PPO-ptx the items
lost and gained and the mean margin (the true ending's log-likelihood minus the best wrong
one's), which moves even where no choice flips.

    python experiments/benchmark_flips.py --out=out
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common  # noqa: E402
from nanoinstruct.data import pad_right  # noqa: E402

cfg = common.get_config(dict(out="out", benchmark_file="", policies="base,sft,ppo,ppo_ptx", device="cpu"))
path = cfg["benchmark_file"] or os.path.join(cfg["out"], "world", "benchmark.jsonl")
items = [json.loads(line) for line in open(path)]


@torch.no_grad()
def choices_and_margins(model, enc):
    """-> per item: (the choice is right, true ending's log-likelihood minus the best other's)."""
    seqs, spans = [], []
    for item in items:
        ctx = [enc.eot_token] + enc.encode_ordinary(item["context"])
        for choice in item["choices"]:
            ids = ctx + enc.encode_ordinary(choice)
            seqs.append(ids), spans.append((len(ctx), len(ids)))
    scores = []
    for b in range(0, len(seqs), 256):
        x, _ = pad_right(seqs[b:b + 256], enc.eot_token)
        logp = torch.log_softmax(model.lm_logits(model(x[:, :-1].to(cfg["device"]))).float(), -1)
        tok = logp.gather(-1, x[:, 1:, None].to(cfg["device"])).squeeze(-1)
        scores += [tok[j, lo - 1:hi - 1].sum().item() for j, (lo, hi) in enumerate(spans[b:b + 256])]
    out, k = [], 0
    for item in items:
        s = scores[k:k + len(item["choices"])]
        k += len(item["choices"])
        true = s[item["answer"]]
        out.append((max(range(len(s)), key=s.__getitem__) == item["answer"],
                    true - max(v for i, v in enumerate(s) if i != item["answer"])))
    return out


res = {}
for name in cfg["policies"].split(","):
    model, ckpt = common.load_model(os.path.join(cfg["out"], name), cfg["device"], verbose=False)
    model.eval()
    res[name] = choices_and_margins(model, common.load_tokenizer("", ckpt)[0])
    print(f"{name:8s} accuracy {sum(c for c, _ in res[name]) / len(items):.3f}  "
          f"mean margin {sum(m for _, m in res[name]) / len(items):+.3f}  ({len(items)} items)")
for a, b in (("sft", "ppo"), ("sft", "ppo_ptx"), ("ppo", "ppo_ptx")):
    if a in res and b in res:
        lost = sum(x and not y for (x, _), (y, _) in zip(res[a], res[b]))
        gained = sum(y and not x for (x, _), (y, _) in zip(res[a], res[b]))
        print(f"{a} -> {b}: lost {lost}, gained {gained} (net {gained - lost:+d} items)")
