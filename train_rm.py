"""Stage 2: the reward model (RM), trained on labeler rankings with the K-wise ranking loss.

Paper section 3.5, "Reward modeling (RM)": the RM is the SFT model with its unembedding replaced
by a scalar output, read at the end of each response. Labelers rank K = 4..9 responses per
prompt, which gives C(K, 2) comparisons; all of them go into ONE batch element, so each of the K
responses is forwarded once (eq. 1):
    loss(theta) = -1/C(K,2) * E_{(x, y_w, y_l) ~ D}[ log sigmoid(r_theta(x, y_w) - r_theta(x, y_l)) ]
Shuffling the comparisons as independent pairs instead makes the RM overfit (each response is
then seen K-1 times in one epoch) and costs K-1 times more forward passes. Before RL, the RM's
bias is set so that the labelers' demonstrations get a mean reward of 0.
Pairwise and HH-RLHF files are the K = 2 case of the same code path.

Deviations: the paper's RM is a 6B GPT-3 trained 1 epoch; ours starts from the SFT model by
default (the paper mentions SFT init as the natural choice in sec. 3.5) and is as small as it.
A batch holds prompts of similar length (`group_batches`, data.length_grouped_order): a batch
computes every response at its longest sequence's length, so random batches of the default
world were 37% padding (27% grouped: 120 steps 48.4 -> 41.1 s back to back,
experiments/stage_speed.sh; val accuracy 0.699 grouped, 0.703 random on the same comparisons,
within its noise). Each prompt is still seen once per epoch.

  CPU (default world, ~2 min):  python train_rm.py
  GPT-2 on HH-RLHF (GPU):       python train_rm.py --config=configs/gpt2_hh_rm.py
  N GPUs (or CPU processes):    torchrun --nproc_per_node=N train_rm.py   # batch_size stays the global batch
"""
import json
import math
import os
import random
import time

import torch

from nanoinstruct import common, data, ddp
from nanoinstruct.data import comparison_batch, drop_unended, encode_example, pad_right, read_jsonl
from nanoinstruct.model import last_token_scores
from nanoinstruct.rlhf import pairs_from_ranking, ranking_accuracy, ranking_loss

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/rm",
    init_from="out/sft",      # paper: the RM starts from the SFT model, unembedding -> scalar head; or resume
    tokenizer="",             # "" = the one the init checkpoint carries; else gpt2 or a .tiktoken file
    train_file="data/world/comparisons_train.jsonl",   # rankings: K-wise, pairwise or HH-RLHF lines
    val_file="data/world/comparisons_val.jsonl",       # held-out rankings, for val_accuracy
    norm_file="data/world/demos_train.jsonl",   # demonstrations whose rewards are normalised to mean 0, std 1
    norm_samples=512,         # how many of them set it
    device="auto", dtype="auto", compile=False, seed=1337,
    epochs=1,
    batch_size=8,             # prompts per step, each with all K of its ranked responses
    lr=2e-4, min_lr_frac=0.1, warmup_steps=10, weight_decay=0.0,
    beta2=0.99, grad_clip=1.0, dropout=0.0,
    block_size=0,             # 0 = the model's context; longer examples are cut from the prompt's left
    max_train=0,              # use only the first N training prompts (0 = all)
    group_batches=8,          # batches of similar length from runs of this many (data.length_grouped_order; 1 = off)
    drop_unended=True,        # leave out responses that never emitted end-of-text (PPO never asks the RM about them)
    eval_interval=100, log_interval=10,   # an evaluation (all val comparisons) costs ~10 steps
    ckpt_interval=100,        # a checkpoint every N steps, for --init_from=resume
    stop_step=-1,             # stop (with a checkpoint) after this step, as if preempted; -1: never
)
cfg = common.get_config(defaults)
resume = cfg["init_from"] == "resume"
if resume:   # the saved run's settings, with what the command line changes on top
    resume_ckpt, cfg = common.resume_config(cfg, defaults)
    if resume_ckpt.get("finished", True):   # trained and normalised: nothing is left to do
        print(f"{cfg['out_dir']}: this run has finished; nothing to resume")
        raise SystemExit(0)
