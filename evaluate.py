"""Evaluation: what each stage did, measured on held-out prompts with the gold score.

Paper section 4 compares policies by how often labelers prefer their outputs to a baseline's
(the 175B SFT model), reports results per category (helpfulness, truthfulness, harmlessness),
and measures the "alignment tax" on public NLP datasets. Here, for the base model, SFT, PPO and
PPO-ptx, on the default world's evaluation prompts (never seen in training), each sampled
samples_per_prompt times (default 4), as is an independent set of SFT samples (the baseline):
  - the mean gold score, overall, per task family and per aim (helpful / honest / harmless);
  - the win rate against SFT, judged by the gold score: each policy's first sample for a prompt
    against the baseline's first sample for it, one forced choice per prompt as the paper's; ties
    reported apart, the win rate among the non-tied pairs with a Wilson 95% interval. SFT's own
    row compares two independent SFT samples, a check that the method gives ~0.5;
  - the gold difference to the baseline: per prompt, the mean gold of the policy's samples minus
    that of the baseline's, averaged over prompts, with a 95% interval. It weighs how much better
    or worse each answer is, and averaging several samples per prompt narrows it (SFT's row: ~0);
  - the reward model's mean score and the KL to SFT (sum over response tokens, nats);
  - the alignment tax: accuracy on the world's benchmark (multiple-choice cloze on the corpus'
    facts in unseen phrasings, each choice scored by its likelihood, as HellaSwag is scored),
    with a Wilson 95% interval, and the LM loss on the pretraining val split;
  - the reward model's val accuracy against labelers and against gold, beside the labelers'
    agreement (from out/rm/summary.json);
  - reference rows, not policies, the baselines a sceptic would try: SFT sampled at each of
    `temperatures` (sft_T0.7, ...) and the best of them by gold on these very prompts
    (`sft_best_T`, its temperature in the row; choosing on the test prompts favours the baseline,
    the honest direction). Sampling colder sharpens SFT toward its likeliest answers with no
    labels and no training; RLHF's gain is worth its cost only where it beats that. And SFT's best
    of 2 and of `best_of` (4) samples by the RM (best-of-n, Stiennon et al. 2020): what the RM is
    worth with no RL, at a KL of at most log n - (n - 1) / n (the row's KL is that bound).
A response that never emits end-of-text gets the fixed score `no_eot_score` in place of the RM's,
as in PPO (rlhf.penalize_unended), for the RM column and for best-of-n's choice.
Writes OUT/eval/report.json (DESIGN.md keys), report.md and PNGs. Samples at temperature 1: a
policy is a distribution, and greedy decoding would hide what RLHF changed in it.

  python evaluate.py --out=out
"""
import functools
import importlib
import json
import os
import time

import matplotlib
matplotlib.use("Agg")   # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from nanoinstruct import common, ddp, rlhf, scoring  # noqa: E402
from nanoinstruct.data import lm_batch, open_tokens, pad_right, read_jsonl  # noqa: E402

# ----------------------------------------------------------------------------- config
defaults = dict(
    out="out",                # the run: policies in OUT/{base,sft,ppo,ppo_ptx}, the RM in OUT/rm
    policies="base,sft,ppo,ppo_ptx",   # the run directories under OUT compared (sft is the baseline)
    prompts_file="data/world/prompts_eval.jsonl",   # held-out prompts, in no training file
    val_bin="data/world/val.bin",       # pretraining val tokens: the alignment tax's LM loss
    benchmark_file="data/world/benchmark.jsonl",   # the alignment-tax benchmark: cloze items ("" = off)
    world="nanoinstruct.world",   # module with gold_score(prompt, response, ended), family_of, AIMS
    temperature=1.0, max_new_tokens=48,
    batch_size=128,           # sequences sampled at once
    max_prompts=0,            # only the first N prompts (0 = all)
    samples_per_prompt=4,     # gold, RM score and KL average this many samples per prompt
    temperatures="0.3,0.5,0.7",   # SFT also sampled at each; the best by gold is sft_best_T ("" = off)
    best_of=4,                # also SFT's best of 2 and of this many samples by the RM (0 = off)
    no_eot_score=-2.0,        # the RM score of a response that never ends (as in PPO)
    val_batches=20, val_batch_size=16, val_block_size=128,   # the LM-loss windows: batches x windows x tokens
    device="auto", dtype="auto", seed=1234,
)
cfg = common.get_config(defaults)
device, ctx, _ = common.setup(cfg)
rank, n_proc = ddp.init_distributed(device)   # torchrun: the sampling batches are shared out; (0, 1) without
world = importlib.import_module(cfg["world"])
eval_dir = os.path.join(cfg["out"], "eval")
os.makedirs(eval_dir, exist_ok=True)
t_start = time.time()

