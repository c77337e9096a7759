"""Benchmark: nanoinstruct's speed on the core InstructGPT workloads, timed exactly as the peer
harness ../shared/bench/peer_hf.py and peer_trl_ppo.py time Hugging Face transformers + TRL.

Same shape, same workloads, same repetitions: random weights, random tokens from [1, vocab),
seed 0, float32 and 2 threads by default; each figure is a median wall time after warm-up.
  train_tokens_per_s     forward + shifted cross-entropy + backward + AdamW, batch 8 x 256
  generate_tokens_per_s  generate() with KV cache, 16 prompts x 64 tokens, 64 new tokens
                         (temperature 1, no top-k/top-p); only the 16*64 new tokens count
  rm_pairs_per_s         scalar-head GPT, 8 (chosen, rejected) pairs x 256 tokens in one forward
                         of 16 sequences, reward at the last token, pairwise loss, AdamW
  ppo_iter_s             one PPO iteration as peer_trl_ppo.py: 16 prompts x 64 tokens, 64
                         sampled tokens, ref / value / reward forwards, KL-penalised rewards, GAE,
                         whitening, 1 epoch in 2 mini-batches of 8 (policy + value update each)
  ppo_rollout_s          its rollout: start of sampling -> first training forward
  ppo_generate_s         its sampling alone
How it differs from the peer, on purpose:
- No early stop: eot_id = vocab_size, an id the model can never sample (peer_trl_ppo.py gives its
  pad the same id). It is never embedded either: every prompt has the full length, so nothing is
  padded, and only sampled ids are fed back. (peer_hf.py suppresses EOS with min_new_tokens.)
- Policy and value model are separate GPTs with one AdamW each, both stepped once per mini-batch
  (TRL wraps the two in one module with one AdamW: the same arithmetic). The optimizers are ours
  (common.make_optimizer: weight decay on matrices only; fused on CUDA).
- Logits are computed only where the loss needs them (response positions in PPO; 255 of 256
  positions in training), and the last block runs only where its output is read (GPT.forward's
  read=: the reward model's last token, PPO's response positions): that is how our stage
  scripts do it.

  CPU (~1-2 min):  python bench.py --out=bench_cpu.json      # JSON on stdout, a line per workload on stderr
  GPU:             python bench.py --device=cuda --dtype=bfloat16 --compile=True
  GPT-2 124M:      python bench.py --device=cuda --dtype=bfloat16 --compile=True --gpt2=True --peer=True
  other shape:     python bench.py --n_layer=6 --n_embd=384 --only=train,generate
--peer=True also times Hugging Face transformers in the same process, when it is installed: a
GPT2LMHeadModel training step of the same shape, batch and dtype (compiled when --compile is), and
its generate() with KV cache on the same prompts; the JSON gets `peer_*` figures and our ratios.
--gpt2=True is GPT-2 124M (12 x 768, vocab 50257, context 1024) at the GPT-2 SFT preset's batch
32 x 512 (configs/gpt2_hh_sft.py), 64 prompts x 128 tokens + 128 new for generate.
The training line gives the MFU: (6N + 12 L C T) flops per token (nanoGPT's / PaLM's estimate; N
without position embeddings) x tokens/s, over the device's dense bf16 peak (PEAK_TFLOPS below, by
device name; --peak_tflops overrides; the JSON names the peak used). --compile=True compiles the
full-sequence forwards; on CUDA generate() replays one CUDA-graph decode step per token
(--cuda_graph=False: eager). `sdpa` says which attention kernel SDPA ran for each kind of call.
"""
import json
import os
import statistics
import sys
import time

import torch

from nanoinstruct import common
from nanoinstruct.model import GPT, GPTConfig, generate
from nanoinstruct.rlhf import (gae, kl_penalized_rewards, logprobs_from_logits, policy_loss, ptx_loss,
                               ranking_loss, value_loss, whiten)

