"""The autograder's checks, part by part, and the fixtures they compare against.

Each part has a few checks, each worth some points (they add up to the part's points):
  - `fixture`: the function on stored inputs, against the reference solution's outputs (and, for
    losses, their gradients), stored in fixtures/public.npz (hidden.npz: other seeds and shapes,
    with `grade --hidden`; not handed out);
  - hand-computed exact cases and properties (padding ignored, causality, clipped tokens get no
    gradient), written out below.
A check gets the module under test (rlhf or model, the student's body spliced into it) and
raises AssertionError with a message a student can act on.

The fixtures hold tensors only (numpy .npz: inputs as the pipeline has them, float32, and the
reference's outputs computed in float64 from them). `python -m nanoinstruct.assignment fixtures`
regenerates them from the reference solution (one CPU thread, fixed seeds): bit for bit on one
machine, and within float32 rounding on another, whose CPU kernels (AVX2, AVX-512) round a float32
matmul or log-softmax differently (`regeneration_drift`).
"""
import io
import os
import zipfile

import numpy as np
import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
# seed and sizes of each fixture set: B batch, T time, V vocab, N prompts, K responses per prompt
SETS = {
    "public": dict(seed=0, B=4, T=7, V=11, N=5, K=4, n_head=2, n_embd=16, clip=0.2, kl_coef=0.1, gamma=0.9, lam=0.8),
    "hidden": dict(seed=20, B=6, T=12, V=23, N=7, K=6, n_head=4, n_embd=24, clip=0.1, kl_coef=0.05, gamma=0.97, lam=0.9),
}
RTOL, ATOL = 1e-5, 1e-6     # float64 runs: float32 rounding in a student's code passes, a wrong term does not
RTOL32, ATOL32 = 1e-4, 1e-5  # float32 runs (the reward model's head is float32 by design)

CHECKS = {}   # part -> [Check]


class Check:
    def __init__(self, part, name, points, fn, fixture):
        self.part, self.name, self.points, self.fn, self.fixture = part, name, points, fn, fixture


def check(part, points, fixture=False):
    def deco(fn):
        CHECKS.setdefault(part, []).append(Check(part, fn.__name__.removeprefix(part + "_"), points, fn, fixture))
        return fn
    return deco


# ----------------------------------------------------------------------------- comparisons

def close(name, got, want, rtol=RTOL, atol=ATOL):
    """got (tensor, float, ...) against want (numpy array or tensor): same shape, within tolerance."""
    want = torch.as_tensor(np.asarray(want) if not torch.is_tensor(want) else want).double()
    if not torch.is_tensor(got):
        try:
            got = torch.as_tensor(got)
        except Exception:
            raise AssertionError(f"{name}: expected a tensor of shape {tuple(want.shape)}, got {type(got).__name__}")
    got = got.detach().double()
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
    if not torch.isfinite(got).all():
        raise AssertionError(f"{name}: contains nan or inf")
    err = (got - want).abs()
    bad = err > atol + rtol * want.abs()
    if bad.any():
        at = tuple(int(i) for i in torch.nonzero(bad)[0]) if err.dim() else ()
        raise AssertionError(f"{name}: off by up to {err.max().item():.3g} (at {at or 'the scalar'}: got "
                             f"{got[at].item():.6g}, expected {want[at].item():.6g}; tolerance {atol:g} + {rtol:g} * |expected|)")


def tuple_of(name, out, n):
    if not isinstance(out, (tuple, list)) or len(out) != n:
        raise AssertionError(f"{name} must return a tuple of {n} values, got {type(out).__name__}")
    return out


def as_torch(fx):
    """A fixture's arrays as tensors: floats upcast to float64, ints to long."""
    out = {}
    for k, a in fx.items():
        t = a.clone() if torch.is_tensor(a) else torch.from_numpy(np.array(a))
        out[k] = t.double() if t.is_floating_point() else (t.long() if t.dtype != torch.bool else t)
    return out


def prefix_mask(g, B, T, lengths=None):
    lengths = torch.randint(1, T + 1, (B,), generator=g) if lengths is None else lengths
    return torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)   # (B, T) True on a prefix


# ----------------------------------------------------------------------------- the parts: inputs and runs
# gen_<part>(g, S) -> dict of input arrays (what the fixture stores); run_<part>(mod, x, S) -> dict of
# output tensors. The fixture's expected outputs are run_<part>(reference, inputs).

def model_config(mod, S, scalar_head=False):
    return mod.GPTConfig(block_size=2 * S["T"] + 4, vocab_size=S["V"] + 20, n_layer=2, n_head=S["n_head"],
                         n_embd=S["n_embd"], dropout=0.0, bias=True, scalar_head=scalar_head)


