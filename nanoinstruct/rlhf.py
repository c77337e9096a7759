"""
The InstructGPT algorithm (Ouyang et al. 2022) as small pure functions: tensors in, tensors out,
no optimizer, device or config inside. The stage scripts call these in the order of the paper:

  stage 1 (SFT, sec. 3.5)   sft_loss
  stage 2 (RM, eq. 1)       ranking_loss, ranking_accuracy
  stage 3 (PPO, eq. 2)      kl_penalized_rewards -> gae -> whiten -> policy_loss + value_loss
                            (+ ptx_coef * ptx_loss for "PPO-ptx"), adaptive_kl_coef
  evaluation                win_rate (with a Wilson 95% interval), paired_difference, best_of_n
  beyond the paper          dpo_loss (Rafailov et al. 2023); gao_fit, the over-optimisation forms
                            of Gao et al. 2022 (experiments/)

Shape letters: B batch, T time, V vocab, N prompts, K responses per prompt, P = K*(K-1)/2 pairs.
Every `mask` is a bool tensor, True at real tokens; padding never contributes to a mean or a grad.
PPO details follow Ziegler et al. 2019 / Stiennon et al. 2020 as re-implemented in TRL's PPO
trainer and CleanRL's ppo.py (names `lastgaelam`, `nextvalues`, `pg_losses`, `vf_losses`).
"""
import math

import torch
import torch.nn.functional as F

# -----------------------------------------------------------------------------
# masked reductions and per-token helpers

def masked_mean(x, mask):
    """Mean of x (any shape) over positions where mask (same shape, bool) is True -> scalar.
    torch.where, not x * mask, so a NaN/inf at a padded position cannot leak in (0 * inf = nan)."""
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)

def masked_var(x, mask, unbiased=True):
    """Variance of x over masked positions -> scalar. unbiased=True divides by n-1 (Bessel),
    as TRL's masked_var does."""
    mean = masked_mean(x, mask)
    n = mask.sum()
    sq = torch.where(mask, (x - mean) ** 2, 0.0).sum()
    return sq / (n - 1).clamp(min=1) if unbiased else sq / n.clamp(min=1)

def logprobs_from_logits(logits, tokens):
    """log pi(token_t | context) for each position: logits (B,T,V), tokens (B,T) long -> (B,T).
    Upcast to float32: log_softmax over a 50k vocab in bf16 loses the small differences PPO's
    ratio exp(logprobs - old_logprobs) depends on."""
    logp = F.log_softmax(logits.float(), dim=-1)                  # (B,T,V)
    return logp.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)      # (B,T)

def entropy_from_logits(logits):
    """Entropy of the next-token distribution: logits (B,T,V) -> (B,T). A diagnostic: a collapsing
    entropy is the usual first sign of reward hacking. H = logsumexp(z) - sum_v p_v z_v."""
    logits = logits.float()
    p = F.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(-1)

# -----------------------------------------------------------------------------
# stage 1: supervised fine-tuning, and the pretraining (ptx) term of stage 3

def sft_loss(logits, targets, loss_mask):
    """Next-token cross-entropy on response tokens only (sec. 3.5, "SFT"):
        loss = -1/|M| sum_{(b,t) in M} log pi(targets[b,t] | tokens[b,:t+1])
    logits (B,T,V), targets (B,T) long, loss_mask (B,T) bool -> scalar. The mean is over all
    masked tokens in the batch (token-level, not per-sequence), like nanoGPT's loss.
    Targets at masked positions may hold anything (pad, -100): they are replaced by 0 before the
    gather, and torch.where gives those positions exactly zero gradient."""
    # BEGIN SOLUTION sft_loss
    safe_targets = torch.where(loss_mask, targets, 0)
    return masked_mean(-logprobs_from_logits(logits, safe_targets), loss_mask)
    # END SOLUTION sft_loss

def ptx_loss(logits, targets):
    """Pretraining LM loss mixed into PPO ("PPO-ptx", eq. 2): the objective's last term is
        gamma * E_{x ~ D_pretrain}[log pi_RL(x)],
    so the loss to minimise is its negation, ptx_coef * ptx_loss. logits (B,T,V), targets (B,T)
    long -> scalar, mean over all B*T tokens (pretraining batches have no padding)."""
    # BEGIN SOLUTION ptx_loss
    return -logprobs_from_logits(logits, targets).mean()
    # END SOLUTION ptx_loss