common.check_settings(cfg, positive=("epochs", "batch_size", "lr", "eval_interval", "log_interval", "norm_samples",
                                    "group_batches"),
                      non_negative=("warmup_steps", "weight_decay", "grad_clip", "min_lr_frac", "block_size",
                                    "max_train", "ckpt_interval"), fractions=("dropout",))

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rank, world = ddp.init_distributed(device)   # (0, 1) without torchrun
rng = random.Random(cfg["seed"])

# ----------------------------------------------------------------------------- models
model, init_ckpt = common.load_model(cfg["out_dir"] if resume else cfg["init_from"], device, partial_ok=resume,
                                     dropout=cfg["dropout"], scalar_head=True)
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], init_ckpt)
cfg["tokenizer"] = cfg["tokenizer"] or tok_spec["name"]
common.print_config(cfg)
block = cfg["block_size"] or model.config.block_size
if block > model.config.block_size:
    common.die(f"--block_size={block}: more than the model's context of {model.config.block_size}")

# ----------------------------------------------------------------------------- data
train = read_jsonl(cfg["train_file"], "comparisons")
train = train[:cfg["max_train"]] if cfg["max_train"] else train
val = read_jsonl(cfg["val_file"], "comparisons")
# the demonstrations whose scores set the normalisation, read before training so a bad file
# stops the run before it has cost anything
demos = read_jsonl(cfg["norm_file"], "demonstrations")
if not demos:
    common.die(f"{cfg['norm_file']}: no demonstrations to normalise the reward model on")
demos = random.Random(0).sample(demos, min(cfg["norm_samples"], len(demos)))
train, n_resp, n_prompts = drop_unended(train) if cfg["drop_unended"] else (train, 0, 0)
val, n_resp_val, n_prompts_val = drop_unended(val) if cfg["drop_unended"] else (val, 0, 0)
for name, rows, dropped in (("train", train, (n_resp, n_prompts)), ("val", val, (n_resp_val, n_prompts_val))):
    if not rows:
        common.die(f"{cfg[name + '_file']}: no comparisons left" + (f" once the {dropped[0]} responses that never "
                   "ended were left out (--drop_unended=False keeps them)" if dropped[0] else ""))
    data.warn_long_responses(enc, rows, block, cfg[name + "_file"])
    ks = [len(c["responses"]) for c in rows]
    print(f"{name}: {len(rows)} prompts, K = {min(ks)}..{max(ks)}, "
          f"{sum(k * (k - 1) // 2 for k in ks)} comparisons, {sum(ks)} responses"
          + (f" ({dropped[0]} responses that never ended and {dropped[1]} prompts left with < 2 dropped)"
             if dropped[0] else ""))
meta_path = os.path.join(os.path.dirname(cfg["val_file"]), "comparisons_meta.json")
meta = json.load(open(meta_path)) if os.path.exists(meta_path) else {}


def batches(rows, batch_size):
    """Comparison batches of `batch_size` prompts (all K responses of each), cuts counted."""
    for i in range(0, len(rows), batch_size):
        yield comparison_batch(rows[i:i + batch_size], enc, block, device)


def save(step, finished, **extra):
    common.save_run(cfg["out_dir"], cfg, model, step, optimizer, tokenizer=tok_spec, finished=finished, order=order,
                    train_cut=train_cut, rng=common.rng_state(shuffle=rng), **extra)


def rewards_of(m, x, last, rows):
    """r_theta at each response's last real token (its EOT), laid out per prompt best -> worst:
    rewards (N, Kmax) and the matching ranking (N, Kmax) = 0..K_n-1, -1 on padding."""
    r = last_token_scores(m, x, last)                              # (sum K,) read at the EOT
    ranking = torch.where(rows >= 0, torch.arange(rows.size(1), device=device), -1)
    return r[rows.clamp(min=0)], ranking                           # (N, Kmax) each


