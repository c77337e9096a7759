"""Tests for nanoinstruct/rlhf.py: every loss against a hand-computed tiny case or an independent
plain-Python reference (never against the implementation's own earlier output)."""
import math

import numpy as np
import pytest
import torch

from nanoinstruct import rlhf


def logsig(x):
    return -math.log(1.0 + math.exp(-x))


def nll(row, target):
    """-log softmax(row)[target] in plain Python."""
    return math.log(sum(math.exp(z) for z in row)) - row[target]

# -----------------------------------------------------------------------------
# SFT and ptx

def test_sft_loss_hand_case_and_zero_grad_on_masked():
    rows = [[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0], [2.0, -1.0, 0.0]],
            [[0.3, 0.2, 0.1], [5.0, 1.0, 1.0], [-2.0, 0.0, 2.0]]]
    logits = torch.tensor(rows, requires_grad=True)                 # (B=2,T=3,V=3)
    targets = torch.tensor([[1, -100, 0], [2, 0, 7]])               # junk where masked
    mask = torch.tensor([[True, False, True], [False, True, False]])
    loss = rlhf.sft_loss(logits, targets, mask)
    expected = (nll(rows[0][0], 1) + nll(rows[0][2], 0) + nll(rows[1][1], 0)) / 3
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    loss.backward()
    assert torch.all(logits.grad[~mask] == 0)                       # exactly zero
    assert torch.all(logits.grad[mask].abs().sum(-1) > 0)


def test_ptx_loss_hand_case():
    rows = [[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]]
    loss = rlhf.ptx_loss(torch.tensor(rows), torch.tensor([[2, 1]]))
    assert loss.item() == pytest.approx((nll(rows[0][0], 2) + nll(rows[0][1], 1)) / 2, rel=1e-6)

# -----------------------------------------------------------------------------
# ranking loss (eq. 1)

def test_ranking_loss_hand_k3():
    rewards = torch.tensor([[2.0, 0.5, 1.0]])
    ranking = torch.tensor([[0, 2, 1]])                             # 0 > 2 > 1
    # pairs: (0,2): 2-1, (0,1): 2-0.5, (2,1): 1-0.5
    expected = -(logsig(1.0) + logsig(1.5) + logsig(0.5)) / 3
    assert rlhf.ranking_loss(rewards, ranking).item() == pytest.approx(expected, rel=1e-6)
    n_correct, n_pairs = rlhf.ranking_accuracy(rewards, ranking)
    assert (n_correct.item(), n_pairs.item()) == (3, 3)
    n_correct, n_pairs = rlhf.ranking_accuracy(torch.tensor([[2.0, 1.2, 1.0]]), ranking)
    assert (n_correct.item(), n_pairs.item()) == (2, 3)             # 2 vs 1 is now wrong


def reference_pairs(ranking_lists):
    """The explicit list of (prompt, winner, loser) from unpadded best->worst rankings."""
    return [(n, r[i], r[j]) for n, r in enumerate(ranking_lists)
            for i in range(len(r)) for j in range(i + 1, len(r))]


