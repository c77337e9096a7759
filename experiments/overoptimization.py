"""Study 1: reward over-optimisation (Gao, Schulman and Hilton 2022) on the default world.

The reward model is a proxy for the gold score; optimise it hard enough and the gold score turns
down while the proxy still rises. Gao et al. measured it against a synthetic gold reward model;
the default world has a true gold score, so here it is measured, on a finished `bash run.sh OUT`:
  1. RL: PPO from OUT/sft against OUT/rm with OUT/ppo's settings (ptx_coef 0) for `iterations`
     (several times the default), once with kl_coef = 0 and once with OUT/ppo's beta for contrast.
     Every iteration logs its rollouts' RM score, gold score and KL to SFT; means over `window`
     consecutive iterations give the points, at d = sqrt(KL).
  2. Best-of-n on the same prompts (the first n_prompts of the PPO prompt file): n_max SFT samples
     per prompt, each scored by the RM (unended responses as PPO scores them) and the gold score;
     for n = 1, 2, 4, ..., n_max the exact expectation over all n-subsets (rlhf.best_of_n_expected),
     at d = sqrt(log n - (n - 1) / n).
  3. Fit Gao et al.'s forms to the gold score minus SFT's (SFT's: the mean of the n_max samples):
     R_bon(d) = d (a_bon - b_bon d) and R_RL(d) = d (a_RL - b_RL log d) (rlhf.gao_fit); print the
     coefficients and where each peaks, and plot the points, the fits and the RM score beside them.
Writes OUT/studies/overoptimization/ (the two PPO runs, results.json, the figure) and the figure to
`figure` (docs/overoptimization.png). A study that stopped goes on where it stopped.

  python experiments/overoptimization.py --out=out      # after bash run.sh (see README, "Studies")
  python experiments/overoptimization.py --out=OUT --config=configs/micro/overoptimization.py   # seconds
"""
import importlib
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import studylib  # noqa: E402  (it puts the repository root on sys.path)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nanoinstruct import common, rlhf  # noqa: E402
from nanoinstruct.data import read_jsonl  # noqa: E402

# ----------------------------------------------------------------------------- config
defaults = dict(
    out="out",                # a finished run.sh run: OUT/sft, OUT/rm, OUT/ppo (its settings are reused)
    study_dir="",             # "" = OUT/studies/overoptimization
    figure="docs/overoptimization.png",
    iterations=100,           # PPO iterations of both runs: 4 x the default 25
    n_prompts=400,            # best-of-n on the first n_prompts prompts of the PPO prompt file
    n_max=64,                 # SFT samples per prompt; n = 1, 2, 4, ..., n_max
    window=5,                 # each RL point: the mean over this many iterations' rollouts
    batch_size=128, device="auto", dtype="auto", seed=1234,
)
cfg = common.get_config(defaults)
device, ctx, _ = common.setup(cfg)
study = cfg["study_dir"] or os.path.join(cfg["out"], "studies", "overoptimization")
ppo_run = os.path.join(cfg["out"], "ppo")
ppo_cfg = json.load(open(os.path.join(ppo_run, "config.json")))
if not ppo_cfg["gold_fn"]:
    common.die(f"{ppo_run} ran without a gold score (gold_fn): this study needs the default world")
t_start = time.time()

# ----------------------------------------------------------------------------- 1. RL
runs = {"kl_coef=0": 0.0, f"kl_coef={ppo_cfg['kl_coef']:g}": ppo_cfg["kl_coef"]}
run_dirs = {}
for label, beta in runs.items():
    run_dir = run_dirs[label] = os.path.join(study, f"ppo_kl{beta:g}")
    settings = dict(kl_coef=beta, iterations=cfg["iterations"], out_dir=run_dir, device=cfg["device"], dtype=cfg["dtype"])
    if studylib.done(run_dir, **settings):
        print(f"{label}: reusing the finished run in {run_dir}")
        continue
    studylib.run("train_ppo.py", studylib.rerun_args(ppo_run, **settings), os.path.join(study, "logs", f"ppo_kl{beta:g}.log"))