# -----------------------------------------------------------------------------
# stage 2: reward model, K-wise ranking loss (eq. 1)

def pairs_from_ranking(ranking):
    """All ordered pairs implied by a best->worst ranking.
    ranking (N,K) long: indices into the K responses, best first; prompts with fewer than K
    responses are padded with -1 at the END of their row.
    Returns winners (N,P), losers (N,P) long (response indices, -1 slots clamped to 0) and
    valid (N,P) bool, P = K*(K-1)/2. Pair (i,j) with i<j in ranking order means ranking[:,i]
    beat ranking[:,j]; it is valid iff slot j is real (slot i < j then is real too)."""
    K = ranking.size(1)
    i, j = torch.triu_indices(K, K, offset=1, device=ranking.device)  # (P,), (P,): all i < j
    valid = ranking[:, j] >= 0                                        # (N,P)
    safe = ranking.clamp(min=0)
    return safe[:, i], safe[:, j], valid

def ranking_loss(rewards, ranking):
    """K-wise reward-model loss, eq. 1 of the paper (sec. 3.5, "RM"):
        loss = -1/C(K,2) E_{(x, y_w, y_l)}[ log sigmoid(r(x,y_w) - r(x,y_l)) ]
    with all C(K,2) pairs of one prompt in the same batch element, which the paper does so each
    completion gets one forward pass and the RM does not overfit on pairs seen K-1 times.
    rewards (N,K) float: r of each response in the file's order (padded slots: any finite value);
    ranking (N,K) long best->worst, -1 padding at the end (see pairs_from_ranking) -> scalar.
    Per prompt n: -1/C(K_n,2) * sum over its pairs; then the mean over prompts that have a pair.
    One gather over precomputed index tensors, no Python loop over pairs."""
    # BEGIN SOLUTION ranking_loss
    winners, losers, valid = pairs_from_ranking(ranking)             # (N,P) each
    diff = rewards.gather(1, winners) - rewards.gather(1, losers)     # (N,P) r_w - r_l
    logsig = torch.where(valid, F.logsigmoid(diff), 0.0)              # padded pairs: no grad
    n_pairs = valid.sum(1)                                            # (N,) C(K_n,2)
    per_prompt = -logsig.sum(1) / n_pairs.clamp(min=1)                # (N,)
    return per_prompt.sum() / (n_pairs > 0).sum().clamp(min=1)
    # END SOLUTION ranking_loss

@torch.no_grad()
def ranking_accuracy(rewards, ranking):
    """Pairwise accuracy counts: rewards (N,K), ranking (N,K) as in ranking_loss ->
    (n_correct, n_pairs), 0-dim long tensors, so they can be summed over batches before dividing.
    A pair is correct iff r_w > r_l strictly (a tie counts as wrong)."""
    winners, losers, valid = pairs_from_ranking(ranking)
    correct = (rewards.gather(1, winners) > rewards.gather(1, losers)) & valid
    return correct.sum(), valid.sum()

# -----------------------------------------------------------------------------
# beyond the paper: DPO (Rafailov et al. 2023), the reward model's loss on the policy itself

def sequence_logprobs(logits, targets, mask):
    """log pi(y | x) of whole responses, the sum of their tokens' log-probs:
        logp[b] = sum_{t : mask[b,t]} log pi(targets[b,t] | tokens[b,:t+1])
    logits (B,T,V), targets (B,T) long, mask (B,T) bool (as data.sft_batch lays them out: True on
    the response tokens, its end-of-text included) -> (B,) float32. Masked targets may hold anything."""
    safe_targets = torch.where(mask, targets, 0)
    return torch.where(mask, logprobs_from_logits(logits, safe_targets), 0.0).sum(1)

