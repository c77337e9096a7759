"""DPO (Rafailov et al. 2023, "Direct Preference Optimization"): the one non-paper baseline.

Not a stage of InstructGPT, hence under experiments/: DPO trains the policy on the comparisons
directly, with no reward model and no PPO. Its loss (rlhf.dpo_loss) is the reward model's K-wise
loss (eq. 1) with r_theta(x, y) replaced by the policy's implicit reward
    h(x, y) = beta * log(pi(y|x) / pi_SFT(y|x)),
so it reads the same K-wise comparison files as train_rm.py, the same way: the K responses of a
prompt in one batch, each forwarded once, all C(K, 2) pairs formed from their K log-ratios. The
policy and the frozen reference pi_SFT both start from the SFT checkpoint (dropout off in both,
so h is exactly 0 before the first step). The checkpoint it writes is a policy like PPO's, for
evaluate.py (`--policies=...,dpo`) and sample.py.

Deviations: the paper's beta 0.1 to 0.5, lr 1e-6 and batch 64 are for models of billions of
parameters; here AdamW at PPO's learning rate (3e-5) with a short warm-up and cosine decay, one
epoch, batches of 8 prompts (~50 responses), as train_rm.py. The pairs of a ranking in the
Bradley-Terry form, not the paper's Plackett-Luce form (its App. A.3). Not tuned: the frontier
study (experiments/frontier.py) runs several betas.

  CPU (default world, after run.sh):  python experiments/dpo.py --init_from=out/sft --out_dir=out/dpo
                                      python evaluate.py --out=out --policies=sft,ppo,ppo_ptx,dpo
"""
import json
import math
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # the repo root
from nanoinstruct import common, rlhf  # noqa: E402
from nanoinstruct.data import drop_unended, encode_example, read_jsonl, sft_batch  # noqa: E402

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/dpo",
    init_from="out/sft",      # the policy and the frozen reference pi_SFT
    tokenizer="",             # "" = the SFT checkpoint's
    train_file="data/world/comparisons_train.jsonl",
    val_file="data/world/comparisons_val.jsonl",
    device="auto", dtype="auto", compile=False, seed=1337,
    beta=0.1,                 # DPO's beta: the KL strength of the objective it solves (paper 0.1 to 0.5)
    epochs=1, batch_size=8, lr=3e-5, min_lr_frac=0.1, warmup_steps=10, weight_decay=0.0,
    beta2=0.99, grad_clip=1.0,
    block_size=0,             # 0 = the model's context; longer examples are cut from the prompt's left
    max_train=0,              # use only the first N training prompts (0 = all)
    drop_unended=True,        # leave out responses that never emitted end-of-text, as train_rm.py does
    eval_interval=50, log_interval=10,
)
cfg = common.get_config(defaults)

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rng = random.Random(cfg["seed"])

# ----------------------------------------------------------------------------- models
policy, sft_ckpt = common.load_model(cfg["init_from"], device, dropout=0.0)
ref_policy, _ = common.load_model(cfg["init_from"], device, dropout=0.0, verbose=False)
ref_policy.requires_grad_(False).eval()
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], sft_ckpt)
cfg["tokenizer"] = cfg["tokenizer"] or tok_spec["name"]
common.print_config(cfg)
block = cfg["block_size"] or policy.config.block_size

# ----------------------------------------------------------------------------- data
train = read_jsonl(cfg["train_file"], "comparisons")
train = train[:cfg["max_train"]] if cfg["max_train"] else train
val = read_jsonl(cfg["val_file"], "comparisons")
if cfg["drop_unended"]:   # the RM never saw them either: the frontier compares the two on the same pairs
    (train, n_train, _), (val, n_val, _) = drop_unended(train), drop_unended(val)
    print(f"left out {n_train} train and {n_val} val responses that never ended")
for name, rows in (("train", train), ("val", val)):
    ks = [len(c["responses"]) for c in rows]
    print(f"{name}: {len(rows)} prompts, K = {min(ks)}..{max(ks)}, {sum(k * (k - 1) // 2 for k in ks)} comparisons")


def batch(rows):
    """The K responses of each prompt as rows of one SFT-style batch, laid out best to worst:
    x, y, mask (sum K, T) (mask: the response tokens, its end-of-text included), index (N, Kmax)
    the batch row of each prompt's k-th best response (-1 padding) and ranking (N, Kmax), 0..K-1
    then -1: the layout rlhf.dpo_loss takes."""
    examples, index = [], []
    for c in rows:
        index.append(list(range(len(examples), len(examples) + len(c["ranking"]))))
        examples += [encode_example(enc, c["prompt"], c["responses"][i], block)[:2] for i in c["ranking"]]
    x, y, mask = sft_batch(examples, enc.eot_token, device)
    kmax = max(len(r) for r in index)
    index = torch.tensor([r + [-1] * (kmax - len(r)) for r in index], device=device)
    ranking = torch.where(index >= 0, torch.arange(kmax, device=device), -1)
    return x, y, mask, index, ranking


