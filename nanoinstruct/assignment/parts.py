"""The parts of the assignment and the solution markers that delimit them in the source.

A part is the body of one function in the project's own code, between two comment lines:

    def gae(rewards, values, mask, gamma=1.0, lam=0.95):
        \"\"\"... the docstring, with the equation and the shapes ...\"\"\"
        # BEGIN SOLUTION <part>
        ... the reference body ...
        # END SOLUTION <part>

(nbgrader's convention, with the part's name, here gae, on both lines). The reference runs as it is; `make`
replaces each handed-out body by `raise NotImplementedError("<part>: <hint>")` and keeps the
markers, so the grader can find the student's body again. No torch here: `make` and `submit`
must run anywhere.
"""
import re

# In the paper's order: the model (sec. 3.5 starts from GPT-3), SFT, the reward model (eq. 1), then
# RL (eq. 2: the KL-penalised reward, advantages, PPO's losses, the pretraining mix, beta).
PARTS = [
    dict(name="attention", file="nanoinstruct/model.py", function="CausalSelfAttention.forward", points=15,
         paper="sec. 3.5 (the GPT-3 architecture); Vaswani et al. 2017",
         equation="y = softmax(q k^T / sqrt(hs) + M) v  per head; M = 0 where key s is causal (s <= t) and "
                  "real, -inf elsewhere (attn_mask None: plain causal)",
         hint="split c_attn(x) into q, k, v heads (B, nh, T, hs); with a cache, write k, v with "
              "cache.update(self.layer, k, v, slots) and attend over all it returns; causal attention "
              "under `mask` (is_causal when mask is None); merge the heads and apply c_proj and dropout"),
    dict(name="sft_loss", file="nanoinstruct/rlhf.py", function="sft_loss", points=8,
         paper="sec. 3.5 SFT",
         hint="token-level mean of -log pi(target) over loss_mask, with zero gradient at masked positions "
              "(use logprobs_from_logits and masked_mean)"),
    dict(name="ranking_loss", file="nanoinstruct/rlhf.py", function="ranking_loss", points=12,
         paper="sec. 3.5 RM, eq. 1",
         hint="-log sigmoid(r_w - r_l) over every pair of each prompt's ranking (pairs_from_ranking), "
              "averaged per prompt over its C(K,2) pairs, then over the prompts that have a pair"),
    dict(name="last_token_reward", file="nanoinstruct/model.py", function="last_token_scores", points=6,
         paper="sec. 3.5 RM (a scalar per prompt and response)",
         hint="run the model with the mask and position_ids(mask) when a mask is given, and read "
              "model.scores at index `last` of each row"),
    dict(name="kl_rewards", file="nanoinstruct/rlhf.py", function="kl_penalized_rewards", points=10,
         paper="sec. 3.5 RL, eq. 2",
         hint="per-token rewards -kl_coef * (logprobs - ref_logprobs) on real tokens, plus scores[b] at "
              "each row's last real token; return (rewards, kl), 0 on padding"),
    dict(name="gae", file="nanoinstruct/rlhf.py", function="gae", points=14,
         paper="Schulman et al. 2016 (the advantages of eq. 2's PPO step)",
         hint="the backward recursion delta_t = r_t + gamma V_{t+1} - V_t, A_t = delta_t + gamma lam A_{t+1} "
              "over real tokens (V = 0 after the last one); return (advantages, returns = A + V), 0 on padding"),
    dict(name="whiten", file="nanoinstruct/rlhf.py", function="whiten", points=6,
         paper="TRL / Ziegler et al. 2019 (advantage normalisation)",
         hint="(x - mean) / sqrt(var + 1e-8) over masked positions (masked_mean, masked_var), the mean "
              "added back when shift_mean=False, 0 on padding"),
    dict(name="policy_loss", file="nanoinstruct/rlhf.py", function="policy_loss", points=10,
         paper="Schulman et al. 2017 (PPO's clipped surrogate)",
         hint="masked mean of max(-A ratio, -A clip(ratio, 1-eps, 1+eps)); return (loss, clip_frac, "
              "approx_kl) with the two diagnostics detached"),
    dict(name="value_loss", file="nanoinstruct/rlhf.py", function="value_loss", points=8,
         paper="PPO2 baselines / TRL (the value model's loss)",
         hint="0.5 * masked mean of max((V - R)^2, (V_clipped - R)^2), V_clipped = old + clip(V - old, "
              "-eps, eps); return (loss, clip_frac)"),
    dict(name="ptx_loss", file="nanoinstruct/rlhf.py", function="ptx_loss", points=5,
         paper="sec. 3.5 RL, eq. 2 (the gamma term, PPO-ptx)",
         hint="the mean over all tokens of -log pi(target) (logprobs_from_logits)"),
    dict(name="adaptive_kl", file="nanoinstruct/rlhf.py", function="adaptive_kl_coef", points=6,
         paper="Ziegler et al. 2019 (the adaptive KL controller)",
         hint="e = clip(current_kl / target_kl - 1, -0.2, 0.2); return kl_coef * (1 + e * n_steps / horizon)"),
]
BY_NAME = {p["name"]: p for p in PARTS}

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<part>\w+)[ \t]*$")
END = re.compile(r"^[ \t]*# END SOLUTION (?P<part>\w+)[ \t]*$")
STUB = "raise NotImplementedError("