# ----------------------------------------------------------------------------- models
names = cfg["policies"].split(",")
policies = {n: common.load_model(os.path.join(cfg["out"], n), device, verbose=False) for n in names}
sft = policies["sft"][0] if "sft" in policies else common.load_model(os.path.join(cfg["out"], "sft"), device, verbose=False)[0]
reward_model, rm_ckpt = common.load_model(os.path.join(cfg["out"], "rm"), device, scalar_head=True, verbose=False)
common.expect_reward_model(os.path.join(cfg["out"], "rm"), rm_ckpt)
enc, _ = common.load_tokenizer("", policies[names[0]][1])   # the one the checkpoints carry
for m in [reward_model, sft] + [m for m, _ in policies.values()]:
    m.eval()

# ----------------------------------------------------------------------------- data
prompts = [r["prompt"] for r in read_jsonl(cfg["prompts_file"], "prompts")]
prompts = prompts[:cfg["max_prompts"]] if cfg["max_prompts"] else prompts
families = [world.family_of(p) for p in prompts]
val_tokens = open_tokens(cfg["val_bin"])
bench_items = [json.loads(line) for line in open(cfg["benchmark_file"])] if cfg["benchmark_file"] else []
print(f"{len(prompts)} evaluation prompts; policies: {', '.join(names)}")


