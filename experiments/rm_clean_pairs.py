"""Can the reward model learn to read facts at all? Trains train_rm.py, from the run's SFT model,
on N clean pairs (a fact question or benign request of the training split, no constraint: the
reference answer above the same sentence with a wrong value, nothing else different) and reports
its accuracy on such pairs from the held-out split. High accuracy here, with the default RM near
chance on the same probe (experiments/rm_knowledge.py), says the labelers' comparisons, not the
model, are what keeps content unread: there the content differences come mixed with habits.

    python experiments/rm_clean_pairs.py --out=out [--n_train=6000]
"""
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studylib  # noqa: E402  (it puts the repository root on sys.path)
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.data import write_jsonl  # noqa: E402

cfg = common.get_config(dict(out="out", n_train=6000, n_val=400, batch_size=32, study_dir="", seed=1))
study = cfg["study_dir"] or os.path.join(cfg["out"], "rm_clean_pairs")
os.makedirs(study, exist_ok=True)


def clean_pairs(split, n, rng):
    rows = []
    while len(rows) < n:
        prompt = world.make_prompt(rng.choice(["fact", "benign"]), rng, split, constraint_rate=0)
        if world.parse(prompt).verb != "thank":   # thanking names no fact
            rows.append({"prompt": prompt, "ranking": [0, 1], "gold": [1.0, 0.0],
                         "responses": [world.reference_response(prompt), world.flawed_response(prompt, "wrong", rng)]})
    return rows


rng = random.Random(cfg["seed"])
train, val = os.path.join(study, "train.jsonl"), os.path.join(study, "val.jsonl")
write_jsonl(train, clean_pairs("train", cfg["n_train"], rng))
write_jsonl(val, clean_pairs("eval", cfg["n_val"], rng))
summary = studylib.train_rm(cfg["out"], os.path.join(study, "rm"), train, val, os.path.join(study, "rm.log"),
                           [f"--batch_size={cfg['batch_size']}", "--eval_interval=1000000"])
acc = summary["val_accuracy"]
print(f"RM from SFT on {cfg['n_train']} clean true/wrong pairs: {acc:.3f} on {cfg['n_val']} held-out ones")