def test_ranking_loss_batched_equals_explicit_pairs_ragged():
    torch.manual_seed(0)
    ranking_lists = [[2, 0, 3, 1], [1, 0], [0, 2, 1]]               # K = 4, 2, 3
    ranking = torch.tensor([r + [-1] * (4 - len(r)) for r in ranking_lists])
    feats = torch.randn(3, 4, 5)
    feats[1, 2:] = 1e4                                              # padded slots: garbage
    feats[2, 3:] = -1e4
    scorer = torch.nn.Linear(5, 1)

    def explicit_loss(rewards):
        per_prompt = [0.0] * len(ranking_lists)
        for n, w, l in reference_pairs(ranking_lists):
            k = len(ranking_lists[n])
            per_prompt[n] = per_prompt[n] - torch.nn.functional.logsigmoid(
                rewards[n, w] - rewards[n, l]) / (k * (k - 1) / 2)
        return sum(per_prompt) / len(per_prompt)

    # w.r.t. the rewards themselves
    r1 = scorer(feats).squeeze(-1).detach().requires_grad_()
    r2 = r1.detach().clone().requires_grad_()
    loss1, loss2 = rlhf.ranking_loss(r1, ranking), explicit_loss(r2)
    loss1.backward(); loss2.backward()
    assert loss1.item() == pytest.approx(loss2.item(), rel=1e-6)
    assert torch.allclose(r1.grad, r2.grad, atol=1e-7)
    padded = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [0, 0, 0, 1]], dtype=torch.bool)
    assert torch.all(r1.grad[padded] == 0)

    # w.r.t. the parameters of a tiny linear scorer
    rlhf.ranking_loss(scorer(feats).squeeze(-1), ranking).backward()
    g1 = [p.grad.clone() for p in scorer.parameters()]
    scorer.zero_grad()
    explicit_loss(scorer(feats).squeeze(-1)).backward()
    for a, b in zip(g1, [p.grad for p in scorer.parameters()]):
        assert torch.allclose(a, b, atol=1e-6)

    # accuracy counts against the same explicit pair list
    rewards = scorer(feats).squeeze(-1).detach()
    pairs = reference_pairs(ranking_lists)
    n_correct, n_pairs = rlhf.ranking_accuracy(rewards, ranking)
    assert n_pairs.item() == len(pairs) == 6 + 1 + 3
    assert n_correct.item() == sum(rewards[n, w].item() > rewards[n, l].item() for n, w, l in pairs)

# -----------------------------------------------------------------------------
# PPO: rewards, GAE, whitening

def test_kl_penalized_rewards_hand_case():
    logprobs = torch.tensor([[-1.0, -2.0, 5.0, 5.0], [-0.5, -1.0, -1.5, -2.0]])
    ref_logprobs = torch.tensor([[-1.5, -1.0, 0.0, 0.0], [-0.5, -2.0, -1.0, -3.0]])
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])  # stops / never stops
    scores = torch.tensor([1.5, -2.0])
    rewards, kl = rlhf.kl_penalized_rewards(logprobs, ref_logprobs, mask, scores, kl_coef=0.1)
    expected_kl = torch.tensor([[0.5, -1.0, 0.0, 0.0], [0.0, 1.0, -0.5, 1.0]])
    expected = torch.tensor([[-0.05, 0.1 + 1.5, 0.0, 0.0], [0.0, -0.1, 0.05, -0.1 - 2.0]])
    assert torch.allclose(kl, expected_kl)
    assert torch.allclose(rewards, expected)


def gae_reference(rewards, values, lengths, gamma, lam):
    """Plain Python GAE, one row at a time, over the first `length` tokens."""
    B, T = len(rewards), len(rewards[0])
    adv = [[0.0] * T for _ in range(B)]
    ret = [[0.0] * T for _ in range(B)]
    for b in range(B):
        n, a = lengths[b], 0.0
        for t in reversed(range(n)):
            next_v = values[b][t + 1] if t + 1 < n else 0.0
            a = rewards[b][t] + gamma * next_v - values[b][t] + gamma * lam * a
            adv[b][t], ret[b][t] = a, a + values[b][t]
    return adv, ret


def test_gae_matches_python_loop():
    torch.manual_seed(1)
    lengths = [7, 1, 4, 0, 5]
    B, T = len(lengths), 7
    rewards, values = torch.randn(B, T, dtype=torch.float64), torch.randn(B, T, dtype=torch.float64)
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    adv, ret = rlhf.gae(rewards, values, mask, gamma=0.9, lam=0.8)
    ref_adv, ref_ret = gae_reference(rewards.tolist(), values.tolist(), lengths, 0.9, 0.8)
    assert torch.allclose(adv, torch.tensor(ref_adv, dtype=torch.float64))
    assert torch.allclose(ret, torch.tensor(ref_ret, dtype=torch.float64))
    assert torch.all(adv[~mask] == 0) and torch.all(ret[~mask] == 0)