class MarkerError(ValueError):
    pass


def regions(text, path="<source>"):
    """{part: (begin, end, indent)}: the line numbers (0-based) of a file's BEGIN and END markers,
    the body lying strictly between them. Unpaired, nested or repeated markers are an error."""
    found, open_ = {}, None
    for i, line in enumerate(text.split("\n")):
        b, e = BEGIN.match(line), END.match(line)
        if b:
            if open_:
                raise MarkerError(f"{path}:{i + 1}: BEGIN SOLUTION {b['part']} inside part {open_[0]}")
            if b["part"] in found:
                raise MarkerError(f"{path}:{i + 1}: part {b['part']} marked twice")
            open_ = (b["part"], i, b["indent"])
        elif e:
            if not open_ or open_[0] != e["part"]:
                raise MarkerError(f"{path}:{i + 1}: END SOLUTION {e['part']} without its BEGIN")
            found[open_[0]] = (open_[1], i, open_[2])
            open_ = None
    if open_:
        raise MarkerError(f"{path}:{open_[1] + 1}: BEGIN SOLUTION {open_[0]} is never closed")
    return found


def body(text, part):
    """The lines of a part's body (between its markers), or None when the file lacks the part."""
    r = regions(text).get(part)
    return None if r is None else text.split("\n")[r[0] + 1:r[1]]


def replace_body(text, part, new_lines):
    """The text with a part's body replaced by new_lines (markers kept)."""
    b, e, _ = regions(text)[part]
    lines = text.split("\n")
    return "\n".join(lines[:b + 1] + list(new_lines) + lines[e:])


def stub_lines(part, indent):
    p = BY_NAME[part]
    return [f"{indent}{STUB}{(p['name'] + ': ' + p['hint'])!r})"]


def is_stub(lines):
    """A body still as handed out (or emptied): nothing in it but the NotImplementedError."""
    code = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    return not code or (len(code) == 1 and code[0].startswith(STUB))


def strip_part(text, part):
    """The text with a part's two marker lines removed (the reference body stays)."""
    b, e, _ = regions(text)[part]
    lines = text.split("\n")
    return "\n".join(lines[:b] + lines[b + 1:e] + lines[e + 1:])


def choose(parts=None, skip=None):
    """The part names handed out, in the paper's order: `parts` (names, or None for all) minus `skip`."""
    names = [p["name"] for p in PARTS]
    want, drop = set(parts or names), set(skip or ())
    unknown = sorted((want | drop) - set(names))
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(unknown)}; the parts are {', '.join(names)}")
    chosen = [n for n in names if n in want and n not in drop]
    if not chosen:
        raise ValueError("no part left to hand out")
    return chosen
