"""Stage 3: PPO against the reward model, with the pretraining mix (PPO-ptx).

Paper section 3.5, "Reinforcement learning (RL)", eq. 2: maximise
    objective(phi) = E_{(x,y) ~ pi_RL}[ r_theta(x, y) - beta * log(pi_RL(y|x) / pi_SFT(y|x)) ]
                     + gamma * E_{x ~ D_pretrain}[ log pi_RL(x) ]
with PPO (Schulman et al. 2017). Four models: the policy and the frozen reference, both from the
SFT checkpoint; the frozen reward model (normalised so demonstrations score 0); and a value model
initialised from the reward model, with its own optimiser. Dropout is off in all four.
The KL penalty is charged per token, the RM score lands on the last real response token
(its end-of-text), and gamma = ptx_coef mixes in the pretraining LM loss at every optimisation
step; ptx_coef = 0 is plain "PPO" in the paper's terms.

Each iteration: 1 rollout, 2 score with the RM, 3 KL to the SFT reference, 4 advantages (GAE),
5 PPO epochs over minibatches, 6 the ptx term inside each step, 7 log and checkpoint.

Deviations: the paper's batch is 512 prompts with 64-sample minibatches, one inner epoch, 256k
episodes, beta 0.02, gamma 27.8 (configs/paper_ppo.py). The default preset fits a few CPU
minutes: 25 iterations of 64 rollouts, two epochs of 32-sample minibatches, and beta 0.1: at
0.02 the policy drifted far enough from SFT to exploit the small RM (its score rose while the
gold score fell), and on the default world the rollouts' gold score peaks near iteration 25 and
then falls while the RM score keeps rising (45 iterations: gold 0.57 -> 0.68 at 20-25 -> 0.62;
README). ptx_coef is 0.2 with
per-token mean losses on both sides (the paper's 27.8 belongs to its own loss scaling): at 1.0
the pretraining gradient pulled the policy off its SFT behaviour (it began to refuse benign
requests), while 0.2 already undoes the alignment tax. Old
log-probs come from the sampler (no extra forward pass); the same temperature divides the
logits for old, new and reference log-probs.

  CPU (default world, ~4 min):   python train_ppo.py                # PPO-ptx
                                 python train_ppo.py --ptx_coef=0 --out_dir=out/ppo   # plain PPO
  GPT-2 on HH-RLHF (GPU):        python train_ppo.py --config=configs/gpt2_hh_ppo.py
  N GPUs (or CPU processes):     torchrun --nproc_per_node=N train_ppo.py   # rollouts split; the 1-process run
"""
import importlib
import os
import random
import time

import torch

from nanoinstruct import common, ddp, rlhf
from nanoinstruct.data import lm_batch, open_tokens, read_jsonl
from nanoinstruct.model import generate, last_token_scores, position_ids, response_logits
from nanoinstruct.tokenizer import decode_response, encode_prompt

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/ppo_ptx",
    init_from="out/sft",      # the policy and the frozen reference (pi_SFT); or resume (out_dir's run)
    reward_model="out/rm",    # frozen r_theta; the value model starts from it (paper)
    tokenizer="",             # "" = the one the SFT checkpoint carries; else gpt2 or a .tiktoken file
    prompts_file="data/world/prompts_ppo.jsonl",   # the RL prompts, {"prompt"} per line
    ptx_bin="data/world/train.bin",             # the pretraining distribution D_pretrain
    gold_fn="nanoinstruct.world:gold_score",    # "" off; logs the rollouts' gold score (default world)
    device="auto", dtype="auto", compile=False, seed=1337,
    cuda_graph=True,          # on CUDA, rollouts replay one captured decode step per token
    iterations=25,            # PPO iterations: rollout, score, advantages, update
    rollout_batch=64,         # prompts sampled (one response each) per iteration
    minibatch_size=32,        # rollouts per PPO optimisation step
    ppo_epochs=2,             # passes over each iteration's rollouts
    lr=3e-5,                  # the policy's learning rate (constant)
    value_lr=1e-4,            # the value model's, on its own optimiser
    weight_decay=0.0, grad_clip=1.0,
    temperature=1.0,          # rollout temperature; the same divides old, new and reference logits
    max_new_tokens=48,        # most tokens per rollout response
    no_eot_score=-2.0,        # the score of a response that never ends, in place of the RM's (rlhf.NO_EOT_SCORE)
    kl_coef=0.1,              # beta, the per-token KL penalty to pi_SFT (paper 0.02)
    adaptive_kl=False, target_kl=6.0, kl_horizon=10000,   # adapt beta toward target_kl per response (Ziegler et al. 2019)
    gamma=1.0, lam=0.95,      # GAE's discount and lambda
    clip_eps=0.2, value_clip_eps=0.2,   # PPO's clip range for the policy ratio and the value change
    whiten=True,              # whiten the advantages per batch (False: an ablation, see the assignment)
    ptx_coef=0.2,             # gamma of eq. 2, the pretraining-loss weight (paper: 27.8); 0 = plain PPO
    ptx_batch_size=8, ptx_block_size=128,   # the pretraining batch of each step: windows x tokens
    log_samples=2,            # rollouts shown per iteration
    ckpt_interval=10,         # a checkpoint every N iterations, for --init_from=resume (0: at the end only)
    stop_step=-1,             # stop (with a checkpoint) after this iteration, as if preempted; -1: never
)
cfg = common.get_config(defaults)
resume = cfg["init_from"] == "resume"
if resume:   # the saved run's settings (its SFT and RM included), with the command line's changes on top
    resume_ckpt, cfg = common.resume_config(cfg, defaults)