def test_whiten():
    torch.manual_seed(2)
    x = torch.randn(4, 6, dtype=torch.float64) * 3 + 2
    mask = torch.arange(6)[None, :] < torch.tensor([6, 2, 4, 3])[:, None]
    x[~mask] = 1e6                                                  # padding must not leak in
    w = rlhf.whiten(x, mask)
    vals = w[mask]
    assert vals.mean().item() == pytest.approx(0.0, abs=1e-9)
    assert vals.var(unbiased=True).item() == pytest.approx(1.0, rel=1e-6)
    assert torch.all(w[~mask] == 0)
    w2 = rlhf.whiten(x, mask, shift_mean=False)                     # scale only: mean kept
    assert w2[mask].mean().item() == pytest.approx(x[mask].mean().item(), rel=1e-9)
    assert torch.all(w2[~mask] == 0)

# -----------------------------------------------------------------------------
# PPO: clipped losses

def test_policy_loss_hand_case():
    # ratios 1.5, 0.5, 0.5, 1.5 with advantages +1, +1, -2, -2, and one padded token
    old = torch.zeros(1, 5)
    logprobs = torch.tensor([[math.log(1.5), math.log(0.5), math.log(0.5), math.log(1.5),
                              math.log(3.0)]], requires_grad=True)
    adv = torch.tensor([[1.0, 1.0, -2.0, -2.0, 100.0]])
    mask = torch.tensor([[True, True, True, True, False]])
    loss, clip_frac, approx_kl = rlhf.policy_loss(logprobs, old, adv, mask, clip_eps=0.2)
    # max(-A r, -A clip(r)): A>0,r=1.5 -> max(-1.5,-1.2)=-1.2 (clipped); A>0,r=.5 -> max(-.5,-.8)=-.5;
    # A<0,r=.5 -> max(1.0,1.6)=1.6 (clipped); A<0,r=1.5 -> max(3.0,2.4)=3.0
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.6 + 3.0) / 4, rel=1e-6)
    assert clip_frac.item() == pytest.approx(0.5)
    k3 = lambda r: (r - 1) - math.log(r)
    assert approx_kl.item() == pytest.approx((2 * k3(1.5) + 2 * k3(0.5)) / 4, rel=1e-6)
    loss.backward()
    # d/dlogprob of -A*ratio is -A*ratio; clipped tokens and padding get none
    expected_grad = torch.tensor([[0.0, -1.0 * 0.5, 0.0, 2.0 * 1.5, 0.0]]) / 4
    assert torch.allclose(logprobs.grad, expected_grad, atol=1e-7)


def test_policy_loss_ratio_one_is_policy_gradient():
    torch.manual_seed(3)
    logprobs = torch.randn(3, 5, requires_grad=True)
    adv = torch.randn(3, 5)
    mask = torch.arange(5)[None, :] < torch.tensor([5, 2, 3])[:, None]
    loss, clip_frac, approx_kl = rlhf.policy_loss(logprobs, logprobs.detach(), adv, mask)
    loss.backward()
    lp2 = logprobs.detach().clone().requires_grad_()
    (-(adv * lp2)[mask].mean()).backward()
    assert torch.allclose(logprobs.grad, lp2.grad, atol=1e-7)
    assert clip_frac.item() == 0 and approx_kl.item() == pytest.approx(0.0, abs=1e-7)