def dpo_loss(logps, ref_logps, ranking, beta):
    """Direct Preference Optimization (Rafailov et al. 2023, eq. 7) over the C(K,2) pairs of a
    K-wise ranking, taken as the reward model's eq. 1 takes them:
        h(x, y) = beta * (log pi(y|x) - log pi_ref(y|x))          the implicit reward
        loss    = -1/C(K,2) E_{(x, y_w, y_l)}[ log sigmoid(h(x, y_w) - h(x, y_l)) ]
    i.e. ranking_loss with r_theta replaced by the policy's log-ratio to the frozen SFT model
    ("your language model is secretly a reward model"); K = 2 is the paper's eq. 7. This is the
    Bradley-Terry form on all pairs, not the paper's Plackett-Luce alternative (its App. A.3).
    logps (N,K) float with grad: log pi(y|x) of each response (sequence_logprobs); ref_logps
    (N,K) the same under pi_ref; ranking (N,K) long best->worst, -1 padding (pairs_from_ranking);
    beta float -> (loss scalar, h (N,K) detached, for accuracy and margins).
    Gradient: d loss / d logps[winner] = -beta * sigmoid(h_l - h_w) / C(K,2) per pair, < 0, so
    a descent step raises the log-ratio of the better response and lowers the worse one's, the
    more the worse the implicit reward orders them now."""
    h = beta * (logps - ref_logps)                                   # (N,K)
    return ranking_loss(h, ranking), h.detach()

# -----------------------------------------------------------------------------
# stage 3: PPO (eq. 2): per-token reward, advantages, clipped losses

def kl_penalized_rewards(logprobs, ref_logprobs, mask, scores, kl_coef):
    """Per-token reward for PPO, eq. 2's  r_theta(x,y) - beta * log(pi_RL(y|x) / pi_SFT(y|x)):
        kl[b,t]      = logprobs[b,t] - ref_logprobs[b,t]     (the k1 estimator of the KL)
        rewards[b,t] = -kl_coef * kl[b,t] + (t == last[b]) * scores[b]
    The sequence-level KL is split across tokens (as in Ziegler et al.'s code and TRL), so each
    token is charged for its own drift from the SFT model; the RM score lands on the last token
    (last[b] = mask[b].sum() - 1; the mask is True on a prefix of the response).
    logprobs, ref_logprobs (B,T) float, mask (B,T) bool, scores (B,) float, kl_coef float ->
    (rewards (B,T), kl (B,T)), both 0 on padding. A row with no real token gets no score."""
    # BEGIN SOLUTION kl_rewards
    kl = torch.where(mask, logprobs - ref_logprobs, 0.0)              # (B,T)
    rewards = -kl_coef * kl                                           # (B,T)
    n_real = mask.sum(1)                                              # (B,)
    last = (n_real - 1).clamp(min=0)                                  # (B,)
    score = torch.where(n_real > 0, scores, 0.0).to(rewards.dtype)    # (B,)
    rewards = rewards.scatter_add(1, last.unsqueeze(1), score.unsqueeze(1))
    return rewards, kl
    # END SOLUTION kl_rewards

def gae(rewards, values, mask, gamma=1.0, lam=0.95):
    """Generalised Advantage Estimation (Schulman et al. 2016), over response tokens only:
        delta_t = r_t + gamma * V_{t+1} - V_t
        A_t     = delta_t + gamma * lam * A_{t+1}
        R_t     = A_t + V_t                (the value function's regression target)
    The episode ends at the last real token, so V and A after it are 0 (no bootstrap from
    padding). rewards, values (B,T) float, mask (B,T) bool (True on a prefix) ->
    (advantages (B,T), returns (B,T)); padding positions get advantage 0 and return 0.
    Vectorised over B, a backward loop over T as in CleanRL's ppo.py. Pass detached tensors."""
    # BEGIN SOLUTION gae
    values = torch.where(mask, values, 0.0)        # V = 0 past the end: the terminal value
    rewards = torch.where(mask, rewards, 0.0)
    T = rewards.size(1)
    advantages = torch.zeros_like(rewards)         # (B,T)
    lastgaelam = torch.zeros_like(rewards[:, 0])   # (B,) A_{t+1}, 0 beyond the last real token
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t + 1 < T else torch.zeros_like(lastgaelam)
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        # the mask resets A to 0 on padding, so the last real token sees A_{t+1} = 0
        lastgaelam = torch.where(mask[:, t], delta + gamma * lam * lastgaelam, 0.0)
        advantages[:, t] = lastgaelam
    returns = advantages + values
    return advantages, returns
    # END SOLUTION gae

