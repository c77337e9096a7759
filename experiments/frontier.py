"""Study 3: the gold-KL frontier of PPO, PPO-ptx, best-of-n, DPO and SFT's temperature.

The question a learner asks of RLHF: is PPO worth it over reranking samples (best-of-n) or over
DPO (Rafailov et al. 2023), which trains on the same comparisons with no reward model and no RL?
Every method buys gold score by moving away from the SFT policy; the frontier answers it on the
gold score, against the KL to SFT that each one spends. On a finished `bash run.sh OUT`:
  - PPO and PPO-ptx along training: OUT/ppo and OUT/ppo_ptx re-run with their own settings,
    stopped at each of `ppo_iterations` (PPO's learning rate is constant and its seed fixed, so a
    shorter run is the first part of a longer one), and OUT's own runs;
  - best-of-n: n SFT samples, the RM's favourite (unended responses scored as PPO scores them),
    for each n of `best_of`, exact over all n-subsets of a pool of max(best_of) samples per
    prompt (rlhf.best_of_n_expected); KL: the bound log n - (n - 1) / n;
  - DPO from OUT/sft on OUT's comparison files (experiments/dpo.py) at each of `dpo_betas`;
  - SFT sampled at each of `temperatures` (no training at all).
Each policy is sampled samples_per_prompt times per held-out evaluation prompt at temperature 1
and judged as evaluate.py judges it: mean gold score, and the gold difference to SFT (per prompt,
the policy's mean minus the mean of SFT's pool of samples, with a 95% interval over prompts), the
RM score, and the KL to SFT (log pi - log pi_SFT summed over the response, averaged).
Writes OUT/studies/frontier/ (the runs, results.json, the figure) and the figure to `figure`.

  python experiments/frontier.py --out=out      # after bash run.sh (see README, "Studies")
  python experiments/frontier.py --out=OUT --config=configs/micro/frontier.py   # seconds
"""
import importlib
import json
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
    out="out",                # a finished run.sh run: OUT/sft, OUT/rm, OUT/ppo, OUT/ppo_ptx, OUT/world
    study_dir="",             # "" = OUT/studies/frontier
    figure="docs/frontier.png",
    ppo_runs="ppo,ppo_ptx",   # OUT's PPO runs to follow along training
    ppo_iterations="10,50",   # each also run to here (OUT's own 25 iterations are a point anyway)
    dpo_betas="0.03,0.1,0.3",
    dpo_args="",              # more settings for every DPO run, e.g. "--epochs=2 --lr=1e-5"
    temperatures="0.3,0.5,0.7,0.85",   # SFT sampled colder (T = 1 is the pool itself)
    best_of="2,4,8,16",       # the pool holds max(best_of) SFT samples per prompt
    samples_per_prompt=4,     # of every policy and temperature
    prompts_file="",          # "" = OUT/world/prompts_eval.jsonl (held out)
    max_prompts=0,            # 0 = all
    batch_size=128, device="auto", dtype="auto", seed=1234,
)
cfg = common.get_config(defaults)
device, ctx, _ = common.setup(cfg)
out, study = cfg["out"], cfg["study_dir"] or os.path.join(cfg["out"], "studies", "frontier")
ints = lambda s: [int(x) for x in s.split(",") if x]        # noqa: E731
floats = lambda s: [float(x) for x in s.split(",") if x]    # noqa: E731
ppo_cfg = json.load(open(os.path.join(out, "ppo", "config.json")))
if not ppo_cfg["gold_fn"]:
    common.die(f"{out}/ppo ran without a gold score (gold_fn): this study needs the default world")
t_start = time.time()
train_settings = dict(device=cfg["device"], dtype=cfg["dtype"])

