"""Study 2: when feedback pays. The whole default pipeline at several strengths of the
demonstrators' habits, and PPO-ptx's gold margin over the baselines with no RL.

The default world's demonstrators have systematic habits that the gold preference dislikes
(`data/world/prepare.py --habit_strength=F`; 0 leaves only random flaws, noise around the right
answer). Where flaws are only noise, SFT's likeliest answer is already the right one, and
sharpening SFT (sampling it colder, or reranking a few of its samples by the RM) may be all that
is needed; where the habits are SFT's mode, only feedback can remove them. For each strength in
`strengths`, same seeds otherwise: `bash run.sh` into RUNS/h<F>/ (skipped where it has finished;
`reuse` names finished runs to use instead), then, from its OUT/eval/ report and samples, the
gold margin of `policy` (ppo_ptx) over each of `references` (sft_best_T: SFT at its best
temperature by gold; sft_best_of_4: SFT's best of 4 by the RM): per prompt, the policy's mean
gold over its evaluation samples minus the reference's, averaged over prompts with a 95%
interval (rlhf.paired_difference), the samples re-scored by the world's gold score.
Writes RUNS/results.json, RUNS/habit_strength.png and the figure to `figure`.

  python experiments/habits.py                          # 3 whole pipelines (see README, "Studies")
  python experiments/habits.py --reuse=1:out            # the default strength's run is out/ already
  python experiments/habits.py --config=configs/micro/habits.py --reuse=default:OUT   # seconds
"""
import importlib
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studylib  # noqa: E402  (it puts the repository root on sys.path)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nanoinstruct import common, rlhf  # noqa: E402

# ----------------------------------------------------------------------------- config
defaults = dict(
    strengths="0,1,1.5",      # habit strengths; "default" = prepare.py's own (no flag passed)
    runs_dir="out/habits",    # each strength's pipeline in RUNS/h<F>/
    reuse="",                 # finished runs to use, "F:DIR,...", e.g. "1:out" (the default run.sh)
    preset="",                # a preset directory for every stage, as run.sh's PRESET (configs/micro)
    extra_args="",            # run.sh's EXTRA_ARGS, e.g. "--device=cuda"
    policy="ppo_ptx",
    references="sft_best_T,sft_best_of_4",
    world="nanoinstruct.world",   # its gold_score re-scores the saved evaluation samples
    figure="docs/habit_strength.png",
    dry_run=False,            # write the presets and print the commands, run nothing
)
cfg = common.get_config(defaults)
runs_dir = cfg["runs_dir"]
strengths = [None if s == "default" else float(s) for s in cfg["strengths"].split(",") if s]
tag = lambda s: "default" if s is None else f"{s:g}"      # noqa: E731
reuse = {}
for item in [r for r in cfg["reuse"].split(",") if r]:
    s, _, path = item.partition(":")
    reuse[tag(None if s == "default" else float(s))] = path
references = [r for r in cfg["references"].split(",") if r]
world = importlib.import_module(cfg["world"])
t_start = time.time()


def write_preset(path, strength):
    """A preset directory for run.sh: the base preset's stage files, and world.py with the
    habit strength (left out for "default", so a world without the knob still builds)."""
    os.makedirs(path, exist_ok=True)
    if cfg["preset"]:
        for f in os.listdir(cfg["preset"]):
            if f.endswith(".py"):
                shutil.copy(os.path.join(cfg["preset"], f), os.path.join(path, f))
    if strength is not None:
        with open(os.path.join(path, "world.py"), "a") as f:
            f.write(f"\nhabit_strength = {strength!r}   # experiments/habits.py\n")
    return path


# ----------------------------------------------------------------------------- pipelines
run_dirs, wall = {}, {}
for s in strengths:
    run_dir = run_dirs[tag(s)] = reuse.get(tag(s), os.path.join(runs_dir, f"h{tag(s)}"))
    if os.path.exists(os.path.join(run_dir, "eval", "report.json")):
        print(f"habit strength {tag(s)}: using the finished run in {run_dir}")
        continue
    preset = write_preset(os.path.join(runs_dir, "presets", f"h{tag(s)}"), s)
    env = {"PRESET": preset, "EXTRA_ARGS": cfg["extra_args"], "PYTHON": sys.executable}
    if cfg["dry_run"]:
        print(f"would run: PRESET={preset} EXTRA_ARGS='{cfg['extra_args']}' bash run.sh {run_dir}")
        continue
    wall[tag(s)] = studylib.run("run.sh", [run_dir], os.path.join(runs_dir, "logs", f"h{tag(s)}.log"), env)
if cfg["dry_run"]:
    sys.exit(0)

# ----------------------------------------------------------------------------- margins
MARK = " [no end-of-text]"   # evaluate.py's mark on a saved sample that never ended


