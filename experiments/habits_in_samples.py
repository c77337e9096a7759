"""How often each policy's evaluation samples show the demonstrators' habits, and how often they
follow the prompt's constraint: read from OUT/eval/samples.json (4 samples per held-out prompt).
Shows whether sampling SFT colder keeps its habits (it does when they are its mode) and what RL
removed.

    python experiments/habits_in_samples.py --out=out
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.world import gold  # noqa: E402

cfg = common.get_config(dict(out="out"))
samples = json.load(open(os.path.join(cfg["out"], "eval", "samples.json")))
prompts = samples["prompts"]
mark = " [no end-of-text]"
print("| policy | padding | hedging | refuses benign | follows constraint | I don't know (answerable) | right content |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name, per_prompt in samples.items():
    if name == "prompts":
        continue
    n = pad = hedge = refuse = benign = follow = constrained = idk = answerable = right = 0
    for p, texts in zip(prompts, per_prompt):
        t = world.parse(p)
        for text in texts:
            text = text.removesuffix(mark)
            n += 1
            pad += gold._has(text, gold.PADDING_MARKERS) > 0
            hedge += gold._has(text, gold.HEDGE_MARKERS) > 0
            right += world.correctness(p, text) == 1.0
            if t.family == "benign":
                benign += 1
                refuse += gold._has(text, gold.REFUSAL_MARKERS) > 0
            if t.constraint and t.family != "harmful":
                constrained += 1
                follow += world.constraint_ok(p, text) == 1.0
            if t.family in ("fact", "reverse", "sort", "count", "arithmetic", "benign"):
                answerable += 1
                idk += gold._has(text, gold.IDK_MARKERS) > 0
    print(f"| {name} | {pad / n:.2f} | {hedge / n:.2f} | {refuse / max(benign, 1):.2f} | {follow / max(constrained, 1):.2f} | "
          f"{idk / max(answerable, 1):.2f} | {right / n:.2f} |")