def whiten(x, mask, shift_mean=True):
    """Normalise x to mean 0, variance 1 over masked positions (TRL's masked_whiten):
        x' = (x - mean) / sqrt(var + 1e-8),  var unbiased (n-1)
    shift_mean=False adds the mean back (scale only), which TRL uses for rewards.
    x (B,T) float, mask (B,T) bool -> (B,T); padding stays exactly 0. Whitening the advantages
    of a batch keeps the policy step size independent of the reward model's scale."""
    # BEGIN SOLUTION whiten
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        out = out + mean
    return torch.where(mask, out, 0.0)
    # END SOLUTION whiten

def policy_loss(logprobs, old_logprobs, advantages, mask, clip_eps=0.2):
    """PPO clipped surrogate (Schulman et al. 2017), as a loss to minimise:
        ratio = exp(logprobs - old_logprobs)
        loss  = masked_mean( max(-A * ratio, -A * clip(ratio, 1-eps, 1+eps)) )
    logprobs (B,T) of the policy being trained (with grad), old_logprobs (B,T) from the
    rollout, advantages (B,T), mask (B,T) bool -> (loss, clip_frac, approx_kl), the last two
    detached diagnostics:
      clip_frac = fraction of real tokens where the clipped term is the larger one (active)
      approx_kl = masked mean of (ratio - 1) - log(ratio), the "k3" estimator of
                  KL(pi_old || pi) (Schulman's blog; CleanRL): unbiased, always >= 0."""
    # BEGIN SOLUTION policy_loss
    log_ratio = logprobs - old_logprobs                               # (B,T)
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    with torch.no_grad():
        clip_frac = masked_mean((pg_losses2 > pg_losses).float(), mask)
        approx_kl = masked_mean((ratio - 1) - log_ratio, mask)
    return loss, clip_frac, approx_kl
    # END SOLUTION policy_loss

def value_loss(values, old_values, returns, mask, clip_eps=0.2):
    """Clipped value loss (the PPO2 baselines / TRL form):
        v_clipped = old_values + clip(values - old_values, -eps, +eps)
        loss      = 0.5 * masked_mean( max((values - R)^2, (v_clipped - R)^2) )
    values (B,T) with grad, old_values (B,T) from the rollout, returns (B,T) from gae,
    mask (B,T) bool -> (loss, clip_frac); clip_frac (detached) = fraction of real tokens where
    the clipped error is the larger one. eps is in reward units, so it assumes rewards of O(1)."""
    # BEGIN SOLUTION value_loss
    v_clipped = old_values + torch.clamp(values - old_values, -clip_eps, clip_eps)
    vf_losses1 = (values - returns) ** 2
    vf_losses2 = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    with torch.no_grad():
        clip_frac = masked_mean((vf_losses2 > vf_losses1).float(), mask)
    return loss, clip_frac
    # END SOLUTION value_loss

@torch.no_grad()
def explained_variance(values, returns, mask):
    """1 - Var[R - V] / Var[R] over masked positions -> float. 1 is a perfect value function,
    0 is no better than predicting the mean, < 0 worse; nan when Var[R] = 0 (as in CleanRL)."""
    var_r = masked_var(returns, mask).item()
    return float("nan") if var_r == 0 else 1.0 - masked_var(returns - values, mask).item() / var_r

def adaptive_kl_coef(kl_coef, current_kl, target_kl, horizon, n_steps):
    """Adaptive KL controller (Ziegler et al. 2019; TRL's AdaptiveKLController):
        e     = clip(current_kl / target_kl - 1, -0.2, 0.2)
        beta' = beta * (1 + e * n_steps / horizon)
    beta grows when the policy drifts past the target KL and shrinks when it stays closer.
    kl_coef, current_kl (mean sequence KL of the batch), target_kl: floats; horizon, n_steps
    (episodes in this batch): ints -> new kl_coef float. The paper itself keeps beta fixed;
    the controller, from Ziegler et al., holds the KL near target_kl instead."""
    # BEGIN SOLUTION adaptive_kl
    proportional_error = min(max(current_kl / target_kl - 1.0, -0.2), 0.2)
    mult = 1.0 + proportional_error * n_steps / horizon
    return kl_coef * mult
    # END SOLUTION adaptive_kl