def test_value_loss_hand_case():
    values = torch.tensor([[0.5, 0.5, 1.1, 9.0]], requires_grad=True)
    old_values = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    returns = torch.tensor([[1.0, 0.0, 3.0, 0.0]])
    mask = torch.tensor([[True, True, True, False]])
    loss, clip_frac = rlhf.value_loss(values, old_values, returns, mask, clip_eps=0.2)
    # t0: max((.5-1)^2, (.2-1)^2)=.64 clipped; t1: max(.25, .04)=.25; t2: inside eps, 1.9^2=3.61
    assert loss.item() == pytest.approx(0.5 * (0.64 + 0.25 + 3.61) / 3, rel=1e-6)
    assert clip_frac.item() == pytest.approx(1 / 3)
    loss.backward()
    # clipped t0 has no grad w.r.t. values; t1: (v-R)/3 = .5/3; t2: 0.5*2*(1.1-3)/3
    assert torch.allclose(values.grad, torch.tensor([[0.0, 0.5 / 3, -1.9 / 3, 0.0]]), atol=1e-6)

# -----------------------------------------------------------------------------
# helpers, KL controller, statistics

def test_masked_mean_entropy_explained_variance():
    x = torch.tensor([[1.0, 2.0, float("inf")], [3.0, float("nan"), 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert rlhf.masked_mean(x, mask).item() == pytest.approx(2.0)
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, -1e9, -1e9]]])
    ent = rlhf.entropy_from_logits(logits)                          # uniform over 4; (3/4, 1/4)
    assert ent[0, 0].item() == pytest.approx(math.log(4), rel=1e-6)
    assert ent[0, 1].item() == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), rel=1e-5)
    returns = torch.tensor([[1.0, 2.0, 4.0, 7.0]])
    m = torch.ones(1, 4, dtype=torch.bool)
    assert rlhf.explained_variance(returns, returns, m) == pytest.approx(1.0)
    assert rlhf.explained_variance(torch.full((1, 4), 3.5), returns, m) == pytest.approx(0.0, abs=1e-6)


def test_adaptive_kl_coef_hand_sequence():
    # target 6, horizon 10000, 256 episodes per step: n_steps / horizon = 0.0256
    coef, got = 0.1, []
    for kl in [9.0, 6.6, 3.0, 6.0]:   # errors: +0.5 -> clip +0.2, +0.1, -0.5 -> clip -0.2, 0
        coef = rlhf.adaptive_kl_coef(coef, kl, target_kl=6.0, horizon=10000, n_steps=256)
        got.append(coef)
    expected = [0.1 * 1.00512, 0.1 * 1.00512 * 1.00256, 0.1 * 1.00512 * 1.00256 * 0.99488]
    expected.append(expected[-1])
    assert got == pytest.approx(expected, rel=1e-12)


def test_win_rate_wilson():
    z = 1.959964
    a = [1.0] * 7 + [0.0] * 3 + [0.5, 2.0]
    b = [0.0] * 7 + [1.0] * 3 + [0.5, 2.0 + 1e-12]                  # 7 wins, 3 losses, 2 ties
    out = rlhf.win_rate(a, b)
    assert (out["wins"], out["losses"], out["ties"]) == (7, 3, 2)
    assert out["win_rate"] == pytest.approx(0.7)
    assert out["tie_rate"] == pytest.approx(2 / 12)
    # the Wilson interval in its closed form: (2np + z^2 -+ z sqrt(z^2 + 4np(1-p))) / (2(n + z^2))
    n, p = 10, 0.7
    lo = (2 * n * p + z * z - z * math.sqrt(z * z + 4 * n * p * (1 - p))) / (2 * (n + z * z))
    hi = (2 * n * p + z * z + z * math.sqrt(z * z + 4 * n * p * (1 - p))) / (2 * (n + z * z))
    assert out["ci95"] == pytest.approx((lo, hi), rel=1e-9)
    assert out["ci95"] == pytest.approx((0.3968, 0.8922), abs=1e-4)  # published value for 7/10
    # numpy and torch inputs give the same answer; all-ties has no evidence either way
    assert rlhf.win_rate(np.array(a), torch.tensor(b, dtype=torch.float64)) == out
    ties = rlhf.win_rate([1.0, 2.0], [1.0, 2.0])
    assert ties["win_rate"] == 0.5 and ties["ci95"] == (0.0, 1.0) and ties["tie_rate"] == 1.0
    # all wins: the upper bound is 1 but the lower bound stays below 1 (normal approx. would not)
    allwin = rlhf.win_rate([1.0] * 5, [0.0] * 5)
    assert allwin["win_rate"] == 1.0 and allwin["ci95"][1] == pytest.approx(1.0) and allwin["ci95"][0] < 0.6