def gen_weights(g, mod, S, scalar_head):
    """Random weights for a tiny GPT (in the state dict's order): O(1) activations, not an init."""
    sd = mod.GPT(model_config(mod, S, scalar_head), verbose=False).state_dict()
    out = {}
    for k, v in sd.items():
        if k == "lm_head.weight":   # tied to transformer.wte.weight
            continue
        if "ln" in k and k.endswith("weight"):
            out["w." + k] = (1 + 0.1 * torch.randn(v.shape, generator=g)).float().numpy()
        else:
            out["w." + k] = (0.3 * torch.randn(v.shape, generator=g)).float().numpy()
    return out


def build_model(mod, x, S, scalar_head=False, dtype=torch.float64):
    model = mod.GPT(model_config(mod, S, scalar_head), verbose=False)
    sd = {k[2:]: v for k, v in x.items() if k.startswith("w.")}
    model.load_state_dict(sd, strict=False)   # tied lm_head / wte: either name fills both
    return model.to(dtype).eval()


def gen_attention(g, S):
    B, T, V = S["B"], S["T"], S["V"]
    from nanoinstruct import model as ref
    lengths = torch.randint(2, T + 1, (B,), generator=g)
    lengths[0] = T
    mask = torch.arange(T).unsqueeze(0) >= (T - lengths).unsqueeze(1)       # left padding
    tokens = torch.where(mask, torch.randint(0, V, (B, T), generator=g), 0)
    return {**gen_weights(g, ref, S, False), "tokens": tokens.numpy(), "mask": mask.numpy()}


def run_attention(mod, x, S):
    model = build_model(mod, x, S)
    with torch.no_grad():
        h = model(x["tokens"], attn_mask=x["mask"], pos=mod.position_ids(x["mask"]))   # (B, T, C)
        h_plain = model(x["tokens"])                                                  # no padding mask: is_causal
    return {"h": h, "h_plain": h_plain}


def decode_attention(mod, x, S):
    """The first half of each sequence through the KV cache at once (prefill), then one position
    at a time, as generate decodes -> (B, T, C)."""
    model = build_model(mod, x, S)
    tokens, mask = x["tokens"], x["mask"]
    B, T = tokens.shape
    pos = mod.position_ids(mask)
    cache = mod.KVCache(model.config, B, T, tokens.device)
    Tp = T // 2
    with torch.no_grad():
        hs = [model(tokens[:, :Tp], attn_mask=mask[:, :Tp], pos=pos[:, :Tp], kv_cache=cache)]
        for t in range(Tp, T):
            hs.append(model(tokens[:, t:t + 1], attn_mask=mask[:, t:t + 1], pos=pos[:, t:t + 1], kv_cache=cache))
    return torch.cat(hs, 1)


def gen_sft_loss(g, S):
    B, T, V = S["B"], S["T"], S["V"]
    mask = torch.rand(B, T, generator=g) < 0.7
    mask[0, 0], mask[0, 1] = True, False
    targets = torch.where(mask, torch.randint(0, V, (B, T), generator=g), -100)
    return {"logits": (2 * torch.randn(B, T, V, generator=g)).numpy(), "targets": targets.numpy(), "mask": mask.numpy()}


def loss_and_grad(fn, leaf, *args, n_out=None):
    leaf = leaf.clone().requires_grad_(True)
    out = fn(leaf, *args)
    loss = out if n_out is None else tuple_of(fn.__name__, out, n_out)[0]
    if not torch.is_tensor(loss) or loss.dim() != 0:
        raise AssertionError(f"{fn.__name__}: the loss must be a scalar tensor, got "
                             f"{tuple(loss.shape) if torch.is_tensor(loss) else type(loss).__name__}")
    if not loss.requires_grad:
        raise AssertionError(f"{fn.__name__}: the loss carries no gradient to its input")
    grad, = torch.autograd.grad(loss, leaf, allow_unused=True)
    return out, (torch.zeros_like(leaf) if grad is None else grad)


def run_sft_loss(mod, x, S):
    loss, grad = loss_and_grad(mod.sft_loss, x["logits"], x["targets"], x["mask"])
    return {"loss": loss, "grad": grad}


def gen_ptx_loss(g, S):
    B, T, V = S["B"], S["T"], S["V"]
    return {"logits": (2 * torch.randn(B, T, V, generator=g)).numpy(), "targets": torch.randint(0, V, (B, T), generator=g).numpy()}