# -----------------------------------------------------------------------------
# evaluation statistics

def win_rate(scores_a, scores_b, tol=1e-9, z=1.959964):
    """Head-to-head comparison of policy A against B on the same prompts (paper sec. 4: the
    fraction of outputs preferred to a baseline's). scores_a, scores_b: equal-length sequences
    of floats (list, numpy array or 1-D tensor), e.g. gold scores. A pair is a tie when
    |a - b| <= tol. Returns dict(wins, losses, ties, win_rate, tie_rate, ci95):
      win_rate = wins / (wins + losses), among non-tied pairs only, so ties do not pull it to 0.5
      tie_rate = ties / all pairs
      ci95     = (lo, hi) Wilson score interval for win_rate. Wilson, not the normal
                 approximation p +- z*sqrt(p(1-p)/n): that one collapses to zero width at p = 0
                 or 1 and leaves [0,1] for small n, exactly where a few dozen eval prompts land.
      win_rate_ties_half, ci95_ties_half: the convention that counts a tie as half a win,
                 (wins + ties / 2) / all pairs, over all pairs, with its Wilson interval
    With no non-tied pair: win_rate 0.5 and ci95 (0, 1), i.e. no evidence either way."""
    a = [float(x) for x in scores_a]
    b = [float(x) for x in scores_b]
    if len(a) != len(b):
        raise ValueError(f"win_rate: {len(a)} scores vs {len(b)} scores")
    wins = sum(x - y > tol for x, y in zip(a, b))
    losses = sum(y - x > tol for x, y in zip(a, b))
    ties = len(a) - wins - losses
    n = wins + losses
    out = dict(wins=wins, losses=losses, ties=ties, tie_rate=ties / len(a) if a else 0.0,
               win_rate_ties_half=(wins + ties / 2) / len(a) if a else 0.5,
               ci95_ties_half=wilson_interval((wins + ties / 2) / len(a), len(a), z) if a else (0.0, 1.0))
    if n == 0:
        return {**out, "win_rate": 0.5, "ci95": (0.0, 1.0)}
    return {**out, "win_rate": wins / n, "ci95": wilson_interval(wins / n, n, z)}


def wilson_interval(p, n, z=1.959964):
    """Wilson score interval (lo, hi) of a proportion p observed over n trials (p may count
    half-successes, as a tie counted as half a win does)."""
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


def paired_difference(scores_a, scores_b, z=1.959964):
    """Mean of a_i - b_i over the same prompts, with a normal-approximation 95% interval:
    mean +- z * sd / sqrt(n), sd the unbiased standard deviation of the differences. Beside
    win_rate: a win rate counts only the sign of each pair, so many small gains and a few large
    losses look alike; the mean difference in gold keeps their size. Pairing by prompt removes
    the prompts' own difficulty from the noise. Returns dict(mean, ci95); n < 2 gives ci95 None."""
    a, b = [float(x) for x in scores_a], [float(x) for x in scores_b]
    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} scores vs {len(b)} scores")
    d = [x - y for x, y in zip(a, b)]
    m = sum(d) / len(d) if d else 0.0
    if len(d) < 2:
        return {"mean": m, "ci95": None}
    half = z * math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d))
    return {"mean": m, "ci95": (m - half, m + half)}


def best_of_n_expected(rm_scores, values, n):
    """The expected `values` of best-of-n among N >= n samples of one prompt, exactly over all
    C(N, n) subsets of them: the unbiased estimator of best-of-n that Gao et al. 2022 take from
    Nakano et al. 2021 (WebGPT), less noisy than splitting the N into N/n disjoint groups. With
    the samples sorted by RM score, the i-th lowest (i = 1..N) is the best of a random n-subset
    with probability
        C(i - 1, n - 1) / C(N, n).
    rm_scores, values: N floats each -> float. Ties in the RM score go to the earlier sample, as
    in best_of_n."""
    N = len(rm_scores)
    if not 1 <= n <= N or len(values) != N:
        raise ValueError(f"best_of_n_expected: need 1 <= n <= N = {N} and {N} values, got n = {n}, {len(values)}")
    order = sorted(range(N), key=lambda j: (float(rm_scores[j]), -j))   # ascending; among ties, the first last
    return sum(math.comb(i, n - 1) * float(values[j]) for i, j in enumerate(order)) / math.comb(N, n)