# ----------------------------------------------------------------------------- 2. best-of-n
world_module, gold_name = ppo_cfg["gold_fn"].split(":")
gold_score = getattr(importlib.import_module(world_module), gold_name)
prompts = [r["prompt"] for r in read_jsonl(ppo_cfg["prompts_file"], "prompts")][:cfg["n_prompts"]]
sft, sft_ckpt = studylib.load(ppo_cfg["init_from"], device)
reward_model, _ = studylib.load(ppo_cfg["reward_model"], device, scalar_head=True)
enc, _ = common.load_tokenizer("", sft_ckpt)   # the one the checkpoint carries
t0 = time.time()
pool = studylib.sample_scored(sft, sft, reward_model, enc, prompts, cfg["n_max"], ppo_cfg["temperature"], cfg["seed"],
                              gold_score, ppo_cfg, ppo_cfg["max_new_tokens"], cfg["batch_size"], ctx)
print(f"best-of-n: {cfg['n_max']} SFT samples of each of {len(prompts)} prompts in {time.time() - t0:.0f}s")
sft_gold = studylib.mean(studylib.per_prompt_means(pool["gold"]))
sft_rm = studylib.mean(studylib.per_prompt_means(pool["rm"]))
ns = [2 ** i for i in range(int(math.log2(cfg["n_max"])) + 1)]
bon = [{"n": n, "kl": rlhf.best_of_n_kl_bound(n), "d": math.sqrt(rlhf.best_of_n_kl_bound(n)),
        "gold": studylib.mean(rlhf.best_of_n_expected(r, g, n) for r, g in zip(pool["rm"], pool["gold"])) - sft_gold,
        "rm": studylib.mean(rlhf.best_of_n_expected(r, r, n) for r in pool["rm"]) - sft_rm} for n in ns]

# ----------------------------------------------------------------------------- 3. RL points and fits
def rl_points(run_dir):
    """Means over consecutive windows of iterations: d = sqrt(KL), gold and RM minus SFT's."""
    rows = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    out = []
    for i in range(0, len(rows) - cfg["window"] + 1, cfg["window"]):
        w = rows[i:i + cfg["window"]]
        kl = studylib.mean(r["kl"] for r in w)
        out.append({"iterations": [w[0]["step"], w[-1]["step"]], "kl": kl, "d": math.sqrt(max(kl, 0.0)),
                    "gold": studylib.mean(r["gold"] for r in w) - sft_gold, "rm": studylib.mean(r["rm_score"] for r in w) - sft_rm})
    return out


def fit(points, form):
    a, b = rlhf.gao_fit([p["d"] for p in points], [p["gold"] for p in points], form)
    return {"form": form, "a": a, "b": b, "peak_d": rlhf.gao_peak(a, b, form)}


def turn(points):
    """Where the gold score peaks among the points, and how gold and RM move from there to the end."""
    top = max(range(len(points)), key=lambda i: points[i]["gold"])
    p, last = points[top], points[-1]
    return {"peak_d": p["d"], "peak_gold": p["gold"], "peak_rm": p["rm"], "last_d": last["d"],
            "last_gold": last["gold"], "last_rm": last["rm"],
            "proxy_rises_as_gold_falls": last["gold"] < p["gold"] and last["rm"] > p["rm"]}


rl = {label: rl_points(d) for label, d in run_dirs.items()}
results = {"sft_gold": sft_gold, "sft_rm": sft_rm, "prompts": len(prompts), "n_max": cfg["n_max"],
           "iterations": cfg["iterations"], "best_of_n": bon, "rl": rl,
           "fits": {"best_of_n": fit(bon, "bon"), **{label: fit(pts, "rl") for label, pts in rl.items() if len(pts) >= 2}},
           "turns": {"best_of_n": turn(bon), **{label: turn(pts) for label, pts in rl.items() if pts}}}
