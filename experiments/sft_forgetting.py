"""Why SFT forgets the pretraining corpus: the LM loss on the corpus' val split, split by where it
is paid (right after a sentence's end, elsewhere), for the base model and SFT checkpoints, and
how often each model predicts end-of-text after a full stop.

    python experiments/sft_forgetting.py --runs=out/base,out/sft --val_bin=out/world/val.bin

Each SFT response ends "... <final punctuation><|endoftext|>", so SFT learns that a sentence's end
is the end of everything; corpus documents go on after it. (README, "SFT keeps the base's knowledge".)
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common  # noqa: E402
from nanoinstruct.data import lm_batch, open_tokens  # noqa: E402

cfg = common.get_config(dict(runs="out/base,out/sft", val_bin="data/world/val.bin", batches=20, batch_size=16,
                             block_size=128, device="cpu"))
tokens = open_tokens(cfg["val_bin"])
for run in cfg["runs"].split(","):
    model, ckpt = common.load_model(run, cfg["device"], verbose=False)
    model.eval()
    enc, _ = common.load_tokenizer("", ckpt)
    ends = {i for i in range(enc.n_vocab - 1) if enc.decode([i]).rstrip().endswith((".", "!", "?"))}
    g = torch.Generator().manual_seed(0)
    tot = {"after_end": [0.0, 0], "elsewhere": [0.0, 0]}
    p_eot = [0.0, 0]
    with torch.no_grad():
        for _ in range(cfg["batches"]):
            x, y = lm_batch(tokens, cfg["batch_size"], cfg["block_size"], g)
            logp = torch.log_softmax(model.lm_logits(model(x)).float(), -1)
            nll = -logp.gather(-1, y[..., None]).squeeze(-1)                     # (B, T)
            after = torch.tensor([[t in ends for t in row] for row in x.tolist()])   # (B, T) x_t ends a sentence
            real = y != enc.eot_token
            for key, m in (("after_end", after & real), ("elsewhere", ~after & real)):
                tot[key][0] += nll[m].sum().item()
                tot[key][1] += m.sum().item()
            p_eot[0] += logp[..., enc.eot_token].exp()[after & real].sum().item()
            p_eot[1] += (after & real).sum().item()
    n = tot["after_end"][1] + tot["elsewhere"][1]
    parts = " | ".join(f"{k}: {v[0] / v[1]:.3f} nats x {v[1] / n:.0%} of tokens = {v[0] / n:.3f}" for k, v in tot.items())
    print(f"{run}: loss {(tot['after_end'][0] + tot['elsewhere'][0]) / n:.3f} | {parts} | "
          f"P(end-of-text) after a sentence's end (where the text goes on): {p_eot[0] / p_eot[1]:.3f}")