# ----------------------------------------------------------------------------- config
defaults = dict(
    # model shape: the peer's flags and defaults
    n_layer=4, n_head=4, n_embd=256, vocab_size=8192, n_positions=256, dropout=0.0, threads=2,   # layers, heads, width, vocabulary, context, dropout, CPU threads
    # workloads
    batch=8, seq=256, gen_batch=16, prompt_len=64, new_tokens=64, mini_batch=8, kl_coef=0.05,   # train/RM batch x seq; generate/PPO prompts x prompt_len + new_tokens; PPO minibatch, beta
    # repetitions: warm-up / timed steps (train, rm), timed generate calls (after 1 warm-up), RL
    warmup=3, steps=10, gen_reps=3, rl_warmup=2, rl_iters=6,   # train/RM warm-up + timed steps; timed generate calls; PPO warm-up + timed iterations
    only="train,generate,rm,ppo",   # the workloads to time
    out="",                   # also write the JSON here
    device="cpu", dtype="float32", compile=False, seed=0,
    cuda_graph=True,          # on CUDA, generate() replays one CUDA-graph decode step per token
    peak_tflops=0.0,          # the accelerator's dense bf16 peak for MFU; 0: by device name (PEAK_TFLOPS)
    peer=False,               # also time Hugging Face transformers (train, generate) in this process
    gpt2=False,               # GPT-2 124M at the GPT-2 SFT preset's shapes (module docstring)
)
cfg = common.get_config(defaults)
if cfg["gpt2"]:
    cfg.update(n_layer=12, n_head=12, n_embd=768, vocab_size=50257, n_positions=1024, batch=32, seq=512,
               gen_batch=64, prompt_len=128, new_tokens=128, mini_batch=16)