def per_prompt_gold(samples, name):
    """The mean gold score of each prompt's saved samples of policy or reference `name`."""
    return [studylib.mean(world.gold_score(p, t.removesuffix(MARK), ended=not t.endswith(MARK)) for t in ts)
            for p, ts in zip(samples["prompts"], samples[name])]


results = {"policy": cfg["policy"], "references": references, "strengths": {}}
for s in strengths:
    run_dir = run_dirs[tag(s)]
    report = json.load(open(os.path.join(run_dir, "eval", "report.json")))
    samples = json.load(open(os.path.join(run_dir, "eval", "samples.json")))
    missing = [r for r in [cfg["policy"], *references] if r not in samples]
    if missing:
        common.die(f"{run_dir}/eval/samples.json has no {missing}; it has {sorted(k for k in samples if k != 'prompts')}")
    mine = per_prompt_gold(samples, cfg["policy"])
    rows = {**report["policies"], **report["references"]}
    p = rows[cfg["policy"]]
    meta_path = os.path.join(run_dir, "world", "meta.json")
    meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}
    entry = {"run": run_dir, "habit_strength": meta.get("habit_strength", s),
             "demo_habits": meta.get("demo_habits"), "policy_gold": p["gold_score"],
             "policy_vs_sft": p["gold_vs_sft"], "policy_vs_sft_ci95": p["gold_vs_sft_ci95"],
             "rm_val_accuracy": report["reward_model"].get("val_accuracy"),
             "rm_gold_accuracy": report["reward_model"].get("gold_accuracy"),
             "wall_time_s": report.get("wall_time_s", {}).get("total"), "margins": {}}
    for r in references:
        diff = rlhf.paired_difference(mine, per_prompt_gold(samples, r))
        entry["margins"][r] = {"mean": diff["mean"], "ci95": diff["ci95"] and list(diff["ci95"]),
                               "reference_gold": rows[r]["gold_score"], "temperature": rows[r].get("temperature")}
    results["strengths"][tag(s)] = entry
results["wall_time_s"] = {"total": time.time() - t_start, **wall}
studylib.save_json(results, os.path.join(runs_dir, "results.json"))

# ----------------------------------------------------------------------------- report and figure
fmt = lambda m: f"{m['mean']:+.3f} [{m['ci95'][0]:+.3f}, {m['ci95'][1]:+.3f}]" if m["ci95"] else f"{m['mean']:+.3f}"  # noqa: E731
print(f"\n| habit strength | {cfg['policy']} gold | - SFT's | " + " | ".join(f"- {r}'s [95% CI]" for r in references)
      + " | RM val accuracy |\n| --- | --- | --- | " + "--- | " * len(references) + "--- |")
for t, e in results["strengths"].items():
    vs_sft = {"mean": e["policy_vs_sft"], "ci95": e["policy_vs_sft_ci95"]}
    acc = e["rm_val_accuracy"]
    print(f"| {t} | {e['policy_gold']:.3f} | {fmt(vs_sft)} | " + " | ".join(fmt(e["margins"][r]) for r in references)
          + f" | {'n/a' if acc is None else f'{acc:.3f}'} |")

fig, ax = plt.subplots(figsize=(7.5, 4.5))
xs = list(range(len(strengths)))
series = [(f"{cfg['policy']} - {r}", [e["margins"][r] for e in results["strengths"].values()]) for r in references]
series.append((f"{cfg['policy']} - sft (T=1)", [{"mean": e["policy_vs_sft"], "ci95": e["policy_vs_sft_ci95"]}
                                                for e in results["strengths"].values()]))
for k, (label, ms) in enumerate(series):
    off = (k - (len(series) - 1) / 2) * 0.06                  # side by side, so the intervals do not overlap
    err = [[m["mean"] - m["ci95"][0] if m["ci95"] else 0 for m in ms], [m["ci95"][1] - m["mean"] if m["ci95"] else 0 for m in ms]]
    ax.errorbar([x + off for x in xs], [m["mean"] for m in ms], yerr=err, fmt="o-", capsize=3, label=label)
ax.axhline(0, color="gray", lw=0.8)
ax.set_xticks(xs, [tag(s) for s in strengths])
ax.set_xlim(-0.5, len(xs) - 0.5)
ax.set_xlabel("demonstrators' habit strength (data/world/prepare.py --habit_strength)")
ax.set_ylabel("gold margin (95% interval over prompts)")
ax.set_title("When feedback pays: RLHF's margin over the baselines with no RL")
ax.grid(alpha=0.3), ax.legend(fontsize=8)
fig.tight_layout()
for path in {os.path.join(runs_dir, "habit_strength.png"), cfg["figure"]}:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
print(f"done in {time.time() - t_start:.0f}s; {os.path.join(runs_dir, 'results.json')}, figure {cfg['figure']}")