# ----------------------------------------------------------------------------- runs
policies = {}   # label -> (method, checkpoint directory, extra fields for the results)
for name in [r for r in cfg["ppo_runs"].split(",") if r]:
    base = os.path.join(out, name)
    own = json.load(open(os.path.join(base, "config.json")))["iterations"]
    for it in sorted(set(ints(cfg["ppo_iterations"])) | {own}):
        run_dir = base if it == own else os.path.join(study, f"{name}_it{it}")
        settings = dict(iterations=it, out_dir=run_dir, **train_settings)
        if it != own and not studylib.done(run_dir, **settings):
            studylib.run("train_ppo.py", studylib.rerun_args(base, **settings), os.path.join(study, "logs", f"{name}_it{it}.log"))
        policies[f"{name} it{it}"] = (name, run_dir, {"iterations": it})
world_dir = os.path.join(out, "world")
for beta in floats(cfg["dpo_betas"]):
    run_dir = os.path.join(study, f"dpo_b{beta:g}")
    if not studylib.done(run_dir, beta=beta, **train_settings):
        args = [f"--init_from={os.path.join(out, 'sft')}", f"--out_dir={run_dir}", f"--beta={beta!r}",
                f"--train_file={os.path.join(world_dir, 'comparisons_train.jsonl')}",
                f"--val_file={os.path.join(world_dir, 'comparisons_val.jsonl')}",
                *(studylib.arg(k, v) for k, v in train_settings.items()), *cfg["dpo_args"].split()]
        studylib.run("experiments/dpo.py", args, os.path.join(study, "logs", f"dpo_b{beta:g}.log"))
    policies[f"dpo beta={beta:g}"] = ("dpo", run_dir, {"beta": beta})

# ----------------------------------------------------------------------------- sample and judge
world_module, gold_name = ppo_cfg["gold_fn"].split(":")
gold_score = getattr(importlib.import_module(world_module), gold_name)
prompts = [r["prompt"] for r in read_jsonl(cfg["prompts_file"] or os.path.join(world_dir, "prompts_eval.jsonl"), "prompts")]
prompts = prompts[:cfg["max_prompts"]] if cfg["max_prompts"] else prompts
sft, sft_ckpt = studylib.load(os.path.join(out, "sft"), device)
reward_model, _ = studylib.load(os.path.join(out, "rm"), device, scalar_head=True)
enc, _ = common.load_tokenizer("", sft_ckpt)   # the one the checkpoint carries


def sample(model, n, temperature, seed):
    return studylib.sample_scored(model, sft, reward_model, enc, prompts, n, temperature, seed, gold_score, ppo_cfg,
                                  ppo_cfg["max_new_tokens"], cfg["batch_size"], ctx)


t0 = time.time()
ns = ints(cfg["best_of"])
pool = sample(sft, max(ns + [1]), 1.0, cfg["seed"] + 1000)
sft_gold = studylib.per_prompt_means(pool["gold"])           # per prompt: SFT's zero
print(f"SFT pool: {max(ns + [1])} samples of each of {len(prompts)} prompts in {time.time() - t0:.0f}s")


def point(method, label, gold, rm, kl, **extra):
    """gold, rm: per-prompt values; kl: the mean KL to SFT -> one point of the frontier."""
    diff = rlhf.paired_difference(gold, sft_gold)
    p = {"method": method, "label": label, "gold": studylib.mean(gold), "gold_vs_sft": diff["mean"],
         "gold_vs_sft_ci95": diff["ci95"] and list(diff["ci95"]), "rm": studylib.mean(rm), "kl": kl, **extra}
    print(f"{label:>18}: gold {p['gold']:.3f} ({p['gold_vs_sft']:+.3f} vs SFT) | RM {p['rm']:+.3f} | KL {kl:.3f}", flush=True)
    return p


points = [point("sft", "sft T=1", sft_gold, studylib.per_prompt_means(pool["rm"]), 0.0, temperature=1.0)]
for n in ns:
    points.append(point("best_of_n", f"best-of-{n}", [rlhf.best_of_n_expected(r, g, n) for r, g in zip(pool["rm"], pool["gold"])],
                        [rlhf.best_of_n_expected(r, r, n) for r in pool["rm"]], rlhf.best_of_n_kl_bound(n), n=n))