common.check_settings(cfg, positive=("iterations", "rollout_batch", "minibatch_size", "ppo_epochs", "lr", "value_lr",
                                     "max_new_tokens", "ptx_batch_size", "ptx_block_size", "kl_horizon"),
                      non_negative=("weight_decay", "grad_clip", "temperature", "kl_coef", "ptx_coef", "clip_eps",
                                    "value_clip_eps", "log_samples", "ckpt_interval"))
if cfg["minibatch_size"] > cfg["rollout_batch"]:
    common.die(f"--minibatch_size={cfg['minibatch_size']}: more than --rollout_batch={cfg['rollout_batch']}")

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rank, world = ddp.init_distributed(device)   # (0, 1) without torchrun
for k in ("rollout_batch", "ptx_batch_size"):
    if cfg[k] % world:
        common.die(f"--{k}={cfg[k]}: must be a multiple of the {world} processes (each takes its share)")
rng = random.Random(cfg["seed"])
# torchrun: every process holds the same streams and takes its share of what it draws (the
# sampling noise of the whole rollout batch, the minibatches' permutation from torch's default
# generator, the ptx windows), so N processes run the one-process run, to float rounding
sample_gen = torch.Generator(device).manual_seed(cfg["seed"])
ptx_gen = torch.Generator().manual_seed(cfg["seed"] + 1)

# ----------------------------------------------------------------------------- models
policy, sft_ckpt = common.load_model(cfg["out_dir"] if resume else cfg["init_from"], device,
                                     partial_ok=resume, dropout=0.0)
ref_policy, _ = common.load_model(cfg["init_from"], device, dropout=0.0, verbose=False)
reward_model, rm_ckpt = common.load_model(cfg["reward_model"], device, dropout=0.0, scalar_head=True, verbose=False)
common.expect_reward_model(cfg["reward_model"], rm_ckpt)
value_model, _ = common.load_model(cfg["reward_model"], device, dropout=0.0, scalar_head=True, verbose=False)
for m in (ref_policy, reward_model):
    m.requires_grad_(False).eval()
policy.train(), value_model.train()   # dropout is 0, so train() only matters for compile's graphs
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], sft_ckpt)
cfg["tokenizer"] = cfg["tokenizer"] or tok_spec["name"]
common.print_config(cfg)
block = policy.config.block_size
try:
    gold_score = getattr(importlib.import_module(cfg["gold_fn"].split(":")[0]), cfg["gold_fn"].split(":")[1]) \
        if cfg["gold_fn"] else None
except (ImportError, AttributeError, IndexError) as e:
    common.die(f"--gold_fn={cfg['gold_fn']}: expected module:function ({type(e).__name__}: {e})")

