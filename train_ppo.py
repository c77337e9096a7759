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
"""
import importlib
import json
import os
import random
import time

import torch

from nanoinstruct import common, rlhf
from nanoinstruct.data import lm_batch, open_tokens, read_jsonl
from nanoinstruct.model import generate, last_token_scores, position_ids, response_logits
from nanoinstruct.tokenizer import decode_response, encode_prompt

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/ppo_ptx",
    init_from="out/sft",      # the policy and the frozen reference (pi_SFT)
    reward_model="out/rm",    # frozen r_theta; the value model starts from it (paper)
    tokenizer="",             # "" = the one the SFT checkpoint carries; else gpt2 or a .tiktoken file
    prompts_file="data/world/prompts_ppo.jsonl",   # the RL prompts, {"prompt"} per line
    ptx_bin="data/world/train.bin",             # the pretraining distribution D_pretrain
    gold_fn="nanoinstruct.world:gold_score",    # "" off; logs the rollouts' gold score (default world)
    device="auto", dtype="auto", compile=False, seed=1337,
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
    ckpt_interval=0,          # also checkpoint the policy every this many iterations (0: at the end only)
)
cfg = common.get_config(defaults)

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rng = random.Random(cfg["seed"])
sample_gen = torch.Generator(device).manual_seed(cfg["seed"])
ptx_gen = torch.Generator().manual_seed(cfg["seed"] + 1)

# ----------------------------------------------------------------------------- models
policy, sft_ckpt = common.load_model(cfg["init_from"], device, dropout=0.0)
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
gold_score = getattr(importlib.import_module(cfg["gold_fn"].split(":")[0]), cfg["gold_fn"].split(":")[1]) \
    if cfg["gold_fn"] else None

# ----------------------------------------------------------------------------- data
prompts = [r["prompt"] for r in read_jsonl(cfg["prompts_file"], "prompts")]
ptx_tokens = open_tokens(cfg["ptx_bin"]) if cfg["ptx_coef"] > 0 else None
print(f"{len(prompts)} prompts; {cfg['iterations']} iterations x {cfg['rollout_batch']} rollouts")

optimizer = common.make_optimizer(policy, cfg["lr"], cfg["weight_decay"], (0.9, 0.95), device)
value_optimizer = common.make_optimizer(value_model, cfg["value_lr"], cfg["weight_decay"], (0.9, 0.95), device)
train_policy, train_value = common.maybe_compile(policy, cfg), common.maybe_compile(value_model, cfg)


def ptx_loss():
    """The pretraining LM loss on a fresh batch of D_pretrain (eq. 2's gamma term, as a loss)."""
    x, y = lm_batch(ptx_tokens, cfg["ptx_batch_size"], cfg["ptx_block_size"], ptx_gen, device)
    return rlhf.ptx_loss(train_policy.lm_logits(train_policy(x)), y)


def response_values(model, tokens, mask, Tp):
    """V(state before each response token): (B, Tn), read where response_logits reads."""
    h = model(tokens, attn_mask=mask, pos=position_ids(mask))
    return model.scores(h[:, Tp - 1:-1])


# ----------------------------------------------------------------------------- loop
log = common.MetricsLog(cfg["out_dir"], cfg["iterations"])
order, cursor, kl_coef, t0 = list(range(len(prompts))), len(prompts), cfg["kl_coef"], time.time()
for it in range(cfg["iterations"]):
    # 1. rollout: sample responses from the current policy (KV cache, stop at end-of-text)
    if cursor + cfg["rollout_batch"] > len(order):
        rng.shuffle(order)
        cursor = 0
    batch_prompts = [prompts[i] for i in order[cursor:cursor + cfg["rollout_batch"]]]
    cursor += cfg["rollout_batch"]
    prompt_ids = [encode_prompt(enc, p)[-(block - cfg["max_new_tokens"]):] for p in batch_prompts]
    with ctx:
        tokens, prompt_mask, logprobs, mask = generate(policy, prompt_ids, cfg["max_new_tokens"], enc.eot_token,
                                                       temperature=cfg["temperature"], generator=sample_gen)
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
    if cfg["whiten"]:
        advantages = rlhf.whiten(advantages, mask)

    # 5. PPO epochs over minibatches: clipped surrogate for the policy, clipped value loss
    stats = {k: [] for k in ("policy_loss", "value_loss", "clip_frac", "value_clip_frac", "approx_kl", "entropy", "ptx_loss")}
    B = tokens.size(0)
    minibatches = [mb for _ in range(cfg["ppo_epochs"]) for mb in torch.randperm(B, device=device).split(cfg["minibatch_size"])]
    for mb in minibatches:
        b_tokens, b_mask, b_full = tokens[mb], mask[mb], full_mask[mb]
        with ctx:
            logits = response_logits(train_policy, b_tokens, b_full, Tp, cfg["temperature"])   # (b, Tn, V)
            new_logprobs = rlhf.logprobs_from_logits(logits, b_tokens[:, Tp:])
            pg_loss, clip_frac, approx_kl = rlhf.policy_loss(new_logprobs, logprobs[mb], advantages[mb], b_mask, cfg["clip_eps"])
            # 6. ptx: + gamma * (LM loss on a pretraining batch), in the same step (eq. 2's second term)
            ptx = ptx_loss() if cfg["ptx_coef"] > 0 else torch.zeros((), device=device)
        (pg_loss + cfg["ptx_coef"] * ptx).backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

        with ctx:
            new_values = response_values(train_value, b_tokens, b_full, Tp)
        v_loss, v_clip = rlhf.value_loss(new_values, values[mb], returns[mb], b_mask, cfg["value_clip_eps"])
        v_loss.backward()
        torch.nn.utils.clip_grad_norm_(value_model.parameters(), cfg["grad_clip"])
        value_optimizer.step()
        value_optimizer.zero_grad(set_to_none=True)
        entropy = rlhf.masked_mean(rlhf.entropy_from_logits(logits.detach()), b_mask)
        for k, v in (("policy_loss", pg_loss), ("value_loss", v_loss), ("clip_frac", clip_frac), ("ptx_loss", ptx),
                     ("value_clip_frac", v_clip), ("approx_kl", approx_kl), ("entropy", entropy)):
            stats[k].append(v.item())

    # 7. log and checkpoint
    seq_kl = kl.sum(1).mean().item()                              # KL(pi || pi_SFT) per response, nats
    if cfg["adaptive_kl"]:
        kl_coef = rlhf.adaptive_kl_coef(kl_coef, seq_kl, cfg["target_kl"], cfg["kl_horizon"], B)
    texts = [decode_response(enc, t) for t in tokens[:, Tp:].tolist()]
    metrics = {"rm_score": scores.mean().item(), "kl": seq_kl, "kl_coef": kl_coef,
               **{k: sum(v) / len(v) for k, v in stats.items() if v},
               "explained_var": rlhf.explained_variance(values, returns, mask),
               "response_len": n_real.float().mean().item(), "no_eot_frac": (~ended).float().mean().item()}
    if gold_score:
        metrics["gold"] = sum(gold_score(p, t, ended=e) for p, (t, e) in zip(batch_prompts, texts)) / B
    log.log(it, tokens=int(full_mask.sum()), **metrics)
    for p, (t, e) in list(zip(batch_prompts, texts))[:cfg["log_samples"]]:
        print(f"  {p[-100:]!r} -> {t!r}{'' if e else ' [no end-of-text]'}")
    if cfg["ckpt_interval"] and (it + 1) % cfg["ckpt_interval"] == 0:
        common.save_run(cfg["out_dir"], cfg, policy, it, optimizer, tokenizer=tok_spec)

# ----------------------------------------------------------------------------- save
common.save_run(cfg["out_dir"], cfg, policy, cfg["iterations"] - 1, optimizer, kl_coef=kl_coef, tokenizer=tok_spec)
common.save_run(os.path.join(cfg["out_dir"], "value"), cfg, value_model, cfg["iterations"] - 1, value_optimizer,
                tokenizer=tok_spec)
json.dump({"wall_time_s": time.time() - t0}, open(os.path.join(cfg["out_dir"], "summary.json"), "w"))
print(common.summary_line("ppo_ptx" if cfg["ptx_coef"] > 0 else "ppo", time.time() - t0, os.path.join(cfg["out_dir"], "ckpt.pt"), iterations=cfg["iterations"],
                          **{k: log.last[k] for k in ("rm_score", "kl", "gold") if k in log.last}))