# dense (no 2:4 sparsity) bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s
PEAK_TFLOPS = {"H200": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,   # plain "H100 80GB HBM3": SXM
               "GH200": 989.0, "B200": 2250.0, "A100": 312.0, "A10G": 70.0, "A10": 125.0, "L40S": 362.0,
               "L4": 121.0, "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0, "T4": 65.0}

# ----------------------------------------------------------------------------- setup
torch.set_num_threads(cfg["threads"])
device, ctx, dtype = common.setup(cfg)
V, B, T = cfg["vocab_size"], cfg["batch"], cfg["seq"]
G, Tp, Tn = cfg["gen_batch"], cfg["prompt_len"], cfg["new_tokens"]


def make_model(scalar_head=False):
    torch.manual_seed(cfg["seed"])   # each workload's figures do not depend on which ran before it
    arch = GPTConfig(block_size=cfg["n_positions"], vocab_size=V, n_layer=cfg["n_layer"], n_head=cfg["n_head"],
                     n_embd=cfg["n_embd"], dropout=cfg["dropout"], scalar_head=scalar_head)
    return GPT(arch, verbose=False).to(device)   # verbose would print to stdout, which is the JSON's


def rand_tokens(*shape):
    return torch.randint(1, V, shape, device=device)


def peak_flops():
    """(name, TFLOP/s) of the dense bf16 peak used for the MFU: --peak_tflops, else by device name."""
    if cfg["peak_tflops"] > 0:
        return "--peak_tflops", cfg["peak_tflops"]
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "cpu"
    for key, tflops in PEAK_TFLOPS.items():   # the most specific names come first
        if key in name:
            return f"{key} dense bf16", tflops
    return None, None


def train_flops_per_token(model, T):
    c = model.config
    n = sum(p.numel() for p in model.parameters()) - model.transformer.wpe.weight.numel()
    return 6 * n + 12 * c.n_layer * c.n_embd * T


def sync():
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def median_time(fn, warmup, reps):
    """fn run warmup times untimed, then reps times timed -> median wall time in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ----------------------------------------------------------------------------- workloads
def bench_train():
    model = make_model().train()
    fwd = common.maybe_compile(model, cfg)
    opt = common.make_optimizer(model, 1e-4, 0.1, device=device)
    x = rand_tokens(B, T)                                            # (B, T)

    def step():
        with ctx:
            loss = ptx_loss(model.lm_logits(fwd(x)[:, :-1]), x[:, 1:])   # shifted cross-entropy
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = median_time(step, cfg["warmup"], cfg["steps"])
    out = {"train_step_s": t, "train_tokens_per_s": B * T / t}
    peak_name, peak = peak_flops()
    if peak:
        out.update(train_mfu=train_flops_per_token(model, T) * out["train_tokens_per_s"] / (peak * 1e12),
                   peak_tflops=peak, peak_name=peak_name)
    if device.startswith("cuda"):
        out["train_peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    with ctx:   # the training forward (causal, no mask) and a padded one (PPO's, with a mask)
        mask = torch.ones(B, T, dtype=torch.bool, device=device)
        mask[:, :T // 4] = False
        out["sdpa"] = {"train": ",".join(common.sdpa_kernels(step)),
                       "padded": ",".join(common.sdpa_kernels(lambda: model(x, attn_mask=mask))),
                       "decode": ",".join(common.sdpa_kernels(lambda: generate(model, x[:2, :8].tolist(), 2, eot_id=V)))}
    return out


def bench_generate():
    model = make_model().eval()
    prompts = rand_tokens(G, Tp).tolist()
    g = torch.Generator(device).manual_seed(cfg["seed"])

    def gen():
        with ctx:
            tokens, _, _, response_mask = generate(model, prompts, Tn, eot_id=V, temperature=1.0, generator=g,
                                                   cuda_graph=cfg["cuda_graph"])
        assert tokens.shape == (G, Tp + Tn) and response_mask.all()   # no early stop

    t = median_time(gen, 1, cfg["gen_reps"])
    return {"generate_call_s": t, "generate_tokens_per_s": G * Tn / t}


def bench_rm():
    rm = make_model(scalar_head=True).train()
    fwd = common.maybe_compile(rm, cfg)
    opt = common.make_optimizer(rm, 1e-4, 0.1, device=device)
    both = rand_tokens(2 * B, T)             # rows 0..B-1 chosen, B..2B-1 rejected: one forward
    ranking = torch.tensor([[0, 1]], device=device).expand(B, 2)   # (B, 2) chosen beats rejected
    last = torch.full((2 * B,), T - 1, device=device)

    def step():
        with ctx:
            r = rm.scores(fwd(both, read=last))                  # (2B,) reward at the last token
        loss = ranking_loss(torch.stack([r[:B], r[B:]], 1), ranking)   # K=2: -logsigmoid(r_c - r_r).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t = median_time(step, cfg["warmup"], cfg["steps"])
    return {"rm_step_s": t, "rm_pairs_per_s": B / t}


def bench_ppo():
    policy, value_model = make_model().train(), make_model(scalar_head=True).train()
    ref_policy, reward_model = make_model().eval(), make_model(scalar_head=True).eval()
    ref_policy.load_state_dict(policy.state_dict())           # reference = the initial policy
    policy_fwd, value_fwd, ref_fwd, reward_fwd = (common.maybe_compile(m, cfg)
                                                  for m in (policy, value_model, ref_policy, reward_model))
    opt_policy = common.make_optimizer(policy, 1e-6, 0.0, device=device)
    opt_value = common.make_optimizer(value_model, 1e-6, 0.0, device=device)
    n_iter = cfg["rl_warmup"] + cfg["rl_iters"]
    all_prompts = torch.randint(1, V, (G * n_iter, Tp), generator=torch.Generator().manual_seed(0))
    g = torch.Generator(device).manual_seed(cfg["seed"])
    times = {"iter": [], "rollout": [], "generate": []}
    last, resp = torch.full((G,), Tp + Tn - 1, device=device), slice(Tp - 1, -1)   # what is read: the last token, the responses
    for it in range(n_iter):
        sync()
        t0 = time.perf_counter()
        # 1 rollout: the old log-probs come with the samples, no extra policy forward
        with ctx:
            tokens, _, logprobs, mask = generate(policy, all_prompts[it * G:(it + 1) * G].tolist(), Tn,
                                                 eot_id=V, temperature=1.0, generator=g, cuda_graph=cfg["cuda_graph"])
        assert mask.all()                                         # (G, Tn), no early stop
        sync()
        t_gen = time.perf_counter()
        responses = tokens[:, Tp:]                                # (G, Tn)
        with torch.no_grad(), ctx:
            # 2 score with the RM; 3 reference log-probs; values V(state before each response token)
            scores = reward_model.scores(reward_fwd(tokens, read=last))                            # (G,)
            ref_logprobs = logprobs_from_logits(ref_policy.lm_logits(ref_fwd(tokens, read=resp)), responses)
            values = value_model.scores(value_fwd(tokens, read=resp))                              # (G, Tn)
        # 4 KL-penalised per-token rewards, advantages, whitening
        rewards, kl = kl_penalized_rewards(logprobs, ref_logprobs, mask, scores, cfg["kl_coef"])
        advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
        advantages = whiten(advantages, mask)
        sync()
        t_rollout = time.perf_counter()
        # 5 one PPO epoch over shuffled mini-batches, one AdamW step on each model per mini-batch
        for mb in torch.randperm(G, device=device).split(cfg["mini_batch"]):
            with ctx:
                mb_logprobs = logprobs_from_logits(policy.lm_logits(policy_fwd(tokens[mb], read=resp)), responses[mb])
                mb_values = value_model.scores(value_fwd(tokens[mb], read=resp))
            pg_loss, _, _ = policy_loss(mb_logprobs, logprobs[mb], advantages[mb], mask[mb])
            vf_loss, _ = value_loss(mb_values, values[mb], returns[mb], mask[mb])
            loss = pg_loss + 0.1 * vf_loss                        # vf_coef 0.1, TRL's default
            opt_policy.zero_grad(set_to_none=True)
            opt_value.zero_grad(set_to_none=True)
            loss.backward()
            opt_policy.step()
            opt_value.step()
        sync()
        t_end = time.perf_counter()
        for k, dt in (("iter", t_end - t0), ("rollout", t_rollout - t0), ("generate", t_gen - t0)):
            times[k].append(dt)
    w = cfg["rl_warmup"]
    return {"ppo_iter_s": statistics.median(times["iter"][w:]),
            "ppo_rollout_s": statistics.median(times["rollout"][w:]),
            "ppo_generate_s": statistics.median(times["generate"][w:]),
            "ppo_iter_s_all": [round(t, 4) for t in times["iter"][w:]],
            "ppo_rollout_s_all": [round(t, 4) for t in times["rollout"][w:]],
            "ppo_setup": {"rollouts_per_iter": G, "prompt_len": Tp, "response_len": Tn, "mini_batch": cfg["mini_batch"],
                          "epochs": 1, "optimizer_steps_per_iter": G // cfg["mini_batch"], "kl_coef": cfg["kl_coef"],
                          "gae_gamma": 1.0, "gae_lam": 0.95, "vf_coef": 0.1,
                          "models": "policy + ref policy + reward model + value model (separate GPTs, same shape)",
                          "optimizers": "one AdamW for the policy, one for the value model"}}


def bench_peer():
    """Hugging Face transformers on the same shapes, in this process (so on the same device, at
    the same moment): GPT2LMHeadModel training step (labels shift inside the model) and
    generate() with its KV cache, sampled, fixed length, as ../shared/bench/peer_hf.py times them."""
    try:
        import transformers
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        print("peer: transformers is not installed; skipped", file=sys.stderr)
        return {}
    transformers.logging.set_verbosity_error()
    torch.manual_seed(cfg["seed"])
    hf_cfg = GPT2Config(n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"], vocab_size=V,
                        n_positions=cfg["n_positions"], resid_pdrop=cfg["dropout"], embd_pdrop=cfg["dropout"],
                        attn_pdrop=cfg["dropout"], bos_token_id=0, eos_token_id=0, pad_token_id=0,
                        attn_implementation="sdpa")
    out = {"peer_versions": {"transformers": transformers.__version__}}
    if "train" in only:
        model = GPT2LMHeadModel(hf_cfg).to(device).train()
        fwd = common.maybe_compile(model, cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if device.startswith("cuda") else {}))
        x = rand_tokens(B, T)

        def step():
            with ctx:
                loss = fwd(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t = median_time(step, cfg["warmup"], cfg["steps"])
        out.update(peer_train_step_s=t, peer_train_tokens_per_s=B * T / t)
        del model, fwd, opt
    if "generate" in only:
        model = GPT2LMHeadModel(hf_cfg).to(device).eval()
        prompts = rand_tokens(G, Tp)

        def gen():
            with torch.inference_mode(), ctx:
                y = model.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                   top_k=0, top_p=1.0, temperature=1.0, max_new_tokens=Tn, min_new_tokens=Tn,
                                   use_cache=True, pad_token_id=0)
            assert y.shape == (G, Tp + Tn)

        t = median_time(gen, 1, cfg["gen_reps"])
        out.update(peer_generate_call_s=t, peer_generate_tokens_per_s=G * Tn / t)
    return out


# ----------------------------------------------------------------------------- run
benches = {"train": bench_train, "generate": bench_generate, "rm": bench_rm, "ppo": bench_ppo}
only = cfg["only"].split(",")
if not set(only) <= set(benches):
    common.die(f"--only={cfg['only']}: known workloads are {', '.join(benches)}")
lines = {"train": lambda r: f"{r['train_tokens_per_s']:,.0f} tokens/s ({r['train_step_s'] * 1e3:.0f} ms/step)"
                            + (f", MFU {r['train_mfu']:.1%} of {r['peak_name']} {r['peak_tflops']:.0f} TFLOP/s"
                               if "train_mfu" in r else "") + f", SDPA {r['sdpa']}",
         "generate": lambda r: f"{r['generate_tokens_per_s']:,.0f} new tokens/s ({r['generate_call_s']:.3f} s/call)",
         "rm": lambda r: f"{r['rm_pairs_per_s']:.2f} pairs/s ({r['rm_step_s'] * 1e3:.0f} ms/step)",
         "ppo": lambda r: f"{r['ppo_iter_s']:.3f} s/iter (rollout {r['ppo_rollout_s']:.3f} s, "
                          f"of which generate {r['ppo_generate_s']:.3f} s)"}
n_params = sum(p.numel() for p in make_model().parameters())
res = {"impl": "nanoinstruct", "device": device, "dtype": dtype, "compile": cfg["compile"], "cuda_graph": cfg["cuda_graph"],
       "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
       "versions": {"torch": torch.__version__, "python": sys.version.split()[0]},
       "shape": {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "vocab_size", "n_positions", "dropout")},
       "workload": {k: cfg[k] for k in ("batch", "seq", "gen_batch", "prompt_len", "new_tokens", "mini_batch",
                                        "warmup", "steps", "gen_reps", "rl_warmup", "rl_iters")},
       "n_params": n_params}
print(f"nanoinstruct bench: {n_params / 1e6:.2f}M parameters, {device} {dtype}, {torch.get_num_threads()} threads",
      file=sys.stderr)
t_start = time.perf_counter()
for name in only:
    t0 = time.perf_counter()
    r = benches[name]()
    res.update(r)
    res.setdefault("bench_wall_s", {})[name] = round(time.perf_counter() - t0, 1)
    print(f"{name:9s} {lines[name](r)}", file=sys.stderr, flush=True)
if cfg["peer"]:
    t0 = time.perf_counter()
    r = bench_peer()
    res.update(r)
    res.setdefault("bench_wall_s", {})["peer"] = round(time.perf_counter() - t0, 1)
    for k in ("train_tokens_per_s", "generate_tokens_per_s"):
        if "peer_" + k in res and k in res:
            res["vs_peer_" + k] = res[k] / res["peer_" + k]
            print(f"peer      {k.split('_')[0]}: Hugging Face {res['peer_' + k]:,.0f} {k.split('_', 1)[1].replace('_per_s', '/s')}, "
                  f"ours {res['vs_peer_' + k]:.2f}x", file=sys.stderr, flush=True)
if device.startswith("cuda"):
    res["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
res["torch_threads"] = torch.get_num_threads()
res["total_wall_s"] = round(time.perf_counter() - t_start, 1)
text = json.dumps(res, indent=2)
print(text)
if cfg["out"]:
    os.makedirs(os.path.dirname(os.path.abspath(cfg["out"])), exist_ok=True)
    with open(cfg["out"], "w") as f:
        f.write(text + "\n")