def test_paired_difference():
    # differences 1, 2, 3, 4: mean 2.5, unbiased sd sqrt(5/3), half-width z * sd / 2
    out = rlhf.paired_difference([1.0, 3.0, 3.0, 5.0], [0.0, 1.0, 0.0, 1.0])
    half = 1.959964 * math.sqrt(5 / 3) / 2
    assert out["mean"] == pytest.approx(2.5)
    assert out["ci95"] == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)
    # pairing matters: the same scores shuffled against each other give another answer
    assert rlhf.paired_difference([1.0, 3.0, 3.0, 5.0], [1.0, 0.0, 1.0, 0.0])["mean"] == pytest.approx(2.5)
    assert rlhf.paired_difference([1.0, 3.0, 3.0, 5.0], [1.0, 0.0, 1.0, 0.0])["ci95"] != pytest.approx(out["ci95"])
    # identical policies: zero with a zero-width interval; one prompt: no interval; ragged: an error
    assert rlhf.paired_difference([0.2, 0.7], [0.2, 0.7]) == {"mean": 0.0, "ci95": (0.0, 0.0)}
    assert rlhf.paired_difference([0.9], [0.4]) == {"mean": pytest.approx(0.5), "ci95": None}
    with pytest.raises(ValueError):
        rlhf.paired_difference([1.0, 2.0], [1.0])


def test_win_rate_ties_as_half():
    a, b = [1.0, 2.0, 3.0, 0.0, 5.0], [0.0, 2.0, 3.0, 1.0, 4.0]   # 2 wins, 1 loss, 2 ties
    out = rlhf.win_rate(a, b)
    assert out["win_rate"] == pytest.approx(2 / 3)
    assert out["win_rate_ties_half"] == pytest.approx((2 + 2 / 2) / 5)
    lo, hi = out["ci95_ties_half"]
    assert (lo, hi) == pytest.approx(rlhf.wilson_interval(0.6, 5)) and lo < 0.6 < hi
    # hand-computed Wilson interval for p = 0.6, n = 5 (z = 1.96): centre 0.5681, half-width 0.3374
    assert lo == pytest.approx(0.2307, abs=1e-3) and hi == pytest.approx(0.8824, abs=1e-3)


def test_penalize_unended():
    scores = torch.tensor([0.5, -1.0, 3.0])
    out = rlhf.penalize_unended(scores, torch.tensor([True, False, False]), penalty=-2.0)
    assert out.tolist() == [0.5, -2.0, -2.0]
    assert rlhf.penalize_unended(scores, torch.tensor([False, True, True]))[0].item() == rlhf.NO_EOT_SCORE


def test_best_of_n():
    # three draws for four slots: the kept draw per slot is the highest score, the first on a tie
    scores = [[0.1, 2.0, -1.0, 0.5], [0.3, 1.0, -2.0, 0.5], [0.2, 3.0, -3.0, 0.4]]
    assert rlhf.best_of_n(scores) == [1, 2, 0, 0]
    assert rlhf.best_of_n([[1.0, 2.0]]) == [0, 0]                       # n = 1 keeps every sample
    with pytest.raises(ValueError):
        rlhf.best_of_n([[1.0], [1.0, 2.0]])
    # KL bound: 0 for n = 1; log 2 - 1/2 for n = 2, checked against the exact KL of best-of-2 over
    # m equally likely distinct samples: P(i-th best) = (2(m - i) - 1) / m^2, i = 0..m-1
    assert rlhf.best_of_n_kl_bound(1) == 0.0
    m = 4000
    kl = sum(q * math.log(q * m) for q in ((2 * (m - i) - 1) / m ** 2 for i in range(m)))
    assert rlhf.best_of_n_kl_bound(2) == pytest.approx(math.log(2) - 0.5) == pytest.approx(kl, abs=1e-3)