def run_ptx_loss(mod, x, S):
    loss, grad = loss_and_grad(mod.ptx_loss, x["logits"], x["targets"])
    return {"loss": loss, "grad": grad}


def gen_ranking_loss(g, S):
    N, K = S["N"], S["K"]
    ranking = torch.full((N, K), -1, dtype=torch.long)
    for n in range(N):
        k = K if n == 0 else (1 if n == 1 else int(torch.randint(2, K + 1, (1,), generator=g)))   # row 1: no pair
        ranking[n, :k] = torch.randperm(k, generator=g)
    return {"rewards": (1.5 * torch.randn(N, K, generator=g)).numpy(), "ranking": ranking.numpy()}


def run_ranking_loss(mod, x, S):
    loss, grad = loss_and_grad(mod.ranking_loss, x["rewards"], x["ranking"])
    return {"loss": loss, "grad": grad}


def gen_last_token_reward(g, S):
    B, T, V = S["B"], S["T"], S["V"]
    from nanoinstruct import model as ref
    Tp = T // 2
    n_prompt = torch.randint(1, Tp + 1, (B,), generator=g)
    n_resp = torch.randint(1, T - Tp + 1, (B,), generator=g)
    at = torch.arange(T).unsqueeze(0)
    mask = (at >= (Tp - n_prompt).unsqueeze(1)) & (at < (Tp + n_resp).unsqueeze(1))   # prompt left-, response right-padded
    lengths = torch.randint(1, T + 1, (B,), generator=g)                              # right padding only
    return {**gen_weights(g, ref, S, True), "tokens": torch.randint(0, V, (B, T), generator=g).numpy(),
            "mask": mask.numpy(), "last": (Tp + n_resp - 1).numpy(), "last_right": (lengths - 1).numpy()}


def run_last_token_reward(mod, x, S):
    model = build_model(mod, x, S, scalar_head=True, dtype=torch.float32)
    with torch.no_grad():
        return {"scores_right": mod.last_token_scores(model, x["tokens"], x["last_right"]),
                "scores": mod.last_token_scores(model, x["tokens"], x["last"], x["mask"])}


def gen_kl_rewards(g, S):
    B, T = S["B"], S["T"]
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0], lengths[1] = T, 0          # a full row and a row with no real token
    return {"logprobs": (-3 * torch.rand(B, T, generator=g)).numpy(), "ref_logprobs": (-3 * torch.rand(B, T, generator=g)).numpy(),
            "mask": prefix_mask(g, B, T, lengths).numpy(), "scores": torch.randn(B, generator=g).numpy(),
            "kl_coef": np.array(S["kl_coef"])}


def run_kl_rewards(mod, x, S):
    out = tuple_of("kl_penalized_rewards", mod.kl_penalized_rewards(x["logprobs"], x["ref_logprobs"], x["mask"], x["scores"],
                                                                   float(x["kl_coef"])), 2)
    return {"rewards": out[0], "kl": out[1]}


def gen_gae(g, S):
    B, T = S["B"], S["T"]
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0], lengths[1] = T, 1
    return {"rewards": torch.randn(B, T, generator=g).numpy(), "values": torch.randn(B, T, generator=g).numpy(),
            "mask": prefix_mask(g, B, T, lengths).numpy(), "gamma": np.array(S["gamma"]), "lam": np.array(S["lam"])}


def run_gae(mod, x, S):
    a1, r1 = tuple_of("gae", mod.gae(x["rewards"], x["values"], x["mask"], float(x["gamma"]), float(x["lam"])), 2)
    a2, r2 = tuple_of("gae", mod.gae(x["rewards"], x["values"], x["mask"]), 2)    # the defaults: gamma 1, lam 0.95
    return {"advantages": a1, "returns": r1, "advantages_default": a2, "returns_default": r2}


def gen_whiten(g, S):
    B, T = S["B"], S["T"]
    mask = torch.rand(B, T, generator=g) < 0.6
    mask[0, :2] = True
    return {"x": (3 * torch.randn(B, T, generator=g) + 1).numpy(), "mask": mask.numpy()}


def run_whiten(mod, x, S):
    return {"out": mod.whiten(x["x"], x["mask"]), "out_scale_only": mod.whiten(x["x"], x["mask"], shift_mean=False)}


def gen_policy_loss(g, S):
    B, T = S["B"], S["T"]
    old = -3 * torch.rand(B, T, generator=g)
    return {"logprobs": (old + 0.3 * torch.randn(B, T, generator=g)).numpy(), "old_logprobs": old.numpy(),
            "advantages": torch.randn(B, T, generator=g).numpy(), "mask": prefix_mask(g, B, T).numpy(),
            "clip_eps": np.array(S["clip"])}


