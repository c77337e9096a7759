"""How much does the labelers' noise cost the reward model? The run's comparisons (the same SFT
samples) ranked again by fresh labelers of another noise level (world.LABELER_SIGMA replaced by
each sigma), the labelers' agreement and accuracy against gold measured on them, and a reward
model trained from the run's SFT model on each. The RM's accuracy against gold is read on the same
validation samples whatever the sigma, so the rows compare like with like; sigma near 0 is the
gold ranking itself (ties broken at random), the bound that label noise leaves.

    python experiments/rm_label_noise.py --out=out --sigmas=0.001,0.113   # ~8 min per sigma on 2 cores (float32)
"""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studylib  # noqa: E402  (it puts the repository root on sys.path)
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.data import read_jsonl, write_jsonl  # noqa: E402
from nanoinstruct.world import labelers  # noqa: E402

cfg = common.get_config(dict(out="out", sigmas="0.001,0.113", n_labelers=10, study_dir="", seed=7, extra=""))
out = os.path.abspath(cfg["out"])   # train_rm.py runs from the repository root (studylib.run)
study = os.path.abspath(cfg["study_dir"] or os.path.join(out, "studies", "rm_label_noise"))
W = os.path.join(out, "world")
splits = {s: read_jsonl(os.path.join(W, f"comparisons_{s}.jsonl"), "comparisons") for s in ("train", "val")}
every = splits["train"] + splits["val"]
results = []
for sigma in (float(s) for s in str(cfg["sigmas"]).split(",")):
    labelers.LABELER_SIGMA = sigma   # labeler_scores reads the module's value at each call
    rng = random.Random(f"{cfg['seed']}:{sigma}")
    d = os.path.join(study, f"sigma{sigma:g}")
    os.makedirs(d, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl(os.path.join(d, f"comparisons_{split}.jsonl"),
                    [{**r, "ranking": world.rank(r["prompt"], r["responses"], rng.randrange(cfg["n_labelers"]), r["ended"])}
                     for r in rows])
    agreement = world.labeler_agreement([(r["prompt"], r["responses"]) for r in every], ended=[r["ended"] for r in every])
    summary = studylib.train_rm(out, os.path.join(d, "rm"), os.path.join(d, "comparisons_train.jsonl"),
                                os.path.join(d, "comparisons_val.jsonl"), os.path.join(d, "rm.log"), cfg["extra"].split())
    row = dict(sigma=sigma, labeler_agreement=agreement, labeler_gold_accuracy=summary.get("labeler_gold_accuracy"),
               rm_val_accuracy=summary["val_accuracy"], rm_gold_accuracy=summary["gold_accuracy"])
    results.append(row)
    print(f"sigma {sigma:<6g} labelers agree {agreement:.3f}, against gold {row['labeler_gold_accuracy']:.3f} | "
          f"RM against labelers {row['rm_val_accuracy']:.3f}, against gold {row['rm_gold_accuracy']:.3f}", flush=True)
json.dump(results, open(os.path.join(study, "results.json"), "w"), indent=1)