def gold_agreement(scores, gold, ranking):
    """Pairs (by the labelers' ranking) on which `scores` order the two responses as the gold
    score does, among pairs whose gold scores differ -> (n_agree, n_pairs)."""
    w, l, valid = pairs_from_ranking(ranking)
    gw, gl = gold.gather(1, w), gold.gather(1, l)
    keep = valid & ((gw - gl).abs() > 1e-6)                         # NaN (no gold) drops out too
    agree = (scores.gather(1, w) > scores.gather(1, l)) == (gw > gl)
    return (agree & keep).sum().item(), keep.sum().item()


@torch.no_grad()
def evaluate(rows):
    model.eval()
    loss_sum, correct, pairs, g_agree, g_pairs, lab_agree, n_cut = 0.0, 0, 0, 0, 0, 0, 0
    bs = 2 * cfg["batch_size"]
    for x, last, brows, gold, cut in common.progress(batches(rows, bs), "evaluation: batch", math.ceil(len(rows) / bs)):
        with ctx:
            rewards, ranking = rewards_of(model, x, last, brows)
        loss_sum += ranking_loss(rewards, ranking).item() * len(brows)
        c, p = ranking_accuracy(rewards, ranking)
        correct, pairs = correct + c.item(), pairs + p.item()
        gold = gold[brows.clamp(min=0)]
        a, n = gold_agreement(rewards, gold, ranking)
        g_agree, g_pairs = g_agree + a, g_pairs + n
        lab_agree += gold_agreement(-ranking.float(), gold, ranking)[0]   # the labelers themselves
        n_cut += cut
    model.train()
    out = {"val_loss": loss_sum / len(rows), "val_accuracy": correct / max(pairs, 1)}
    if g_pairs:
        out.update(gold_accuracy=g_agree / g_pairs, labeler_gold_accuracy=lab_agree / g_pairs)
    return out, n_cut


# ----------------------------------------------------------------------------- train
optimizer = common.make_optimizer(model, cfg["lr"], cfg["weight_decay"], (0.9, cfg["beta2"]), device)
train_model = common.maybe_compile(model, cfg)
steps_per_epoch = math.ceil(len(train) / cfg["batch_size"])
max_steps = cfg["epochs"] * steps_per_epoch
if len(train) - (steps_per_epoch - 1) * cfg["batch_size"] < world:
    common.die(f"--batch_size={cfg['batch_size']}: the last batch of an epoch would leave one of the {world} "
               f"processes without comparisons")
# a batch computes its longest sequence for every response: its length is the longest response's
lengths = [max(len(encode_example(enc, c["prompt"], t, block)[0]) for t in c["responses"]) for c in train]
order, start, train_cut = None, 0, 0
if resume:   # continue exactly: weights, optimizer moments, step, the data order, every RNG
    optimizer.load_state_dict(resume_ckpt["optimizer"])
    common.restore_rng(resume_ckpt["rng"], shuffle=rng)
    start, order, train_cut = resume_ckpt["step"] + 1, resume_ckpt["order"], resume_ckpt["train_cut"]
else:
    metrics, n_cut = evaluate(val)
    print("before training: " + "  ".join(f"{k} {common.fmt(v)}" for k, v in metrics.items())
          + (f"; {n_cut} val prompt tokens cut to fit {block}" if n_cut else ""))
if "labeler_agreement" in meta:
    print(f"labeler agreement (two independent labelers, same pairs): {meta['labeler_agreement']:.3f}")