def run_policy_loss(mod, x, S):
    out, grad = loss_and_grad(mod.policy_loss, x["logprobs"], x["old_logprobs"], x["advantages"], x["mask"],
                              float(x["clip_eps"]), n_out=3)
    return {"loss": out[0], "clip_frac": out[1], "approx_kl": out[2], "grad": grad}


def gen_value_loss(g, S):
    B, T = S["B"], S["T"]
    old = torch.randn(B, T, generator=g)
    return {"values": (old + 0.3 * torch.randn(B, T, generator=g)).numpy(), "old_values": old.numpy(),
            "returns": torch.randn(B, T, generator=g).numpy(), "mask": prefix_mask(g, B, T).numpy(),
            "clip_eps": np.array(S["clip"])}


def run_value_loss(mod, x, S):
    out, grad = loss_and_grad(mod.value_loss, x["values"], x["old_values"], x["returns"], x["mask"],
                              float(x["clip_eps"]), n_out=2)
    return {"loss": out[0], "clip_frac": out[1], "grad": grad}


def gen_adaptive_kl(g, S):
    n = 3 * S["B"]
    return {"current_kl": (12 * torch.rand(n, generator=g)).numpy(), "kl_coef": np.array(S["kl_coef"]),
            "target_kl": np.array(6.0 if S["seed"] == 0 else 3.0), "horizon": np.array(10000 if S["seed"] == 0 else 500),
            "n_steps": np.array(64 if S["seed"] == 0 else 16)}


def run_adaptive_kl(mod, x, S):
    beta, out = float(x["kl_coef"]), []
    for kl in x["current_kl"].tolist():   # the controller fed its own output, as train_ppo does
        beta = float(mod.adaptive_kl_coef(beta, kl, float(x["target_kl"]), int(x["horizon"]), int(x["n_steps"])))
        out.append(beta)
    return {"kl_coef": torch.tensor(out, dtype=torch.float64)}


TOL = {"last_token_reward": (RTOL32, ATOL32)}


def fixture_check(part, points):
    """The part's function on each fixture set's inputs, against the reference's outputs."""
    def fn(mod, x, want, S):
        got = globals()["run_" + part](mod, x, S)
        for k in want:
            close(f"{k}", got[k], want[k], *TOL.get(part, (RTOL, ATOL)))
    fn.__name__ = part + "_fixture"
    return check(part, points, fixture=True)(fn)


# ----------------------------------------------------------------------------- hand-computed cases and properties
T64 = dict(dtype=torch.float64)


fixture_check("attention", 5)


@check("attention", 5)
def attention_kv_cache(mod):
    """The prefill + one-token-at-a-time decode through the KV cache equals the full forward."""
    S, x = load_set("public")
    close("cached decode vs the reference's full forward", decode_attention(mod, x["attention"], S),
          fixture_want("public", "attention")["h"])


