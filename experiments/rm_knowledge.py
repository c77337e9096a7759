"""Does the reward model read what its language model knows? For fact questions and benign
requests (held-out prompts and training ones, no constraint), the reference answer against the
same sentence with a wrong value ("The Bellor is green." / "The Bellor is red."): how often the
reward model scores the true one higher, and how often the SFT model's likelihood does.

    python experiments/rm_knowledge.py --out=out

A gap between the two is knowledge the reward model cannot read at the response's end: it then
judges content pairs no better than chance (README, "What limits it"). Last, how many of the
run's training comparisons teach it: fact and benign pairs whose correctness differs by more
than 0.5, and how many of those have the same constraint and style (content alone differs).
"""
import json
import os
import random
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.data import encode_example, pad_right  # noqa: E402
from nanoinstruct.model import last_token_scores  # noqa: E402

cfg = common.get_config(dict(out="out", n_pairs=300, device="cpu", seed=0))
rm, ckpt = common.load_model(os.path.join(cfg["out"], "rm"), cfg["device"], scalar_head=True, verbose=False)
sft, _ = common.load_model(os.path.join(cfg["out"], "sft"), cfg["device"], verbose=False)
rm.eval(), sft.eval()
enc, _ = common.load_tokenizer("", ckpt)
block = rm.config.block_size


def true_and_wrong(family, split, rng):
    """Up to n_pairs distinct prompts of the family -> [(prompt, true answer, wrong answer)]."""
    pairs, seen = [], set()
    for _ in range(20 * cfg["n_pairs"]):
        prompt = world.make_prompt(family, rng, split, constraint_rate=0)
        if prompt in seen or world.parse(prompt).verb == "thank":   # thanking names no fact
            continue
        seen.add(prompt)
        pairs.append((prompt, world.reference_response(prompt), world.flawed_response(prompt, "wrong", rng)))
        if len(pairs) == cfg["n_pairs"]:
            break
    return pairs


@torch.no_grad()
def rm_and_lm_accuracy(pairs):
    seqs, spans = [], []
    for prompt, *responses in pairs:
        for response in responses:
            ids, n_prompt, _ = encode_example(enc, prompt, response, block)
            seqs.append(ids), spans.append((n_prompt, len(ids)))
    x, lengths = pad_right(seqs, enc.eot_token)
    x = x.to(cfg["device"])
    r = last_token_scores(rm, x, (lengths - 1).to(cfg["device"])).tolist()
    logp = torch.log_softmax(sft.lm_logits(sft(x[:, :-1])).float(), -1).gather(-1, x[:, 1:, None]).squeeze(-1)
    ll = [logp[i, lo - 1:hi - 1].sum().item() for i, (lo, hi) in enumerate(spans)]   # log p(response | prompt)
    n = len(pairs)
    return sum(r[2 * i] > r[2 * i + 1] for i in range(n)) / n, sum(ll[2 * i] > ll[2 * i + 1] for i in range(n)) / n


print("| prompts | pairs | RM scores the true answer higher | SFT's likelihood does |")
print("| --- | --- | --- | --- |")
for family in ("fact", "benign"):
    for split in ("train", "eval"):
        pairs = true_and_wrong(family, split, random.Random(cfg["seed"]))
        rm_acc, lm_acc = rm_and_lm_accuracy(pairs)
        print(f"| {family}, {split} split | {len(pairs)} | {rm_acc:.3f} | {lm_acc:.3f} |")

n_content = n_alone = 0
for line in open(os.path.join(cfg["out"], "world", "comparisons_train.jsonl")):
    c = json.loads(line)
    if world.family_of(c["prompt"]) not in ("fact", "benign"):
        continue
    parts = [(world.correctness(c["prompt"], r), world.constraint_ok(c["prompt"], r), world.style(c["prompt"], r))
             for r in c["responses"]]
    for a in range(len(parts)):
        for b in range(a + 1, len(parts)):
            if abs(parts[a][0] - parts[b][0]) > 0.5:
                n_content += 1
                n_alone += parts[a][1:] == parts[b][1:]
print(f"training comparisons: {n_content} fact/benign pairs differ in correctness by > 0.5; "
      f"in {n_alone} of them nothing else differs")