GAO_FORMS = {"bon": lambda d: d * d,                                   # R_bon(d) = d (a - b d)
             "rl": lambda d: d * math.log(d) if d > 0 else 0.0}         # R_RL(d) = d (a - b log d)


def gao_fit(d, gains, form):
    """Least squares fit of Gao, Schulman and Hilton 2022's forms for the gold reward gained over
    the initial policy against d = sqrt(KL(pi || pi_init)):
        best-of-n, form "bon":   R(d) = d (a - b d)
        RL,        form "rl":    R(d) = d (a - b log d)
    Both are linear in (a, b), R = a d - b f(d) with f(d) = d^2 or d log d (0 at d = 0), so one
    linear least squares solves it. d (>= 0), gains: equal-length sequences of floats -> (a, b).
    The bon form peaks at d = a / (2 b), the RL form at d = exp(a / b - 1) (gao_peak)."""
    if form not in GAO_FORMS:
        raise ValueError(f"gao_fit: form must be one of {sorted(GAO_FORMS)}, got {form!r}")
    d, y = [float(x) for x in d], [float(x) for x in gains]
    if len(d) != len(y) or len(d) < 2 or min(d) < 0:
        raise ValueError(f"gao_fit: need >= 2 points with d >= 0, got {len(d)} d and {len(y)} gains")
    X = torch.tensor([[x, -GAO_FORMS[form](x)] for x in d], dtype=torch.float64)   # (n, 2)
    a, b = torch.linalg.lstsq(X, torch.tensor(y, dtype=torch.float64).unsqueeze(1)).solution.squeeze(1).tolist()
    return a, b


def gao_curve(d, a, b, form):
    """R(d) of a fitted Gao form at each d (a list of floats) -> list of floats."""
    return [a * float(x) - b * GAO_FORMS[form](float(x)) for x in d]


def gao_peak(a, b, form):
    """The d at which a fitted Gao form peaks (inf when b <= 0: it never turns down)."""
    if b <= 0:
        return math.inf
    return a / (2 * b) if form == "bon" else math.exp(a / b - 1)


def best_of_n(scores):
    """Best-of-n sampling (Stiennon et al. 2020; Gao et al. 2023): from n independent samples per
    slot, keep the one the reward model scores highest. scores: n equal-length sequences, draw j's
    RM score per slot -> per slot, the index j of the kept draw (ties: the first). Its KL to the
    sampler is at most log(n) - (n - 1) / n, with no training: what the RM is worth without RL."""
    n = len(scores)
    if n == 0 or len({len(s) for s in scores}) != 1:
        raise ValueError(f"best_of_n: need n >= 1 draws of equal length, got lengths {[len(s) for s in scores]}")
    return [max(range(n), key=lambda j: float(scores[j][i])) for i in range(len(scores[0]))]


def best_of_n_kl_bound(n):
    """The KL of best-of-n to the sampled policy is at most log(n) - (n - 1) / n (Stiennon et
    al. 2020, App. G.3; equal to it when no two samples coincide)."""
    return math.log(n) - (n - 1) / n


# The reward of a response that never emitted end-of-text: the reward model was never trained to
# score one (the comparisons drop them), so reading it at some token it never saw as an end
# would be arbitrary. lm-human-preferences and Huang et al. 2024 replace such a score by a fixed
# penalty; ours is in the normalised RM's units (demonstrations: mean 0, standard deviation 1).
NO_EOT_SCORE = -2.0


def penalize_unended(scores, ended, penalty=NO_EOT_SCORE):
    """scores (B,) RM scores, ended (B,) bool -> (B,): the score where the response ended, the
    fixed `penalty` where it never did."""
    return torch.where(ended, scores, torch.full_like(scores, penalty))