@functools.lru_cache(maxsize=None)   # SFT's sample at the policies' seed is also a best-of-n draw
@torch.no_grad()
def sample_and_score(model, seed, temperature):
    """samples_per_prompt samples of every prompt at `temperature` -> per sample: gold score, RM
    score, KL to SFT (at cfg temperature), text; lists of n_samples * len(prompts), sample-major
    (all prompts' first samples, then all second samples, ...).
    torchrun: each process samples every n_proc-th batch with its own stream, and all of them
    get every batch's values back, in order (the samples differ from one process's, not their law)."""
    gen = torch.Generator(device).manual_seed(seed + 1_000_003 * rank)
    mine = []
    jobs = prompts * cfg["samples_per_prompt"]
    for i in common.progress(range(rank * cfg["batch_size"], len(jobs), n_proc * cfg["batch_size"]), "  sampling: batch"):
        out = scoring.sample_and_score(model, sft, reward_model, enc, jobs[i:i + cfg["batch_size"]], temperature, gen,
                                       world.gold_score, cfg["no_eot_score"], cfg["max_new_tokens"], cfg["temperature"], ctx)
        out["texts"] = [t + ("" if e else " [no end-of-text]") for t, e in zip(out["texts"], out["ended"])]
        mine.append(out)
    parts = ddp.gather(mine)   # [mine] on one process
    batches = [parts[b % n_proc][b // n_proc] for b in range(sum(map(len, parts)))]   # batch b came from process b % n_proc
    return {k: [v for out in batches for v in out[k]] for k in ("gold", "rm", "kl", "texts")}


@functools.lru_cache(maxsize=None)   # the SFT model is measured as a policy and again as each reference
@torch.no_grad()
def pretrain_val_loss(model):
    """LM loss on fixed windows of the pretraining val split (the same windows for every policy).
    torchrun: each process takes every n_proc-th batch of the same windows; the mean is summed."""
    g = torch.Generator().manual_seed(0)
    total = 0.0
    for b in range(cfg["val_batches"]):
        x, y = lm_batch(val_tokens, cfg["val_batch_size"], cfg["val_block_size"], g, device)
        if b % n_proc == rank:
            with ctx:
                total += rlhf.ptx_loss(model.lm_logits(model(x)), y).item()
    return ddp.all_sum(total, device=device) / cfg["val_batches"]


@functools.lru_cache(maxsize=None)
@torch.no_grad()
def benchmark(model):
    """Zero-shot multiple-choice accuracy on the benchmark, with a Wilson 95% interval: each
    choice scored by the summed log-likelihood of its tokens after the context (the context
    starts a document, after an end-of-text, as in pretraining); the likeliest is the answer.
    torchrun: each process scores every n_proc-th chunk of 256 sequences; all get every score."""
    seqs, spans = [], []
    for i, item in enumerate(bench_items):
        ctx_ids = [enc.eot_token] + enc.encode_ordinary(item["context"])
        for choice in item["choices"]:
            ids = ctx_ids + enc.encode_ordinary(choice)
            seqs.append(ids), spans.append((len(ctx_ids), len(ids)))
    mine = {}
    for b in range(rank * 256, len(seqs), n_proc * 256):
        x, _ = pad_right(seqs[b:b + 256], enc.eot_token)
        x = x.to(device)
        with ctx:
            logp = torch.log_softmax(model.lm_logits(model(x[:, :-1])).float(), -1)
        tok = logp.gather(-1, x[:, 1:, None]).squeeze(-1)               # (b, T-1): log p of token t+1
        for j, (lo, hi) in enumerate(spans[b:b + 256]):
            mine[b + j] = tok[j, lo - 1:hi - 1].sum().item()
    every = {k: v for part in ddp.gather(mine) for k, v in part.items()}
    scores = [every[k] for k in range(len(seqs))]
    correct, k = 0, 0
    for i, item in enumerate(bench_items):
        n = len(item["choices"])
        s = scores[k:k + n]
        correct += max(range(n), key=s.__getitem__) == item["answer"]
        k += n
    acc = correct / len(bench_items)
    return acc, list(rlhf.wilson_interval(acc, len(bench_items)))


def mean(xs):
    return sum(xs) / max(len(xs), 1)


def by_group(values, groups):
    return {g: mean([v for v, k in zip(values, groups) if k == g]) for g in sorted(set(groups))}


def by_prompt(values):
    """Sample-major values (sample_and_score) -> one list per prompt, its samples in order."""
    return [values[i::len(prompts)] for i in range(len(prompts))]


# ----------------------------------------------------------------------------- evaluate
baseline = sample_and_score(sft, cfg["seed"] + 1000, cfg["temperature"])   # the SFT sample every policy faces
aims = [world.AIMS[f] for f in families]
report, samples = {"policies": {}, "references": {}}, {}
# references beside the policies, none trained: SFT itself sampled colder (RL that only sharpens
# SFT's distribution toward its likeliest answers buys no more than this, with no labels at all),
# and SFT's best of n samples by the RM (what the RM is worth without RL)
temperatures = [float(t) for t in cfg["temperatures"].split(",") if t]


def sample_best_of(n, draws):
    """SFT's best of n independent samples per slot by the RM score; its KL is the bound."""
    pick = rlhf.best_of_n([d["rm"] for d in draws[:n]])
    s = {k: [draws[j][k][i] for i, j in enumerate(pick)] for k in draws[0]}
    s["kl"] = [rlhf.best_of_n_kl_bound(n)] * len(pick)
    return s


@functools.lru_cache(maxsize=None)
def best_of_draws():
    """best_of samples of SFT per slot: the first is the sft row's own (independent of the baseline
    all rows face), the others new."""
    return [sample_and_score(sft, cfg["seed"] + (2000 + j if j else 0), cfg["temperature"]) for j in range(cfg["best_of"])]


runs = [(n, m, functools.partial(sample_and_score, m, cfg["seed"], cfg["temperature"]), "policies")
        for n, (m, _) in policies.items()]
runs += [(f"sft_T{t:g}", sft, functools.partial(sample_and_score, sft, cfg["seed"], t), "references") for t in temperatures]
runs += [(f"sft_best_of_{n}", sft, (lambda n=n: sample_best_of(n, best_of_draws())), "references")
         for n in sorted({2, cfg["best_of"]}) if 2 <= n <= cfg["best_of"]]
for n, model, sample, kind in runs:
    t0 = time.time()
    s = sample()
    # win rates: the first sample of each prompt against the SFT sample, one forced choice per
    # prompt as the paper's labelers make; gold differences: per-prompt means of all samples, so
    # the interval counts prompts, not correlated samples of one prompt
    first, base_first = s["gold"][:len(prompts)], baseline["gold"][:len(prompts)]
    gold, base_gold = ([mean(g) for g in by_prompt(x["gold"])] for x in (s, baseline))
    wr = rlhf.win_rate(first, base_first)
    diff = rlhf.paired_difference(gold, base_gold)
    report[kind][n] = {
        "gold_score": mean(gold), "gold_by_family": by_group(gold, families), "gold_by_aim": by_group(gold, aims),
        "gold_vs_sft": diff["mean"], "gold_vs_sft_ci95": diff["ci95"] and list(diff["ci95"]),
        "win_rate_vs_sft": wr["win_rate"], "win_rate_ci95": list(wr["ci95"]), "tie_rate_vs_sft": wr["tie_rate"],
        "wins_losses_ties": [wr["wins"], wr["losses"], wr["ties"]],
        "win_rate_by_aim": {a: rlhf.win_rate([g for g, k in zip(first, aims) if k == a],
                                             [g for g, k in zip(base_first, aims) if k == a])["win_rate"]
                            for a in sorted(set(aims))},
        "win_rate_ties_half": wr["win_rate_ties_half"], "win_rate_ties_half_ci95": list(wr["ci95_ties_half"]),
        "rm_score": mean(s["rm"]), "kl_to_sft": mean(s["kl"]), "pretrain_val_loss": pretrain_val_loss(model)}
    if bench_items:
        acc, ci = benchmark(model)
        report[kind][n].update(benchmark_accuracy=acc, benchmark_accuracy_ci95=ci)
    samples[n] = by_prompt(s["texts"])
    p = report[kind][n]
    print(f"{n:8s} gold {p['gold_score']:.3f} ({p['gold_vs_sft']:+.3f} vs SFT) | win vs SFT {p['win_rate_vs_sft']:.3f} "
          f"[{p['win_rate_ci95'][0]:.2f}, {p['win_rate_ci95'][1]:.2f}] ties {p['tie_rate_vs_sft']:.2f} | "
          f"RM {p['rm_score']:+.3f} | KL {p['kl_to_sft']:.2f} | ptx val loss {p['pretrain_val_loss']:.4f} | "
          f"benchmark {p.get('benchmark_accuracy', float('nan')):.3f} | {time.time() - t0:.0f}s")
if temperatures:   # the best temperature by gold on these prompts: the baseline's most favourable choice
    by_t = {t: f"sft_T{t:g}" for t in temperatures} | ({cfg["temperature"]: "sft"} if "sft" in report["policies"] else {})
    row = lambda t: {**report["policies"], **report["references"]}[by_t[t]]   # noqa: E731
    best_t = max(by_t, key=lambda t: row(t)["gold_score"])
    report["references"]["sft_best_T"] = {**row(best_t), "temperature": best_t}
    samples["sft_best_T"] = samples[by_t[best_t]]

rm_summary_path = os.path.join(cfg["out"], "rm", "summary.json")
rm_summary = json.load(open(rm_summary_path)) if os.path.exists(rm_summary_path) else {}
report["reward_model"] = {"val_accuracy": rm_summary.get("val_accuracy"), "gold_accuracy": rm_summary.get("gold_accuracy"),
                          "labeler_agreement": rm_summary.get("labeler_agreement"),
                          "labeler_gold_accuracy": rm_summary.get("labeler_gold_accuracy")}
if rank != 0:   # torchrun: rank 0 alone writes
    raise SystemExit(0)
times_path = os.path.join(cfg["out"], "wall_times.json")
wall = json.load(open(times_path)) if os.path.exists(times_path) else {}
wall["evaluate"] = time.time() - t_start
wall["total"] = sum(v for k, v in wall.items() if k != "total")
report["wall_time_s"] = wall
json.dump(report, open(os.path.join(eval_dir, "report.json"), "w"), indent=2)
json.dump({"prompts": prompts, "sft_baseline": by_prompt(baseline["texts"]), **samples},
          open(os.path.join(eval_dir, "samples.json"), "w"), indent=1)

# ----------------------------------------------------------------------------- plots
def read_metrics(run):
    path = os.path.join(cfg["out"], run, "metrics.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def curve(ax, rows, key, label):
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if pts:
        ax.plot(*zip(*pts), label=label, marker="." if len(pts) < 30 else None)


fig, axes = plt.subplots(2, 2, figsize=(11, 8))
for ax, run, keys, title in ((axes[0, 0], "base", ("loss", "val_loss"), "stage 0: pretraining (LM loss)"),
                             (axes[0, 1], "sft", ("loss", "val_loss"), "stage 1: SFT (response-token loss)"),
                             (axes[1, 0], "rm", ("loss", "val_loss", "val_accuracy", "gold_accuracy"), "stage 2: reward model"),
                             (axes[1, 1], "ppo_ptx", ("rm_score", "kl", "gold", "ptx_loss"), "stage 3: PPO-ptx")):
    rows = read_metrics(run)
    for k in keys:
        curve(ax, rows, k, k)
    ax.set_title(title), ax.set_xlabel("step / iteration"), ax.legend(), ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(eval_dir, "training_curves.png"), dpi=110)

fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for run in ("ppo", "ppo_ptx"):
    rows = read_metrics(run)
    curve(axes[0], rows, "rm_score", f"{run}: RM score")
    curve(axes[1], rows, "gold", f"{run}: gold score")
axes[0].set_title("reward-model score of the rollouts (what PPO optimises)")
axes[1].set_title("gold score of the rollouts (what we want)")
for ax in axes:
    ax.set_xlabel("PPO iteration"), ax.legend(), ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(os.path.join(eval_dir, "ppo_rm_vs_gold.png"), dpi=110)

fig, ax = plt.subplots(figsize=(9, 4))
groups = sorted(set(aims)) + ["all"]
others = [n for n in names if n != "sft"]
for j, n in enumerate(others):
    p = report["policies"][n]
    vals = [p["win_rate_by_aim"][a] for a in groups[:-1]] + [p["win_rate_vs_sft"]]
    ax.bar([i + j / (len(others) + 1) for i in range(len(groups))], vals, width=1 / (len(others) + 1), label=n)
ax.axhline(0.5, color="gray", ls="--", lw=1)
ax.set_xticks([i + (len(others) - 1) / (2 * (len(others) + 1)) for i in range(len(groups))], groups)
ax.set_ylabel("win rate vs SFT (non-tied pairs)"), ax.set_ylim(0, 1), ax.legend(), ax.set_title("win rate against SFT by aim")
fig.tight_layout()
fig.savefig(os.path.join(eval_dir, "win_rates.png"), dpi=110)

# ----------------------------------------------------------------------------- report.md
P = {**report["policies"], **report["references"]}
rows = names + list(report["references"])
lines = ["| policy | gold score | gold - SFT's [95% CI] | win rate vs SFT [95% CI] | ties | ties as half [95% CI] | "
         "RM score | KL to SFT | benchmark [95% CI] | pretrain val loss |",
         "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
interval = lambda v, ci: f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"  # noqa: E731
for n in rows:
    p = P[n]
    ci = "[{:+.3f}, {:+.3f}]".format(*p["gold_vs_sft_ci95"]) if p["gold_vs_sft_ci95"] else "(one prompt)"
    bench = interval(p["benchmark_accuracy"], p["benchmark_accuracy_ci95"]) if "benchmark_accuracy" in p else "n/a"
    name = f"{n} (T={p['temperature']:g})" if "temperature" in p else n
    lines.append(f"| {name} | {p['gold_score']:.3f} | {p['gold_vs_sft']:+.3f} {ci} | "
                 f"{interval(p['win_rate_vs_sft'], p['win_rate_ci95'])} | {p['tie_rate_vs_sft']:.2f} | "
                 f"{interval(p['win_rate_ties_half'], p['win_rate_ties_half_ci95'])} | {p['rm_score']:+.3f} | "
                 f"{p['kl_to_sft']:.2f} | {bench} | {p['pretrain_val_loss']:.4f} |")
fams = sorted(set(families))
lines += ["", "| policy | " + " | ".join(fams) + " |", "| --- |" + " --- |" * len(fams)]
lines += [f"| {n} | " + " | ".join(f"{P[n]['gold_by_family'][f]:.3f}" for f in fams) + " |" for n in rows]
rmr = report["reward_model"]
fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
lines += ["", f"Reward model: val accuracy vs labelers {fmt(rmr['val_accuracy'])} (paper: 0.724), vs gold "
          f"{fmt(rmr['gold_accuracy'])}; labelers vs each other {fmt(rmr['labeler_agreement'])} (paper: 0.726), "
          f"labelers vs gold {fmt(rmr['labeler_gold_accuracy'])}.",
          "", "References are not policies: SFT sampled at temperature T with no training (sft_T*; its KL is to SFT "
          f"at temperature {cfg['temperature']:g}), the best of those by gold on these prompts (sft_best_T), and of n SFT "
          "samples the one the reward model scores highest (sft_best_of_n; its KL is the bound log n - (n - 1) / n).",
          "", "Wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in wall.items())]
table = "\n".join(lines)
open(os.path.join(eval_dir, "report.md"), "w").write("# nanoinstruct evaluation\n\n" + table + "\n\n"
                                                     "![curves](training_curves.png)\n![ppo](ppo_rm_vs_gold.png)\n![win](win_rates.png)\n")
print("\n" + table)
print(f"\nwrote {eval_dir}/report.json, report.md, samples.json, training_curves.png, ppo_rm_vs_gold.png, win_rates.png")