def logps_of(model, x, y, mask, index):
    """log pi(y|x) of every response, laid out per prompt: (N, Kmax), padding slots finite."""
    with ctx:
        logits = model.lm_logits(model(x))                          # (sum K, T, V)
    return rlhf.sequence_logprobs(logits, y, mask)[index.clamp(min=0)]


def margins(h, ranking):
    """Implicit rewards of each prompt's best and worst response, and the mean h_w - h_l over its
    pairs (TRL's rewards/chosen, rewards/rejected, rewards/margins for K = 2): floats."""
    w, l, valid = rlhf.pairs_from_ranking(ranking)
    n_k = (ranking >= 0).sum(1)                                     # (N,) K of each prompt
    chosen = h[:, 0].mean().item()
    rejected = h.gather(1, (n_k - 1).unsqueeze(1)).mean().item()
    margin = torch.where(valid, h.gather(1, w) - h.gather(1, l), 0.0).sum().item() / valid.sum().item()
    return chosen, rejected, margin


@torch.no_grad()
def evaluate(rows):
    """DPO loss and the implicit reward's pairwise accuracy against the labelers, on `rows`."""
    policy.eval()
    loss_sum, correct, pairs = 0.0, 0, 0
    for i in range(0, len(rows), 2 * cfg["batch_size"]):
        chunk = rows[i:i + 2 * cfg["batch_size"]]
        x, y, mask, index, ranking = batch(chunk)
        loss, h = rlhf.dpo_loss(logps_of(policy, x, y, mask, index), logps_of(ref_policy, x, y, mask, index),
                                ranking, cfg["beta"])
        c, p = rlhf.ranking_accuracy(h, ranking)
        loss_sum, correct, pairs = loss_sum + loss.item() * len(chunk), correct + c.item(), pairs + p.item()
    policy.train()
    return {"val_loss": loss_sum / len(rows), "val_accuracy": correct / max(pairs, 1)}


# ----------------------------------------------------------------------------- train
optimizer = common.make_optimizer(policy, cfg["lr"], cfg["weight_decay"], (0.9, cfg["beta2"]), device)
train_policy = common.maybe_compile(policy, cfg)
steps_per_epoch = math.ceil(len(train) / cfg["batch_size"])
max_steps = cfg["epochs"] * steps_per_epoch
log = common.MetricsLog(cfg["out_dir"], max_steps)
print(f"before training: {evaluate(val)}")                       # loss log 2, accuracy ~0: h = 0 ties
t0, step, tokens_since_log = time.time(), 0, 0
policy.train()
for epoch in range(cfg["epochs"]):
    rng.shuffle(train)
    for i in range(0, len(train), cfg["batch_size"]):
        lr = common.cosine_lr(step, max_steps, cfg["lr"], cfg["warmup_steps"], cfg["min_lr_frac"])
        common.set_lr(optimizer, lr)
        x, y, mask, index, ranking = batch(train[i:i + cfg["batch_size"]])
        with torch.no_grad():
            ref_logps = logps_of(ref_policy, x, y, mask, index)     # (N, Kmax)
        loss, h = rlhf.dpo_loss(logps_of(train_policy, x, y, mask, index), ref_logps, ranking, cfg["beta"])
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_since_log += x.numel()

        last_step = step == max_steps - 1
        metrics = evaluate(val) if (step + 1) % cfg["eval_interval"] == 0 or last_step else {}
        if step % cfg["log_interval"] == 0 or metrics:
            c, p = rlhf.ranking_accuracy(h, ranking)
            chosen, rejected, margin = margins(h, ranking)
            log.log(step, tokens=tokens_since_log, loss=loss.item(), accuracy=c.item() / max(p.item(), 1),
                    reward_chosen=chosen, reward_rejected=rejected, reward_margin=margin,
                    lr=lr, grad_norm=grad_norm.item(), **metrics)
            tokens_since_log = 0
        step += 1

# ----------------------------------------------------------------------------- save
summary = {**evaluate(val), "beta": cfg["beta"], "steps": max_steps, "wall_time_s": time.time() - t0}
print("final:", json.dumps(summary))
common.save_run(cfg["out_dir"], cfg, policy, max_steps - 1, optimizer, summary=summary, tokenizer=tok_spec)
json.dump(summary, open(os.path.join(cfg["out_dir"], "summary.json"), "w"), indent=2)
print(f"done in {time.time() - t0:.1f}s; policy in {os.path.join(cfg['out_dir'], 'ckpt.pt')}")