for t in floats(cfg["temperatures"]):
    s = sample(sft, cfg["samples_per_prompt"], t, cfg["seed"])
    points.append(point("sft", f"sft T={t:g}", studylib.per_prompt_means(s["gold"]), studylib.per_prompt_means(s["rm"]),
                        studylib.mean(studylib.per_prompt_means(s["kl"])), temperature=t))
for label, (method, run_dir, extra) in policies.items():
    model, _ = studylib.load(run_dir, device)
    s = sample(model, cfg["samples_per_prompt"], 1.0, cfg["seed"])
    points.append(point(method, label, studylib.per_prompt_means(s["gold"]), studylib.per_prompt_means(s["rm"]),
                        studylib.mean(studylib.per_prompt_means(s["kl"])), run=run_dir, **extra))

results = {"prompts": len(prompts), "samples_per_prompt": cfg["samples_per_prompt"], "sft_gold": studylib.mean(sft_gold),
           "points": points, "wall_time_s": time.time() - t_start}
studylib.save_json(results, os.path.join(study, "results.json"))

# ----------------------------------------------------------------------------- report and figure
print("\n| method | gold | gold - SFT's [95% CI] | RM score | KL to SFT |\n| --- | --- | --- | --- | --- |")
for p in points:
    ci = "[{:+.3f}, {:+.3f}]".format(*p["gold_vs_sft_ci95"]) if p["gold_vs_sft_ci95"] else ""
    print(f"| {p['label']} | {p['gold']:.3f} | {p['gold_vs_sft']:+.3f} {ci} | {p['rm']:+.3f} | {p['kl']:.3f} |")

fig, ax = plt.subplots(figsize=(9, 5.5))
styles = {"sft": ("SFT at temperature T", "s--"), "best_of_n": ("best-of-n by the RM (KL: the bound)", "o-"),
          "ppo": ("PPO along training", "^-"), "ppo_ptx": ("PPO-ptx along training", "v-"), "dpo": ("DPO at several beta", "D:")}
for method, (name, style) in styles.items():
    pts = [p for p in points if p["method"] == method]
    if not pts:
        continue
    origin = [{**points[0], "iterations": 0}] if method in ("best_of_n", "ppo", "ppo_ptx") else []   # n = 1, iteration 0: SFT
    pts = sorted(pts + origin, key=lambda p: p["kl"])
    lo_hi = [(p["gold_vs_sft"] - p["gold_vs_sft_ci95"][0], p["gold_vs_sft_ci95"][1] - p["gold_vs_sft"])
             if p["gold_vs_sft_ci95"] else (0.0, 0.0) for p in pts]
    ax.errorbar([p["kl"] for p in pts], [p["gold_vs_sft"] for p in pts], yerr=list(zip(*lo_hi)), fmt=style,
                capsize=2, label=name, alpha=0.85)
    for p in pts:
        tag = {"sft": f"T={p.get('temperature', 1):g}", "best_of_n": f"n={p.get('n', 1)}", "dpo": f"beta={p.get('beta', 0):g}"}
        ax.annotate(tag.get(method, f"it{p.get('iterations', '')}"), (p["kl"], p["gold_vs_sft"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
ax.axhline(0, color="gray", lw=0.8)
ax.set_xscale("symlog", linthresh=0.1)
ax.set_xlabel("KL to SFT (nats; symmetric log scale)")
ax.set_ylabel("gold score - SFT's (95% interval over prompts)")
ax.set_title(f"The gold-KL frontier on the default world ({len(prompts)} held-out prompts)")
ax.grid(alpha=0.3), ax.legend(fontsize=8)
fig.tight_layout()
for path in {os.path.join(study, "frontier.png"), cfg["figure"]}:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
print(f"done in {time.time() - t_start:.0f}s; {os.path.join(study, 'results.json')}, figure {cfg['figure']}")