@check("attention", 3)
def attention_causal(mod):
    """Changing the tokens at t and after leaves the outputs before t as they were."""
    S, x = load_set("public")
    x = x["attention"]
    model = build_model(mod, x, S)
    tokens = x["tokens"].clone()
    T = tokens.size(1)
    with torch.no_grad():
        h = model(tokens)
        for cut in (1, T // 2, T - 1):
            other = tokens.clone()
            other[:, cut:] = (other[:, cut:] + 1) % S["V"]
            h2 = model(other)
            close(f"outputs before position {cut} after changing the tokens from {cut} on", h2[:, :cut], h[:, :cut])
            if torch.allclose(h2[:, cut:], h[:, cut:]):
                raise AssertionError(f"outputs from position {cut} on ignore the tokens there")


@check("attention", 2)
def attention_uniform_hand_case(mod):
    """q = k = 0 makes every score equal: with v = x and c_proj = identity, y_t = mean(x_0 .. x_t)."""
    cfg = mod.GPTConfig(block_size=8, vocab_size=5, n_layer=1, n_head=2, n_embd=4)
    attn = mod.CausalSelfAttention(cfg, 0).double().eval()
    with torch.no_grad():
        attn.c_attn.weight.zero_(), attn.c_attn.bias.zero_(), attn.c_proj.bias.zero_()
        attn.c_attn.weight[8:12] = torch.eye(4, **T64)
        attn.c_proj.weight.copy_(torch.eye(4, **T64))
        x = torch.arange(12, **T64).view(1, 3, 4)
        y = attn(x, None, None, None)
    close("y", y, torch.stack([x[0, :1].mean(0), x[0, :2].mean(0), x[0, :3].mean(0)])[None])


fixture_check("sft_loss", 4)


@check("sft_loss", 2)
def sft_loss_hand_case(mod):
    """Uniform logits over V = 5: every token costs log 5; -100 targets at masked positions are fine."""
    logits = torch.zeros(2, 3, 5, **T64, requires_grad=True)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    loss = mod.sft_loss(logits, torch.tensor([[1, 2, -100], [4, -100, -100]]), mask)
    close("loss", loss, np.log(5.0))
    loss.backward()
    close("gradient at masked positions", logits.grad[~mask], torch.zeros(3, 5, **T64))


@check("sft_loss", 2)
def sft_loss_ignores_padding(mod):
    """What sits at masked positions (here logits of 1e4) changes neither the loss nor the gradient."""
    x = as_torch(load_set("public")[1]["sft_loss"])
    base = run_sft_loss(mod, x, None)
    x["logits"][~x["mask"]] = 1e4
    moved = run_sft_loss(mod, x, None)
    close("loss with other logits at masked positions", moved["loss"], base["loss"])
    close("gradient", moved["grad"], base["grad"])


fixture_check("ptx_loss", 3)


@check("ptx_loss", 2)
def ptx_loss_hand_case(mod):
    """V = 2, logits (0, log 3): p(token 1) = 3/4, so -log p = log(4/3); uniform logits: log V."""
    logits = torch.tensor([[[0.0, np.log(3.0)], [0.0, 0.0]]], **T64)
    close("loss", mod.ptx_loss(logits, torch.tensor([[1, 0]])), (np.log(4 / 3) + np.log(2)) / 2)


fixture_check("ranking_loss", 6)


@check("ranking_loss", 3)
def ranking_loss_hand_k2(mod):
    """K = 2: -log sigmoid(r_w - r_l) = log(1 + exp(r_l - r_w))."""
    rewards = torch.tensor([[1.0, 0.0]], **T64)
    close("loss, the better response scored higher", mod.ranking_loss(rewards, torch.tensor([[0, 1]])), np.log1p(np.exp(-1)))
    close("loss, the worse response scored higher", mod.ranking_loss(rewards, torch.tensor([[1, 0]])), np.log1p(np.exp(1)))


@check("ranking_loss", 3)
def ranking_loss_hand_k3_padded(mod):
    """K = 3, ranking 2 > 1 > 0 with rewards (0, 1, 2): pairs with margins 1, 2, 1, mean over C(3,2) = 3.
    Row 2 has two responses (slot 2 padded with a huge reward) whose one pair has margin 1e4 - 3:
    a loss of ~0, and the batch loss is the mean over the two prompts."""
    rewards = torch.tensor([[0.0, 1.0, 2.0], [3.0, 1e4, -1e4]], **T64)
    ranking = torch.tensor([[2, 1, 0], [1, 0, -1]])
    row1 = (2 * np.log1p(np.exp(-1)) + np.log1p(np.exp(-2))) / 3
    close("loss", mod.ranking_loss(rewards, ranking), row1 / 2)
    close("loss of the first prompt alone", mod.ranking_loss(rewards[:1], ranking[:1]), row1)


fixture_check("last_token_reward", 4)


@check("last_token_reward", 2)
def last_token_reward_one_at_a_time(mod):
    """With padding and a mask, each row's score equals the score of its real tokens alone."""
    S, x = load_set("public")
    x = x["last_token_reward"]
    model = build_model(mod, x, S, scalar_head=True, dtype=torch.float32)
    with torch.no_grad():
        got = mod.last_token_scores(model, x["tokens"], x["last"], x["mask"])
        alone = [mod.last_token_scores(model, x["tokens"][b][x["mask"][b]][None], torch.tensor([int(x["mask"][b].sum()) - 1]))[0]
                 for b in range(len(x["tokens"]))]
    close("scores of the padded batch vs one sequence at a time", got, torch.stack(alone), RTOL32, ATOL32)


fixture_check("kl_rewards", 5)


@check("kl_rewards", 3)
def kl_rewards_hand_case(mod):
    """kl = (0.5, -1, pad), beta 0.5: rewards (-0.25, 0.5 + score 2, 0)."""
    rewards, kl = tuple_of("kl_penalized_rewards", mod.kl_penalized_rewards(
        torch.tensor([[-1.0, -2.0, -3.0]], **T64), torch.tensor([[-1.5, -1.0, -7.0]], **T64),
        torch.tensor([[True, True, False]]), torch.tensor([2.0], **T64), 0.5), 2)
    close("kl", kl, [[0.5, -1.0, 0.0]])
    close("rewards", rewards, [[-0.25, 2.5, 0.0]])


@check("kl_rewards", 2)
def kl_rewards_empty_row(mod):
    """A row with no real token gets no score and no penalty; the other rows are unaffected."""
    x = as_torch(load_set("public")[1]["kl_rewards"])
    mask = x["mask"].clone()
    mask[0] = False
    rewards, kl = tuple_of("kl_penalized_rewards", mod.kl_penalized_rewards(x["logprobs"], x["ref_logprobs"], mask, x["scores"], 0.1), 2)
    close("rewards of the empty row", rewards[0], torch.zeros_like(rewards[0]))
    close("kl of the empty row", kl[0], torch.zeros_like(kl[0]))
    full = mod.kl_penalized_rewards(x["logprobs"][1:], x["ref_logprobs"][1:], mask[1:], x["scores"][1:], 0.1)[0]
    close("rewards of the other rows", rewards[1:], full)


fixture_check("gae", 6)


@check("gae", 3)
def gae_hand_gamma_lam_one(mod):
    """gamma = lam = 1: A_t = (sum of the rewards from t on) - V_t; R_t = that sum. Padding: 0."""
    adv, ret = tuple_of("gae", mod.gae(torch.tensor([[1.0, 2.0, 3.0, 9.0]], **T64), torch.tensor([[0.5, 1.0, 1.5, 7.0]], **T64),
                                       torch.tensor([[True, True, True, False]]), gamma=1.0, lam=1.0), 2)
    close("advantages", adv, [[5.5, 4.0, 1.5, 0.0]])
    close("returns", ret, [[6.0, 5.0, 3.0, 0.0]])


@check("gae", 3)
def gae_hand_lam_zero(mod):
    """lam = 0: A_t is the TD residual r_t + gamma V_{t+1} - V_t, with V = 0 after the last real token."""
    adv, ret = tuple_of("gae", mod.gae(torch.tensor([[1.0, 2.0, 3.0, 9.0]], **T64), torch.tensor([[0.5, 1.0, 1.5, 7.0]], **T64),
                                       torch.tensor([[True, True, True, False]]), gamma=0.5, lam=0.0), 2)
    close("advantages", adv, [[1.0, 1.75, 1.5, 0.0]])
    close("returns", ret, [[1.5, 2.75, 3.0, 0.0]])


@check("gae", 2)
def gae_ignores_padding(mod):
    """Rewards and values at padded positions (here 1e6) change nothing; padding gets exactly 0."""
    x = as_torch(load_set("public")[1]["gae"])
    base = run_gae(mod, x, None)
    x["rewards"][~x["mask"]], x["values"][~x["mask"]] = 1e6, -1e6
    moved = run_gae(mod, x, None)
    for k in base:
        close(k + " with other values at padding", moved[k], base[k])
        if (moved[k][~x["mask"]] != 0).any():
            raise AssertionError(f"{k}: padded positions must be exactly 0")


fixture_check("whiten", 3)


@check("whiten", 2)
def whiten_moments(mod):
    """Over the masked positions: mean 0 and unbiased variance 1; padding exactly 0."""
    x = as_torch(load_set("public")[1]["whiten"])
    out, m = mod.whiten(x["x"], x["mask"]), x["mask"]
    close("masked mean", out[m].mean(), 0.0)
    close("masked variance (n - 1)", out[m].var(unbiased=True), 1.0, 1e-6, 1e-6)
    if (out[~m] != 0).any():
        raise AssertionError("padded positions must be exactly 0")


@check("whiten", 1)
def whiten_hand_case(mod):
    """(1, 2, 3, pad 100): mean 2, unbiased variance 1 -> (-1, 0, 1, 0); scale only: (1, 2, 3, 0)."""
    x, m = torch.tensor([[1.0, 2.0, 3.0, 100.0]], **T64), torch.tensor([[True, True, True, False]])
    close("whitened", mod.whiten(x, m), [[-1.0, 0.0, 1.0, 0.0]])
    close("shift_mean=False", mod.whiten(x, m, shift_mean=False), [[1.0, 2.0, 3.0, 0.0]])


fixture_check("policy_loss", 5)


@check("policy_loss", 3)
def policy_loss_hand_case(mod):
    """Token 1: ratio 1, A = 1 -> -1. Token 2: ratio 2, A = 1, eps 0.2 -> max(-2, -1.2) = -1.2, clipped.
    Token 3: padding. loss = -1.1, clip_frac 1/2, approx_kl = ((2 - 1) - log 2) / 2."""
    lp = torch.tensor([[-1.0, -1.0 + np.log(2.0), 5.0]], **T64)
    loss, clip_frac, approx_kl = tuple_of("policy_loss", mod.policy_loss(
        lp, torch.tensor([[-1.0, -1.0, -1.0]], **T64), torch.tensor([[1.0, 1.0, 3.0]], **T64),
        torch.tensor([[True, True, False]]), 0.2), 3)
    close("loss", loss, -1.1)
    close("clip_frac", clip_frac, 0.5)
    close("approx_kl", approx_kl, (1 - np.log(2.0)) / 2)


@check("policy_loss", 2)
def policy_loss_clipped_tokens_get_no_gradient(mod):
    """Where the clipped term wins (ratio 2 > 1 + eps with A > 0) the gradient is 0; elsewhere it is not.
    The two diagnostics carry no gradient."""
    lp = torch.tensor([[-1.0, -1.0 + np.log(2.0)]], **T64, requires_grad=True)
    loss, clip_frac, approx_kl = tuple_of("policy_loss", mod.policy_loss(
        lp, torch.tensor([[-1.0, -1.0]], **T64), torch.tensor([[1.0, 1.0]], **T64), torch.tensor([[True, True]]), 0.2), 3)
    loss.backward()
    close("gradient", lp.grad, [[-0.5, 0.0]])
    if any(torch.is_tensor(d) and d.requires_grad for d in (clip_frac, approx_kl)):
        raise AssertionError("clip_frac and approx_kl must be detached (computed under torch.no_grad)")


fixture_check("value_loss", 5)


@check("value_loss", 3)
def value_loss_hand_case(mod):
    """eps 0.2, old values 0, values 1: clipped to 0.2. Returns 2: max(1, 3.24) = 3.24 (clipped side);
    returns 0: max(1, 0.04) = 1. loss = 0.5 * (3.24 + 1) / 2 = 1.06, clip_frac 1/2; padding ignored."""
    loss, clip_frac = tuple_of("value_loss", mod.value_loss(
        torch.tensor([[1.0, 1.0, 9.0]], **T64), torch.zeros(1, 3, **T64), torch.tensor([[2.0, 0.0, -9.0]], **T64),
        torch.tensor([[True, True, False]]), 0.2), 2)
    close("loss", loss, 1.06)
    close("clip_frac", clip_frac, 0.5)


fixture_check("adaptive_kl", 3)


@check("adaptive_kl", 3)
def adaptive_kl_hand_cases(mod):
    """beta 0.1, target 6, n_steps / horizon = 1/2: KL 12 -> error clipped to +0.2 -> 0.11; KL 0 -> -0.2 -> 0.09;
    KL 6.6 -> +0.1 -> 0.105."""
    for kl, want in ((12.0, 0.11), (0.0, 0.09), (6.6, 0.105)):
        close(f"kl_coef after a KL of {kl}", float(mod.adaptive_kl_coef(0.1, kl, 6.0, 100, 50)), want)


# ----------------------------------------------------------------------------- fixtures: files

def path_of(name, root=FIXTURES):
    return os.path.join(root, name + ".npz")


_cache = {}


def load_npz(name, root=FIXTURES):
    """{part: {key: array}} of one fixture set, or None when its file is absent (hidden, in a handout)."""
    p = path_of(name, root)
    if p not in _cache:
        if not os.path.exists(p):
            return None
        with np.load(p, allow_pickle=False) as z:
            flat = {k: z[k] for k in z.files}
        out = {}
        for k, a in flat.items():
            kind, part, key = k.split(":", 2)
            out.setdefault(part, {}).setdefault(kind, {})[key] = a
        _cache[p] = out
    return _cache[p]


def load_set(name):
    """(sizes, {part: inputs as tensors}) of a fixture set."""
    fx = load_npz(name)
    if fx is None:
        raise FileNotFoundError(f"fixture set {name!r} not found: {path_of(name)}")
    return SETS[name], {part: as_torch(d["in"]) for part, d in fx.items()}


def fixture_want(name, part):
    return load_npz(name)[part]["out"]


def save_npz(path, arrays):
    """numpy's .npz layout (a zip of .npy files), written deterministically: sorted names, fixed
    timestamps, no compression, so the same arrays always give the same bytes."""
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for k in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(arrays[k], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(k + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())
    os.replace(tmp, path)


DRIFT = 0.1   # a regeneration may move an output by this fraction of the tolerance a student gets


def regeneration_drift(name, new_path):
    """What keeps a regenerated fixture set (new_path) from standing in for the committed one: a
    list of messages, empty when it can. Inputs and array names must match exactly; outputs may
    differ by float32 rounding (another CPU's kernels, seen: 3 float32 ulps of the array's scale),
    but by no more than DRIFT of the grading tolerance, element by element, so a fixture that
    passes this grades the same students the same way on any machine."""
    with np.load(path_of(name), allow_pickle=False) as z_old, np.load(new_path, allow_pickle=False) as z_new:
        old, new = {k: z_old[k] for k in z_old.files}, {k: z_new[k] for k in z_new.files}
    if sorted(old) != sorted(new):
        return [f"{name}: arrays {sorted(set(old) ^ set(new))} in one file only"]
    bad = []
    for k in sorted(old):
        a, b = old[k], new[k]
        kind, part, _ = k.split(":", 2)
        if a.dtype != b.dtype or a.shape != b.shape:
            bad.append(f"{name} {k}: {a.dtype}{list(a.shape)} against {b.dtype}{list(b.shape)}")
        elif kind == "in" or a.dtype.kind not in "fc":
            if not np.array_equal(a, b):
                bad.append(f"{name} {k}: inputs differ")
        else:
            rtol, atol = TOL.get(part, (RTOL, ATOL))
            err, allowed = np.abs(a - b), DRIFT * (atol + rtol * np.abs(a))
            if not (err <= allowed).all():
                i = np.unravel_index(np.argmax(err - allowed), a.shape)
                bad.append(f"{name} {k}{[int(j) for j in i]}: regenerated {b[i]:.9g}, committed {a[i]:.9g}: "
                           f"off by {err[i]:.2g}, over the {allowed[i]:.2g} allowed")
    return bad


def generate(name, out_dir=FIXTURES, seed=None):
    """Write fixture set `name` from the reference solution (this package's own rlhf and model).
    seed: another seed for the set (an instructor's private hidden set). One thread: reductions
    then add in one order, so the bytes repeat."""
    from nanoinstruct import model as ref_model, rlhf as ref_rlhf
    from nanoinstruct.assignment.parts import BY_NAME
    S = dict(SETS[name], **({} if seed is None else {"seed": seed}))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(S["seed"])
        arrays = {}
        for part in BY_NAME:
            mod = ref_model if BY_NAME[part]["file"].endswith("model.py") else ref_rlhf
            x = globals()["gen_" + part](g, S)
            try:
                want = globals()["run_" + part](mod, as_torch(x), S)
            except NotImplementedError as e:
                raise RuntimeError(f"fixtures come from the reference solution, and this copy's {part} is not implemented ({e})")
            arrays.update({f"in:{part}:{k}": np.asarray(v) for k, v in x.items()})
            arrays.update({f"out:{part}:{k}": v.detach().double().numpy() for k, v in want.items()})
    finally:
        torch.set_num_threads(threads)
    os.makedirs(out_dir, exist_ok=True)
    save_npz(path_of(name, out_dir), arrays)
    _cache.pop(path_of(name, out_dir), None)
    return path_of(name, out_dir)


# ----------------------------------------------------------------------------- running a part's checks

def run_part(part, mod, hidden=False):
    """[(check, passed, message)] for one part on a module (the student's body spliced in)."""
    sets = ["public"] + (["hidden"] if hidden else [])
    return [run_check(c, mod, sets) for c in CHECKS[part]]


def run_check(c, mod, sets=("public",)):
    """(check, passed, message) for one check on a module, over the fixture sets named."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors: on a busy machine, more threads make each op 100x slower
    try:
        return _run_check(c, c.part, mod, sets)
    finally:
        torch.set_num_threads(threads)


def _run_check(c, part, mod, sets):
    import traceback
    torch.manual_seed(0)
    try:
        if c.fixture:
            for s in sets:
                S, x = load_set(s)
                try:
                    c.fn(mod, x[part], fixture_want(s, part), S)
                except AssertionError as e:
                    raise AssertionError(("[hidden set] " if s != "public" else "") + str(e))
        else:
            c.fn(mod)
        return c, True, ""
    except NotImplementedError as e:
        return c, False, f"not implemented: {e}"
    except AssertionError as e:
        return c, False, str(e)
    except (Exception, SystemExit) as e:   # the student's code raised: where, in their file
        tb = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.endswith("checks.py")]
        where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno}: {tb[-1].line})" if tb else ""
        return c, False, f"{type(e).__name__}: {e}{where}"