common.lock_out_dir(cfg["out_dir"])
log = common.MetricsLog(cfg["out_dir"], max_steps, resume_step=start - 1 if resume else None)
t0, tokens_since_log, step = time.time(), 0, start - 1
model.train()
for step in range(start, max_steps):
    epoch, i = divmod(step, steps_per_epoch)
    if i == 0:   # a new epoch: a new order of the prompts
        order = data.length_grouped_order(lengths, cfg["batch_size"], cfg["group_batches"], rng)
    batch = [train[j] for j in order[i * cfg["batch_size"]:(i + 1) * cfg["batch_size"]]]
    mine = ddp.shard(batch, rank, world)   # torchrun: this process's prompts (all of them on one)
    x, last, rows, _, cut = comparison_batch(mine, enc, block, device)
    lr = common.cosine_lr(step, max_steps, cfg["lr"], cfg["warmup_steps"], cfg["min_lr_frac"])
    common.set_lr(optimizer, lr)
    with ctx:
        rewards, ranking = rewards_of(train_model, x, last, rows)
    loss = ranking_loss(rewards, ranking)
    if world > 1:   # the mean over the global batch's prompts: each process weighs its share
        loss = loss * len(mine) / len(batch)
    loss.backward()
    ddp.sum_grads(model)   # torchrun: the gradient of the whole global batch on every process
    if world > 1:
        loss = torch.tensor(ddp.all_sum(loss.item(), device=device))
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    common.check_finite(step, loss=loss, grad_norm=grad_norm)   # the divergence guard
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    c, p = ranking_accuracy(rewards.detach(), ranking)
    if world > 1:   # the global batch's accuracy and cuts
        c, p = (torch.tensor(v) for v in ddp.all_sum(c, p, device=device))
        cut = int(ddp.all_sum(cut, device=device))
    tokens_since_log += x.numel()
    train_cut += cut

    last_step = step == max_steps - 1
    metrics = evaluate(val)[0] if (step + 1) % cfg["eval_interval"] == 0 or last_step else {}
    common.check_finite(step, **metrics)
    if step % cfg["log_interval"] == 0 or metrics:
        log.log(step, tokens=tokens_since_log, loss=loss.item(), accuracy=c.item() / max(p.item(), 1),
                lr=lr, grad_norm=grad_norm.item(), **metrics)
        tokens_since_log = 0
    common.mid_run_checkpoint(step, last_step, cfg, lambda: save(step, finished=False))
if train_cut:
    print(f"{train_cut} training prompt tokens were cut (from the left) to fit {block}")

# ----------------------------------------------------------------------------- normalise
# Paper sec. 3.5: "we normalize the RM using a bias so that the labeler demonstrations achieve a
# mean score of 0 before doing RL". We also divide by the demonstrations' standard deviation, as
# lm-human-preferences normalises both the bias and the gain: PPO's value clip (0.2) and its
# no-end-of-text penalty are then in units of that spread, whatever scale training left.
# Both go into the scalar head, so every later user of the checkpoint (PPO, the value model's
# init, evaluation) gets normalised rewards for free.
@torch.no_grad()
def demo_rewards(demos):
    model.eval()
    out = []
    for i in common.progress(range(0, len(demos), 32), "normalisation: batch"):
        ex = [encode_example(enc, d["prompt"], d["response"], block)[0] for d in demos[i:i + 32]]
        x, lengths = pad_right(ex, enc.eot_token)
        x, lengths = x.to(device), lengths.to(device)
        with ctx:
            out.append(last_token_scores(model, x, lengths - 1).float())
    return torch.cat(out)


r = demo_rewards(demos)
mean, std = r.mean().item(), r.std().item()
model.score_head.weight.data /= std
model.score_head.bias.data = (model.score_head.bias.data - mean) / std
after = demo_rewards(demos)
print(f"reward normalisation: demonstrations' reward mean {mean:+.4f} -> {after.mean().item():+.4f}, "
      f"standard deviation {std:.4f} -> {after.std().item():.4f}")

# ----------------------------------------------------------------------------- save
final, _ = evaluate(val)
summary = {**final, "labeler_agreement": meta.get("labeler_agreement"), "demo_mean_reward": after.mean().item(),
           "demo_reward_std": after.std().item(), "bias_shift": -mean, "gain": 1 / std, "wall_time_s": time.time() - t0}
print("final: " + "  ".join(f"{k} {common.fmt(v)}" for k, v in summary.items()))
common.check_finite(step, **{k: v for k, v in summary.items() if isinstance(v, float)})
save(max_steps - 1, finished=True, reward_norm={"mean": mean, "std": std, "demo_mean": after.mean().item()}, summary=summary)
common.write_json(os.path.join(cfg["out_dir"], "summary.json"), summary)
print(common.summary_line("rm", time.time() - t0, os.path.join(cfg["out_dir"], "ckpt.pt"), steps=max_steps,
                          **{k: final[k] for k in ("val_accuracy", "gold_accuracy") if k in final}))