# ----------------------------------------------------------------------------- data
prompts = [r["prompt"] for r in read_jsonl(cfg["prompts_file"], "prompts")]
if not prompts:
    common.die(f"{cfg['prompts_file']}: no prompts in the file")
if cfg["max_new_tokens"] >= block:
    common.die(f"--max_new_tokens={cfg['max_new_tokens']}: leaves no room for the prompt in the context of {block}")
ptx_tokens = open_tokens(cfg["ptx_bin"], cfg["ptx_block_size"], policy.config.vocab_size) if cfg["ptx_coef"] > 0 else None
print(f"{len(prompts)} prompts; {cfg['iterations']} iterations x {cfg['rollout_batch']} rollouts")

optimizer = common.make_optimizer(policy, cfg["lr"], cfg["weight_decay"], (0.9, 0.95), device)
value_optimizer = common.make_optimizer(value_model, cfg["value_lr"], cfg["weight_decay"], (0.9, 0.95), device)
order, cursor, kl_coef, start = list(range(len(prompts))), len(prompts), cfg["kl_coef"], 0
if resume:   # continue exactly: both models and optimisers, beta, the prompt order and cursor, every RNG
    value_model.load_state_dict(resume_ckpt["value"]["model"])
    optimizer.load_state_dict(resume_ckpt["optimizer"])
    value_optimizer.load_state_dict(resume_ckpt["value"]["optimizer"])
    common.restore_rng(resume_ckpt["rng"], shuffle=rng, sample=sample_gen, ptx=ptx_gen)
    order, cursor, kl_coef, start = resume_ckpt["order"], resume_ckpt["cursor"], resume_ckpt["kl_coef"], resume_ckpt["step"] + 1
train_policy, train_value = common.maybe_compile(policy, cfg), common.maybe_compile(value_model, cfg)


def ptx_loss():
    """The pretraining LM loss on a fresh batch of D_pretrain (eq. 2's gamma term, as a loss).
    torchrun: every process draws the whole batch (one data order) and takes its share."""
    x, y = lm_batch(ptx_tokens, cfg["ptx_batch_size"], cfg["ptx_block_size"], ptx_gen, device)
    if world > 1:
        x, y = ddp.shard(x, rank, world), ddp.shard(y, rank, world)
    return rlhf.ptx_loss(train_policy.lm_logits(train_policy(x)), y)


def global_mean_var(x, mask):
    """torchrun: the masked mean and unbiased variance of x over the tokens of all processes (the
    statistics rlhf.whiten and rlhf.explained_variance take over one process's batch)."""
    n, total = ddp.all_sum(mask.sum(), torch.where(mask, x, 0.0).sum(), device=device)
    mean = total / n
    sq = ddp.all_sum(torch.where(mask, (x - mean) ** 2, 0.0).sum(), device=device)
    return mean, sq / max(n - 1, 1)


def global_mean(x, weight):
    """torchrun: a per-process mean made the global one (weight: this process's share of the count)."""
    return ddp.all_sum(float(x) * weight, device=device) if world > 1 else float(x)


def response_values(model, tokens, mask, Tp):
    """V(state before each response token): (B, Tn), read where response_logits reads."""
    return model.scores(model(tokens, attn_mask=mask, pos=position_ids(mask), read=slice(Tp - 1, -1)))


def save(it, finished):
    """Everything a resume needs in one atomic file: policy, value model, optimisers, beta, RNGs."""
    value = {"model": value_model.state_dict(), "optimizer": value_optimizer.state_dict()}
    common.save_run(cfg["out_dir"], cfg, policy, it, optimizer, tokenizer=tok_spec, finished=finished, kl_coef=kl_coef, value=value,
                    order=order, cursor=cursor, rng=common.rng_state(shuffle=rng, sample=sample_gen, ptx=ptx_gen))