def test_best_of_n_expected_equals_all_subsets():
    """The order-statistics estimator equals the mean, over every n-subset of the N samples, of
    the value of the subset's RM favourite (picked as best_of_n picks it, ties to the first)."""
    import itertools
    rm = [0.3, -1.2, 2.0, 0.3, 0.9, -0.4, 1.1]                  # a tie: samples 0 and 3
    gold = [0.5, 0.1, 0.2, 0.9, 0.7, 0.4, 0.6]
    for n in range(1, len(rm) + 1):
        subsets = list(itertools.combinations(range(len(rm)), n))
        brute = sum(gold[s[rlhf.best_of_n([[rm[j]] for j in s])[0]]] for s in subsets) / len(subsets)
        assert rlhf.best_of_n_expected(rm, gold, n) == pytest.approx(brute, abs=1e-12)
    assert rlhf.best_of_n_expected(rm, gold, 1) == pytest.approx(sum(gold) / len(gold))
    assert rlhf.best_of_n_expected(rm, gold, len(rm)) == gold[2]          # all of them: the favourite
    with pytest.raises(ValueError):
        rlhf.best_of_n_expected(rm, gold, len(rm) + 1)


# -----------------------------------------------------------------------------
# DPO and the over-optimisation fits (experiments/)

def softplus(x):
    return math.log1p(math.exp(x))


