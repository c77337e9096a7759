"""Would more comparisons take the reward model to the issue's 0.85 against gold? Fresh prompts of
the run's training distribution (world.sample_prompts with FAMILY_WEIGHTS, another seed), the
run's SFT model's samples of them ranked by the same labelers (collect_comparisons.py with the
defaults run.sh uses; --collect_config for a preset's), added to the run's training comparisons;
a reward model trained from SFT on the union and read on the run's own validation comparisons,
beside the run's RM (OUT/rm/summary.json).

    python experiments/rm_data_scale.py --out=out --extra_prompts=8000   # ~11 min on 2 cores (bf16)

--extra passes settings to train_rm.py (e.g. --extra=--epochs=2); --nproc sets the collecting
processes (as run.sh's NPROC: one one-thread process per core)."""
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studylib  # noqa: E402  (it puts the repository root on sys.path)
from nanoinstruct import common, world  # noqa: E402
from nanoinstruct.data import read_jsonl, write_jsonl  # noqa: E402

cfg = common.get_config(dict(out="out", extra_prompts=8000, seed=2024, nproc=len(os.sched_getaffinity(0)),
                             collect_config="", study_dir="", extra=""))
out = os.path.abspath(cfg["out"])   # the scripts run from the repository root (studylib.run)
study = os.path.abspath(cfg["study_dir"] or os.path.join(out, "studies", f"rm_data_scale{cfg['extra_prompts']}"))
W = os.path.join(out, "world")
os.makedirs(study, exist_ok=True)

# 1. fresh prompts, ranked comparisons of the run's SFT samples (all of them training comparisons)
prompts = world.sample_prompts(cfg["extra_prompts"], random.Random(f"rm_data_scale:{cfg['seed']}"),
                               weights=world.FAMILY_WEIGHTS)
write_jsonl(os.path.join(study, "prompts.jsonl"), [{"prompt": p} for p in prompts])
collect = [f"--policy={os.path.join(out, 'sft')}", f"--prompts_file={os.path.join(study, 'prompts.jsonl')}",
           f"--out_dir={study}", "--val_frac=0", f"--seed={cfg['seed']}"]
collect = ([f"--config={cfg['collect_config']}"] if cfg["collect_config"] else []) + collect
script = os.path.join("data", "world", "collect_comparisons.py")
if cfg["nproc"] > 1:   # as run.sh: one one-thread process per core
    studylib.run("-m", ["torch.distributed.run", "--standalone", f"--nproc_per_node={cfg['nproc']}", script, *collect],
                 os.path.join(study, "collect.log"), env={"OMP_NUM_THREADS": "1"})
else:
    studylib.run(script, collect, os.path.join(study, "collect.log"))
base = read_jsonl(os.path.join(W, "comparisons_train.jsonl"), "comparisons")
added = read_jsonl(os.path.join(study, "comparisons_train.jsonl"), "comparisons")
write_jsonl(os.path.join(study, "union_train.jsonl"), base + added)

# 2. a reward model on the union, read on the run's validation comparisons
studylib.train_rm(out, os.path.join(study, "rm"), os.path.join(study, "union_train.jsonl"),
                  os.path.join(W, "comparisons_val.jsonl"), os.path.join(study, "rm.log"), cfg["extra"].split())
meta = json.load(open(os.path.join(study, "comparisons_meta.json")))
rows = []
for name, rm, n in (("run", os.path.join(out, "rm"), len(base)), ("union", os.path.join(study, "rm"), len(base) + len(added))):
    s = json.load(open(os.path.join(rm, "summary.json")))
    rows.append(dict(rm=name, train_prompts=n, rm_val_accuracy=s["val_accuracy"], rm_gold_accuracy=s["gold_accuracy"]))
    print(f"{name:5s} {n:6d} training prompts | RM against labelers {s['val_accuracy']:.3f}, "
          f"against gold {s['gold_accuracy']:.3f}", flush=True)
print(f"the added comparisons' labelers agree {meta['labeler_agreement']:.3f} (K mean {meta['k_mean']:.1f})")
json.dump(dict(rows=rows, added_labeler_agreement=meta["labeler_agreement"]),
          open(os.path.join(study, "results.json"), "w"), indent=1)