# ----------------------------------------------------------------------------- loop
common.lock_out_dir(cfg["out_dir"])
log = common.MetricsLog(cfg["out_dir"], cfg["iterations"], resume_step=start - 1 if resume else None)
t0, it = time.time(), start - 1
for it in range(start, cfg["iterations"]):
    # 1. rollout: sample responses from the current policy (KV cache, stop at end-of-text)
    if cursor + cfg["rollout_batch"] > len(order):
        rng.shuffle(order)
        cursor = 0
    batch_prompts = [prompts[i] for i in order[cursor:cursor + cfg["rollout_batch"]]]
    batch_prompts = ddp.shard(batch_prompts, rank, world)       # torchrun: this process's share
    cursor += cfg["rollout_batch"]
    prompt_ids = [encode_prompt(enc, p)[-(block - cfg["max_new_tokens"]):] for p in batch_prompts]
    with ctx:
        tokens, prompt_mask, logprobs, mask = generate(policy, prompt_ids, cfg["max_new_tokens"], enc.eot_token,
                                                       temperature=cfg["temperature"], generator=sample_gen,
                                                       cuda_graph=cfg["cuda_graph"], shard=(rank, world),
                                                       all_done=lambda done: ddp.all_true(done.all(), device))
    Tp = prompt_mask.size(1)
    full_mask = torch.cat([prompt_mask, mask], 1)                 # (B, Tp+Tn) real tokens
    n_real = mask.sum(1)                                          # (B,) response lengths
    ended = (tokens[:, Tp:] == enc.eot_token).any(1)              # (B,) said end-of-text

    with torch.no_grad(), ctx:
        # 2. score: r_theta read at the response's end-of-text; a fixed penalty if it never ended
        scores = last_token_scores(reward_model, tokens, Tp + n_real - 1, full_mask)   # (B,)
        scores = rlhf.penalize_unended(scores, ended, cfg["no_eot_score"])
        # 3. KL to the SFT reference: log pi_SFT of the sampled tokens, same temperature
        ref_logits = response_logits(ref_policy, tokens, full_mask, Tp, cfg["temperature"])   # (B, Tn, V)
        ref_logprobs = rlhf.logprobs_from_logits(ref_logits, tokens[:, Tp:])
        values = response_values(value_model, tokens, full_mask, Tp)      # (B, Tn) old values
    # 4. advantages: per-token KL-penalised rewards, GAE over response tokens, whitening
    rewards, kl = rlhf.kl_penalized_rewards(logprobs, ref_logprobs, mask, scores, kl_coef)
    advantages, returns = rlhf.gae(rewards, values, mask, cfg["gamma"], cfg["lam"])
    if cfg["whiten"] and world == 1:
        advantages = rlhf.whiten(advantages, mask)
    elif cfg["whiten"]:   # whitened over the global batch, as one process would
        adv_mean, adv_var = global_mean_var(advantages, mask)
        advantages = torch.where(mask, (advantages - adv_mean) * (adv_var + 1e-8) ** -0.5, 0.0)
    common.check_finite(it, rm_score=scores.mean(), kl=kl.sum(1).mean())   # the divergence guard

    # 5. PPO epochs over minibatches: clipped surrogate for the policy, clipped value loss
    stats = {k: [] for k in ("policy_loss", "value_loss", "clip_frac", "value_clip_frac", "approx_kl", "entropy", "ptx_loss")}
    B = tokens.size(0)   # this process's rollouts: rows rank, rank + world, ... of the global batch
    minibatches = [mb for _ in range(cfg["ppo_epochs"]) for mb in
                   torch.randperm(cfg["rollout_batch"], device=device).split(cfg["minibatch_size"])]
    for mb in minibatches:   # global row ids; torchrun: this process takes its own (any number, maybe none)
        if world > 1:
            mine = mb[mb % world == rank] // world
            n_mine = len(mine)   # none: a stand-in row weighted 0, so that the collectives still meet
            mb = mine if n_mine else torch.zeros(1, dtype=torch.long, device=device)
        b_tokens, b_mask, b_full = tokens[mb], mask[mb], full_mask[mb]
        with ctx:
            logits = response_logits(train_policy, b_tokens, b_full, Tp, cfg["temperature"])   # (b, Tn, V)
            new_logprobs = rlhf.logprobs_from_logits(logits, b_tokens[:, Tp:])
            pg_loss, clip_frac, approx_kl = rlhf.policy_loss(new_logprobs, logprobs[mb], advantages[mb], b_mask, cfg["clip_eps"])
            # 6. ptx: + gamma * (LM loss on a pretraining batch), in the same step (eq. 2's second term)
            ptx = ptx_loss() if cfg["ptx_coef"] > 0 else torch.zeros((), device=device)
        if world > 1:   # each process's means weighted by its share of the minibatch's tokens, so
            n_tok = b_mask.sum().item() if n_mine else 0   # that the summed gradients are the global ones
            w = n_tok / ddp.all_sum(n_tok, device=device)
            (w * pg_loss + cfg["ptx_coef"] * ptx / world).backward()
        else:
            w = 1.0
            (pg_loss + cfg["ptx_coef"] * ptx).backward()
        ddp.sum_grads(policy)
        grad_norm = torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg["grad_clip"])
        common.check_finite(it, policy_loss=pg_loss, ptx_loss=ptx, grad_norm=grad_norm)   # the divergence guard
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        with ctx:
            new_values = response_values(train_value, b_tokens, b_full, Tp)
        v_loss, v_clip = rlhf.value_loss(new_values, values[mb], returns[mb], b_mask, cfg["value_clip_eps"])
        (w * v_loss if world > 1 else v_loss).backward()
        ddp.sum_grads(value_model)
        value_grad_norm = torch.nn.utils.clip_grad_norm_(value_model.parameters(), cfg["grad_clip"])
        common.check_finite(it, value_loss=v_loss, value_grad_norm=value_grad_norm)
        value_optimizer.step()
        value_optimizer.zero_grad(set_to_none=True)
        entropy = rlhf.masked_mean(rlhf.entropy_from_logits(logits.detach()), b_mask)
        for k, v in (("policy_loss", pg_loss), ("value_loss", v_loss), ("clip_frac", clip_frac), ("ptx_loss", ptx),
                     ("value_clip_frac", v_clip), ("approx_kl", approx_kl), ("entropy", entropy)):
            stats[k].append(global_mean(v.item(), 1 / world if k == "ptx_loss" else w))

    # 7. log and checkpoint
    seq_kl = global_mean(kl.sum(1).mean().item(), 1 / world)       # KL(pi || pi_SFT) per response, nats
    if cfg["adaptive_kl"]:
        kl_coef = rlhf.adaptive_kl_coef(kl_coef, seq_kl, cfg["target_kl"], cfg["kl_horizon"], cfg["rollout_batch"])
    texts = [decode_response(enc, t) for t in tokens[:, Tp:].tolist()]
    metrics = {"rm_score": global_mean(scores.mean().item(), 1 / world), "kl": seq_kl, "kl_coef": kl_coef,
               **{k: sum(v) / len(v) for k, v in stats.items() if v},
               "explained_var": rlhf.explained_variance(values, returns, mask) if world == 1 else
               1 - global_mean_var(returns - values, mask)[1] / (global_mean_var(returns, mask)[1] or float("nan")),
               "response_len": global_mean(n_real.float().mean().item(), 1 / world),
               "no_eot_frac": global_mean((~ended).float().mean().item(), 1 / world)}
    if gold_score:
        metrics["gold"] = global_mean(sum(gold_score(p, t, ended=e) for p, (t, e) in zip(batch_prompts, texts)) / B, 1 / world)
    log.log(it, tokens=int(full_mask.sum()), **metrics)
    for p, (t, e) in list(zip(batch_prompts, texts))[:cfg["log_samples"]]:
        print(f"  {p[-100:]!r} -> {t!r}{'' if e else ' [no end-of-text]'}")
    last = it == cfg["iterations"] - 1
    common.mid_run_checkpoint(it, last, cfg, lambda: save(it, finished=False), unit="iteration")

# ----------------------------------------------------------------------------- save
save(cfg["iterations"] - 1, finished=True)
common.save_run(os.path.join(cfg["out_dir"], "value"), cfg, value_model, cfg["iterations"] - 1, value_optimizer,
                tokenizer=tok_spec)
common.write_json(os.path.join(cfg["out_dir"], "summary.json"), {"wall_time_s": time.time() - t0})
print(common.summary_line("ppo_ptx" if cfg["ptx_coef"] > 0 else "ppo", time.time() - t0, os.path.join(cfg["out_dir"], "ckpt.pt"), iterations=cfg["iterations"],
                          **{k: log.last[k] for k in ("rm_score", "kl", "gold") if k in log.last}))