def test_sequence_logprobs_hand_case():
    rows = [[[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], [[0.3, 0.2, 0.1], [5.0, 1.0, 1.0]]]
    targets = torch.tensor([[1, 2], [-100, 0]])
    mask = torch.tensor([[True, True], [False, True]])
    got = rlhf.sequence_logprobs(torch.tensor(rows), targets, mask)
    assert got.tolist() == pytest.approx([-nll(rows[0][0], 1) - nll(rows[0][1], 2), -nll(rows[1][1], 0)], abs=1e-6)


def test_dpo_loss_hand_cases():
    # K = 2, eq. 7: response 1 is the better one; h = beta * (logp - ref) = [0.5, -0.5]
    logps = torch.tensor([[-3.0, -5.0]], requires_grad=True)
    loss, h = rlhf.dpo_loss(logps, torch.tensor([[-4.0, -4.0]]), torch.tensor([[1, 0]]), beta=0.5)
    assert loss.item() == pytest.approx(softplus(1.0), rel=1e-6)          # -log sigmoid(-0.5 - 0.5)
    assert h.tolist() == [[0.5, -0.5]] and not h.requires_grad
    # the gradient's sign: descent raises the chosen log-ratio and lowers the rejected one,
    # by beta * sigmoid(h_l - h_w) = 0.5 * sigmoid(1) each
    loss.backward()
    g = 0.5 / (1 + math.exp(-1.0))
    assert logps.grad.tolist() == [[pytest.approx(g), pytest.approx(-g)]]
    stepped = logps.detach() - 0.1 * logps.grad
    assert stepped[0, 1] > logps[0, 1] and stepped[0, 0] < logps[0, 0]
    # K = 3 and a K = 2 prompt padded to 3: per prompt the mean over its C(K,2) pairs of
    # -log sigmoid(h_w - h_l), then the mean over prompts (beta 1: h = logp - ref)
    logps = torch.tensor([[-1.0, -2.0, -4.0], [-3.0, -1.0, 0.0]])
    ref = torch.tensor([[-2.0, -2.0, -2.0], [-3.0, -3.0, 0.0]])          # h = [1, 0, -2], [0, 2, pad]
    ranking = torch.tensor([[0, 1, 2], [0, 1, -1]])
    loss, _ = rlhf.dpo_loss(logps, ref, ranking, beta=1.0)
    first = (softplus(-1.0) + softplus(-3.0) + softplus(-2.0)) / 3
    second = softplus(2.0)                                                 # the labelers' better one has h 0 < 2
    assert loss.item() == pytest.approx((first + second) / 2, rel=1e-6)
    # the policy equal to its reference: every pair at log 2
    loss, _ = rlhf.dpo_loss(ref, ref, ranking, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-6)


def test_dpo_step_through_a_model_raises_the_chosen_log_ratio():
    """One gradient step of DPO on a tiny GPT, from its own copy as the reference: the chosen
    response's log-ratio rises above 0 and the rejected one's falls below."""
    from nanoinstruct.model import GPT, GPTConfig
    torch.manual_seed(0)
    policy = GPT(GPTConfig(vocab_size=32, block_size=16, n_layer=1, n_head=2, n_embd=16, dropout=0.0), verbose=False)
    prompt, chosen, rejected = [1, 2, 3], [4, 5, 6, 0], [7, 8, 0]
    seqs = [prompt + chosen, prompt + rejected + [0]]                       # right-padded with 0
    x = torch.tensor([s[:-1] for s in seqs])
    y = torch.tensor([s[1:] for s in seqs])
    mask = torch.tensor([[False, False, True, True, True, True], [False, False, True, True, True, False]])

    def logps():
        return rlhf.sequence_logprobs(policy.lm_logits(policy(x)), y, mask).view(1, 2)   # (N=1, K=2)

    with torch.no_grad():
        ref = logps()
    loss, _ = rlhf.dpo_loss(logps(), ref, torch.tensor([[0, 1]]), beta=0.5)
    assert loss.item() == pytest.approx(math.log(2), rel=1e-5)
    loss.backward()
    with torch.no_grad():
        for p in policy.parameters():
            p -= 0.05 * p.grad
        ratio = (logps() - ref)[0]
    assert ratio[0] > 1e-4 and ratio[1] < -1e-4


def test_gao_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    # best-of-n: d at n = 1..64, R = d (a - b d)
    d_bon = [math.sqrt(rlhf.best_of_n_kl_bound(n)) for n in (1, 2, 4, 8, 16, 32, 64)]
    r_bon = [d * (0.30 - 0.08 * d) for d in d_bon]
    a, b = rlhf.gao_fit(d_bon, r_bon, "bon")
    assert (a, b) == (pytest.approx(0.30, abs=1e-9), pytest.approx(0.08, abs=1e-9))
    assert rlhf.gao_curve([0.0, 1.0], a, b, "bon") == [0.0, pytest.approx(0.22)]
    assert rlhf.gao_peak(a, b, "bon") == pytest.approx(0.30 / 0.16)
    # RL: R = d (a - b log d), d up to 6, with noise: recovered within a few hundredths
    d_rl = list(np.linspace(0.0, 6.0, 40))
    r_rl = [d * (0.20 - 0.10 * (math.log(d) if d > 0 else 0.0)) + rng.normal(0, 0.005) for d in d_rl]
    a, b = rlhf.gao_fit(d_rl, r_rl, "rl")
    assert abs(a - 0.20) < 0.02 and abs(b - 0.10) < 0.01
    assert rlhf.gao_peak(0.20, 0.10, "rl") == pytest.approx(math.exp(1.0))   # d = e^(a/b - 1)
    # the wrong form does not fit the RL points as well
    res = lambda form: sum((r - f) ** 2 for r, f in zip(r_rl, rlhf.gao_curve(d_rl, *rlhf.gao_fit(d_rl, r_rl, form), form)))  # noqa: E731
    assert res("rl") < res("bon") / 2
    assert rlhf.gao_peak(0.2, -0.1, "bon") == math.inf
    with pytest.raises(ValueError):
        rlhf.gao_fit([0.1, 0.2], [0.0, 0.1], "linear")