results["wall_time_s"] = time.time() - t_start
studylib.save_json(results, os.path.join(study, "results.json"))

# ----------------------------------------------------------------------------- report
print(f"\nSFT on these prompts: gold {sft_gold:.3f}, RM score {sft_rm:+.3f} (the zero of every gain below)")
print("| method | d = sqrt(KL) | KL | gold - SFT's | RM - SFT's |\n| --- | --- | --- | --- | --- |")
for p in bon:
    print(f"| best-of-{p['n']} | {p['d']:.3f} | {p['kl']:.3f} | {p['gold']:+.4f} | {p['rm']:+.3f} |")
for label, pts in rl.items():
    for p in pts:
        print(f"| PPO {label}, it. {p['iterations'][0]}-{p['iterations'][1]} | {p['d']:.3f} | {p['kl']:.3f} | "
              f"{p['gold']:+.4f} | {p['rm']:+.3f} |")
for name, f in results["fits"].items():
    shape = "d (a - b d)" if f["form"] == "bon" else "d (a - b log d)"
    print(f"fit {name}: R(d) = {shape}, a = {f['a']:.4f}, b = {f['b']:.4f}, peak at d = {f['peak_d']:.3f}")
for name, t in results["turns"].items():
    print(f"{name}: gold peaks at d = {t['peak_d']:.3f} ({t['peak_gold']:+.4f}, RM {t['peak_rm']:+.3f}); at the last point "
          f"(d = {t['last_d']:.3f}) gold {t['last_gold']:+.4f}, RM {t['last_rm']:+.3f}"
          + ("; the proxy still rises where gold has turned down" if t["proxy_rises_as_gold_falls"] else ""))

# ----------------------------------------------------------------------------- figure
fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex="col")
for col, (title, series, form) in enumerate((("best-of-n (SFT samples, the RM's favourite)", {"best_of_n": bon}, "bon"),
                                             (f"PPO, {cfg['iterations']} iterations (its rollouts)", rl, "rl"))):
    for label, pts in series.items():
        ds = [p["d"] for p in pts]
        color = axes[0, col].plot(ds, [p["rm"] for p in pts], "o-" if form == "bon" else ".-", label=label, alpha=0.8)[0].get_color()
        axes[1, col].plot(ds, [p["gold"] for p in pts], "o" if form == "bon" else ".", color=color, label=label, alpha=0.8)
        f = results["fits"].get(label)
        if f and ds:
            grid = [max(ds) * i / 100 for i in range(101)]
            axes[1, col].plot(grid, rlhf.gao_curve(grid, f["a"], f["b"], form), "-", lw=1.2, color=color,
                              label=f"fit: a = {f['a']:.3f}, b = {f['b']:.3f}")
        if form == "bon":
            for p in pts:
                axes[1, col].annotate(f"n={p['n']}", (p["d"], p["gold"]), fontsize=7, xytext=(2, 3), textcoords="offset points")
    axes[0, col].set_title(title)
    axes[0, col].set_ylabel("RM score - SFT's (the proxy)")
    axes[1, col].set_ylabel("gold score - SFT's")
    axes[1, col].set_xlabel("d = sqrt(KL to SFT)  (nats^0.5)")
    for ax in axes[:, col]:
        ax.axhline(0, color="gray", lw=0.8), ax.grid(alpha=0.3), ax.legend(fontsize=7)
fig.suptitle("Reward over-optimisation on the default world (Gao et al. 2022's forms fitted to the gold score)")
fig.tight_layout()
for path in {os.path.join(study, "overoptimization.png"), cfg["figure"]}:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
print(f"done in {time.time() - t_start:.0f}s; {os.path.join(study, 'results.json')}, figure {cfg['figure']}")
