"""The stage scripts end to end on a micro preset (the README's `PRESET=configs/micro bash run.sh`,
run once per session by conftest's readme_run: the `micro` fixture), and the
details the issues single out (exact resume: test_resume.py): the SFT mask, the reward read at the
right token, the RM's normalisation bias, comparison collection, the report's well-formedness."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from nanoinstruct import common, data, rlhf, tokenizer, world

from conftest import ROOT


def run(*args, env=None, check=True):
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_pipeline_report_well_formed(micro):
    out, stdout = micro
    assert "| policy | gold score |" in stdout          # ends by printing the results table
    report = json.load(open(out / "eval" / "report.json"))
    assert set(report["policies"]) == {"base", "sft", "ppo", "ppo_ptx"}
    # SFT sampled colder (and the best temperature by gold), SFT's best of 2 and of 4 samples by
    # the RM: the no-training baselines
    refs = report["references"]
    assert set(refs) == {"sft_T0.3", "sft_T0.5", "sft_T0.7", "sft_best_T", "sft_best_of_2", "sft_best_of_4"}
    for n in (2, 4):
        assert refs[f"sft_best_of_{n}"]["kl_to_sft"] == pytest.approx(math.log(n) - (n - 1) / n)   # the best-of-n bound
    sweep = {0.3: refs["sft_T0.3"], 0.5: refs["sft_T0.5"], 0.7: refs["sft_T0.7"], 1.0: report["policies"]["sft"]}
    best_t = refs["sft_best_T"]["temperature"]
    assert refs["sft_best_T"]["gold_score"] == max(r["gold_score"] for r in sweep.values()) == sweep[best_t]["gold_score"]
    rows = {**report["policies"], **refs}
    for name, p in rows.items():
        for key in ("gold_score", "win_rate_vs_sft", "tie_rate_vs_sft", "rm_score", "kl_to_sft", "pretrain_val_loss",
                    "benchmark_accuracy", "win_rate_ties_half"):
            assert finite(p[key]), (name, key, p[key])
        lo, hi = p["win_rate_ci95"]
        assert 0 <= lo <= p["win_rate_vs_sft"] <= hi <= 1
        lo, hi = p["win_rate_ties_half_ci95"]
        assert 0 <= lo <= p["win_rate_ties_half"] <= hi <= 1
        lo, hi = p["benchmark_accuracy_ci95"]
        assert 0 <= lo <= p["benchmark_accuracy"] <= hi <= 1
        lo, hi = p["gold_vs_sft_ci95"]
        assert lo <= p["gold_vs_sft"] <= hi and -1 <= p["gold_vs_sft"] <= 1
        assert p["gold_by_family"] and all(finite(v) for v in p["gold_by_family"].values())
    # the report's gold figures are those of the saved samples (4 per prompt), re-scored here
    samples = json.load(open(out / "eval" / "samples.json"))
    mark = " [no end-of-text]"

    def gold(p, t):
        return world.gold_score(p, t.removesuffix(mark), ended=not t.endswith(mark))

    base = [sum(gold(p, t) for t in ts) / len(ts) for p, ts in zip(samples["prompts"], samples["sft_baseline"])]
    for name, p in rows.items():
        assert len(samples[name]) == len(samples["prompts"]) and all(len(ts) == 4 for ts in samples[name])
        mine = [sum(gold(q, t) for t in ts) / len(ts) for q, ts in zip(samples["prompts"], samples[name])]
        assert p["gold_score"] == pytest.approx(sum(mine) / len(mine))
        assert p["gold_vs_sft"] == pytest.approx(rlhf.paired_difference(mine, base)["mean"])
    assert {"val_accuracy", "gold_accuracy", "labeler_agreement"} <= set(report["reward_model"])
    assert finite(report["reward_model"]["val_accuracy"]) and finite(report["reward_model"]["labeler_agreement"])
    stages = {"world", "pretrain", "sft", "collect", "rm", "ppo", "ppo_ptx", "evaluate", "total"}
    assert stages <= set(report["wall_time_s"]) and all(finite(v) for v in report["wall_time_s"].values())
    md = (out / "eval" / "report.md").read_text()
    assert md.count("| ppo_ptx |") == 2 and md.count("| sft_T0.7 |") == 2 and md.count("| sft_best_of_4 |") == 2
    assert md.count(f"| sft_best_T (T={best_t:g}) |") == 1 and md.count("| sft_best_T |") == 1   # both tables
    for png in ("training_curves.png", "ppo_rm_vs_gold.png", "win_rates.png"):
        blob = (out / "eval" / png).read_bytes()
        assert blob[:8] == b"\x89PNG\r\n\x1a\n" and len(blob) > 5000


def test_every_stage_writes_a_loadable_checkpoint(micro):
    out, _ = micro
    for run_dir in ("base", "sft", "rm", "ppo", "ppo_ptx", "ppo/value"):
        model, ckpt = common.load_model(str(out / run_dir), verbose=False)
        assert set(ckpt) >= {"model", "model_config", "config", "step", "optimizer", "rng"}
        assert json.load(open(out / run_dir / "config.json")) == ckpt["config"]
    rows = [json.loads(line) for line in open(out / "ppo_ptx" / "metrics.jsonl")]
    keys = {"rm_score", "kl", "kl_coef", "policy_loss", "value_loss", "clip_frac", "approx_kl", "entropy",
            "explained_var", "response_len", "no_eot_frac", "ptx_loss", "gold"}
    assert len(rows) == 2 and all(keys <= set(r) for r in rows)
    assert all(r["ptx_loss"] > 0 for r in rows)
    assert all(r["ptx_loss"] == 0 for r in (json.loads(line) for line in open(out / "ppo" / "metrics.jsonl")))


def test_reward_model_normalised_on_demonstrations(micro):
    """The RM checkpoint's bias makes the demonstrations' mean reward 0 (paper sec. 3.5), and its
    gain their standard deviation 1 (lm-human-preferences)."""
    out, _ = micro
    rm, ckpt = common.load_model(str(out / "rm"), scalar_head=True, verbose=False)
    enc, _ = common.load_tokenizer("", ckpt)
    demos = data.read_jsonl(str(out / "world" / "demos_train.jsonl"), "demonstrations")
    import random
    demos = random.Random(0).sample(demos, min(ckpt["config"]["norm_samples"], len(demos)))
    ex = [data.encode_example(enc, d["prompt"], d["response"], rm.config.block_size)[0] for d in demos]
    x, lengths = data.pad_right(ex, enc.eot_token)
    with torch.no_grad():
        r = rm.scores(rm(x)[torch.arange(len(ex)), lengths - 1])
    # the trunk ran under the run's autocast (bf16 on CPUs that have it), float32 here
    assert abs(r.mean().item()) < 2e-3 and r.std().item() == pytest.approx(1.0, abs=2e-3)
    assert ckpt["reward_norm"]["std"] > 0 and ckpt["reward_norm"]["std"] != 1.0   # a gain was actually applied


def test_collected_comparisons_are_valid_kwise(micro):
    out, _ = micro
    rows = data.read_jsonl(str(out / "world" / "comparisons_train.jsonl"), "comparisons")
    rows += data.read_jsonl(str(out / "world" / "comparisons_val.jsonl"), "comparisons")
    assert rows and all(2 <= len(r["responses"]) <= 4 for r in rows)
    assert all(len(set(r["responses"])) == len(r["responses"]) for r in rows)   # duplicates dropped
    assert all(len(r["gold"]) == len(r["responses"]) == len(r["ended"]) for r in rows)   # "ended" kept
    # the labelers saw which responses ended: an unended one carries the world's unended gold
    for r in rows:
        for text, g, e in zip(r["responses"], r["gold"], r["ended"]):
            assert g == pytest.approx(world.gold_score(r["prompt"], text, ended=e), abs=1e-6)
    meta = json.load(open(out / "world" / "comparisons_meta.json"))
    assert 0 <= meta["labeler_agreement"] <= 1 and meta["prompts"] == len(rows)


def test_sft_pretraining_mix_share(tmp_path, micro):
    """--ptx_frac: corpus windows join SFT's batches so that that share of the learned tokens is
    pretraining text (whole windows, so it may fall short by less than one window)."""
    out, _ = micro
    world_dir = out / "world"
    stdout = run("train_sft.py", "--config=configs/micro/sft.py", f"--init_from={out / 'base'}",
                 f"--out_dir={tmp_path / 'sft'}", f"--train_file={world_dir / 'demos_train.jsonl'}",
                 f"--val_file={world_dir / 'demos_val.jsonl'}", f"--ptx_bin={world_dir / 'train.bin'}",
                 "--ptx_frac=0.25", "--n_samples=0")
    line = next(x for x in stdout.splitlines() if x.startswith("pretraining mix:"))
    corpus, resp = (int(w) for w in line.split() if w.isdigit())
    block = common.load_model(str(tmp_path / "sft"), verbose=False)[0].config.block_size
    assert corpus > 0 and 0 <= resp / 3 - corpus < block     # 0.25 / 0.75 = 1/3 corpus per response token


def test_sft_batch_masks_prompt_and_padding():
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: the cat sat on a mat", 280))
    ex = [data.encode_example(enc, "the cat", "sat on a mat", 64)[:2], data.encode_example(enc, "a", "cat", 64)[:2]]
    x, y, mask = data.sft_batch(ex, enc.eot_token)
    for i, (ids, n_prompt) in enumerate(ex):
        # exactly the response tokens (EOT included) are targets; prompt and padding are not
        assert y[i][mask[i]].tolist() == ids[n_prompt:]
        assert y[i][mask[i]].tolist()[-1] == enc.eot_token
    assert mask.sum().item() == sum(len(ids) - n for ids, n in ex)
    # and no gradient reaches the logits at masked positions
    logits = torch.randn(*x.shape, enc.n_vocab, requires_grad=True)
    rlhf.sft_loss(logits, y, mask).backward()
    assert (logits.grad[~mask] == 0).all() and (logits.grad[mask].abs().sum(-1) > 0).all()


def test_length_grouped_order_is_an_epoch_of_similar_length_batches():
    """Every example once; full batches first, the short one last; each batch's padding far below
    a random batch's; group 1 is the plain shuffle; the batches' order is itself random."""
    import random
    lengths = [random.Random(i).randint(5, 80) for i in range(1003)]   # 31 full batches of 32 + 11
    order = data.length_grouped_order(lengths, 32, 8, random.Random(0))
    assert sorted(order) == list(range(1003))
    batches = [order[k:k + 32] for k in range(0, 1003, 32)]
    assert [len(b) for b in batches] == [32] * 31 + [11]

    def padded(bs):   # tokens a batch computes beyond its real ones, over the epoch
        return sum(max(lengths[j] for j in b) * len(b) - sum(lengths[j] for j in b) for b in bs)
    plain = data.length_grouped_order(lengths, 32, 1, random.Random(0))
    shuffled = list(range(1003))
    random.Random(0).shuffle(shuffled)
    assert plain == shuffled
    assert padded(batches) < 0.25 * padded([plain[k:k + 32] for k in range(0, 1003, 32)])
    firsts = [min(lengths[j] for j in b) for b in batches[:31]]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    assert order != data.length_grouped_order(lengths, 32, 8, random.Random(1))


def test_sft_scored_against_itself_has_kl_zero_and_others_do_not():
    """scoring.sample_and_score: SFT at the reference temperature gets KL exactly 0 (no forward);
    SFT at another temperature, and another model, get the one-sample estimate (nonzero)."""
    from nanoinstruct import scoring
    from nanoinstruct.model import GPT, GPTConfig
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: the cat sat on a mat", 280))
    torch.manual_seed(0)
    cfg = GPTConfig(block_size=32, vocab_size=enc.n_vocab, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
    sft, other = GPT(cfg).eval(), GPT(cfg).eval()
    rm = GPT(GPTConfig(**{**cfg.__dict__, "scalar_head": True})).eval()

    def kl(policy, t):
        out = scoring.sample_and_score(policy, sft, rm, enc, ["the cat"] * 4, t, torch.Generator().manual_seed(0),
                                       lambda p, r, ended: 0.0, -2.0, max_new_tokens=6)
        return out["kl"]
    assert kl(sft, 1.0) == [0.0] * 4
    assert all(abs(v) > 1e-4 for v in kl(sft, 0.5)) and all(abs(v) > 1e-4 for v in kl(other, 1.0))


def test_reward_read_at_eot_for_ragged_padded_batch():
    """comparison_batch + reading at `last` gives each response's score at its own EOT: the same
    as scoring it alone without padding, and not one position off."""
    torch.manual_seed(0)
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: a b c d e f g h", 270))
    from nanoinstruct.model import GPT, GPTConfig, last_token_scores
    rm = GPT(GPTConfig(vocab_size=enc.n_vocab, block_size=64, n_layer=2, n_head=2, n_embd=32, scalar_head=True), verbose=False)
    comps = [{"prompt": "a b", "responses": ["c", "d e f g h", "e f"], "ranking": [1, 2, 0]},
             {"prompt": "a b c d e", "responses": ["f", "g h"], "ranking": [0, 1]}]
    x, last, rows, gold, _ = data.comparison_batch(comps, enc, 64)
    assert (x[torch.arange(len(last)), last] == enc.eot_token).all()
    with torch.no_grad():
        batched = last_token_scores(rm, x, last)                     # what train_rm.py reads
        for n, c in enumerate(comps):
            for slot, idx in enumerate(c["ranking"]):
                ids, _, _ = data.encode_example(enc, c["prompt"], c["responses"][idx], 64)
                alone = rm.scores(rm(torch.tensor([ids])))[0]
                row = rows[n, slot].item()
                assert abs(batched[row] - alone[-1]) < 1e-5          # at the EOT
                assert abs(batched[row] - alone[-2]) > 1e-6          # not the token before
    assert rows.tolist() == [[0, 1, 2], [3, 4, -1]] and torch.isnan(gold).all()


def test_hh_prompt_longer_than_context_is_cut_from_the_left():
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: hello there friend how are you", 300))
    chosen = "\n\nHuman: hello there\n\nAssistant: hi\n\nHuman: how are you friend\n\nAssistant: fine thanks"
    rejected = "\n\nHuman: hello there\n\nAssistant: hi\n\nHuman: how are you friend\n\nAssistant: go away"
    prompt, c, r = data.split_hh(chosen, rejected)
    assert prompt.endswith("friend\n\nAssistant:") and prompt.count("Human:") == 2 and (c, r) == ("fine thanks", "go away")
    full, n_prompt, cut = data.encode_example(enc, prompt, c, 10_000)
    assert cut == 0 and full == enc.encode_ordinary(chosen) + [enc.eot_token]
    ids, n_prompt, cut = data.encode_example(enc, prompt, c, 12)
    assert len(ids) == 12 and cut == len(full) - 12
    assert ids == full[-12:] and ids[-1] == enc.eot_token        # response and EOT intact
    x, last, rows, gold, n_cut = data.comparison_batch([{"prompt": prompt, "responses": [c, r], "ranking": [0, 1]}], enc, 12)
    assert n_cut > 0 and (x[torch.arange(2), last] == enc.eot_token).all()


def test_kwise_loss_equals_pairs_through_the_model():
    """Through a real RM forward: the K-wise loss of one prompt equals the mean over its explicit
    C(K,2) pairs, each pair forwarded on its own, with the same gradients."""
    torch.manual_seed(0)
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: a b c d e f g h", 270))
    from nanoinstruct.model import GPT, GPTConfig
    rm = GPT(GPTConfig(vocab_size=enc.n_vocab, block_size=64, n_layer=1, n_head=2, n_embd=32, scalar_head=True), verbose=False)
    comp = {"prompt": "a", "responses": ["b c", "d", "e f g", "h"], "ranking": [2, 0, 3, 1]}
    x, last, rows, _, _ = data.comparison_batch([comp], enc, 64)
    r = rm.scores(rm(x))[torch.arange(len(last)), last]
    kwise = rlhf.ranking_loss(r[rows.clamp(min=0)], torch.arange(4).unsqueeze(0))
    g1 = torch.autograd.grad(kwise, list(rm.parameters()))
    losses = []
    order = comp["ranking"]
    for i in range(4):
        for j in range(i + 1, 4):
            pair = {"prompt": "a", "responses": [comp["responses"][order[i]], comp["responses"][order[j]]], "ranking": [0, 1]}
            xp, lp, _, _, _ = data.comparison_batch([pair], enc, 64)
            rp = rm.scores(rm(xp))[torch.arange(2), lp]
            losses.append(-torch.nn.functional.logsigmoid(rp[0] - rp[1]))
    pairs = torch.stack(losses).mean()
    g2 = torch.autograd.grad(pairs, list(rm.parameters()))
    assert abs(kwise.item() - pairs.item()) < 1e-5
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g2))


def test_token_file_batches():
    toks = np.arange(1000, dtype=np.uint16)
    g = torch.Generator().manual_seed(0)
    x, y = data.lm_batch(toks, 4, 16, g)
    assert x.shape == (4, 16) and torch.equal(y, x + 1)


def test_ppo_first_update_is_the_policy_gradient():
    """beta = 0, gamma = 0, one epoch, one minibatch: the ratio is 1 at the first update (the
    sampler's log-probs are the policy's own), so the gradient of the clipped surrogate equals
    the gradient of -mean(advantage * log pi) on the sampled responses."""
    torch.manual_seed(0)
    from nanoinstruct.model import GPT, GPTConfig, generate, response_logits
    policy = GPT(GPTConfig(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=32), verbose=False)
    prompts = [[1, 2, 3, 4], [5, 6], [7, 8, 9]]
    tokens, pmask, old_logprobs, mask = generate(policy, prompts, 10, 63, generator=torch.Generator().manual_seed(0))
    Tp = pmask.size(1)
    full = torch.cat([pmask, mask], 1)
    advantages = rlhf.whiten(torch.randn(mask.shape), mask)

    def new_logprobs():   # what train_ppo.py computes for the policy
        return rlhf.logprobs_from_logits(response_logits(policy, tokens, full, Tp), tokens[:, Tp:])

    lp = new_logprobs()
    assert (torch.where(mask, lp - old_logprobs, 0.0)).abs().max() < 1e-5      # ratio 1
    loss, clip_frac, _ = rlhf.policy_loss(lp, old_logprobs, advantages, mask)
    g_ppo = torch.autograd.grad(loss, list(policy.parameters()))
    g_pg = torch.autograd.grad(-rlhf.masked_mean(advantages * new_logprobs(), mask), list(policy.parameters()))
    assert clip_frac == 0
    assert all(torch.allclose(a, b, atol=1e-6, rtol=1e-4) for a, b in zip(g_ppo, g_pg))


def test_drop_unended_keeps_the_ranking_of_the_rest(tmp_path):
    c = {"prompt": "p", "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1], "gold": [0.5, 0.1, 0.9, 0.3],
         "ended": [True, True, False, True]}
    rows, n_resp, n_prompts = data.drop_unended([c, {**c, "ended": [False, False, True, False]}, {**c, "ended": [True] * 4}])
    assert (n_resp, n_prompts) == (1 + 3, 1) and len(rows) == 2
    assert rows[0] == {"prompt": "p", "responses": ["a", "b", "d"], "ranking": [0, 2, 1], "gold": [0.5, 0.1, 0.3]}
    assert rows[1]["responses"] == c["responses"]
    data.write_jsonl(str(tmp_path / "bad.jsonl"), [{**c, "ended": [1, 0, 1, 1]}])
    with pytest.raises(SystemExit, match="bad.jsonl:1: .*ended"):
        data.read_jsonl(str(tmp_path / "bad.jsonl"), "comparisons")


# ----------------------------------------------------------------------------- the studies (experiments/)
# Each on its micro preset, on the session's micro pipeline. A study runs from the root of the
# repository that made OUT (the README run's fresh copy), where OUT's configs' paths point.

def run_study(out, *args):
    r = subprocess.run([sys.executable, *args], cwd=out.parent, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{args} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout

def test_overoptimization_study_micro(micro, tmp_path):
    out, _ = micro
    fig = tmp_path / "overopt.png"
    stdout = run_study(out, "experiments/overoptimization.py", f"--out={out}", "--config=configs/micro/overoptimization.py",
                 f"--figure={fig}", f"--study_dir={tmp_path / 'study'}")
    res = json.load(open(tmp_path / "study" / "results.json"))
    bon = res["best_of_n"]
    assert [p["n"] for p in bon] == [1, 2, 4]
    assert all(p["d"] == pytest.approx(math.sqrt(math.log(p["n"]) - (p["n"] - 1) / p["n"])) for p in bon)
    assert bon[0]["gold"] == pytest.approx(0.0, abs=1e-12) and bon[0]["rm"] == pytest.approx(0.0, abs=1e-12)
    assert all(a["rm"] <= b["rm"] + 1e-9 for a, b in zip(bon, bon[1:]))     # E[max of n RM scores] grows with n
    # the two PPO runs: OUT/ppo's settings, 3 iterations, beta 0 and OUT/ppo's beta; one point per iteration
    beta = json.load(open(out / "ppo" / "config.json"))["kl_coef"]
    assert set(res["rl"]) == {"kl_coef=0", f"kl_coef={beta:g}"}
    for b in (0.0, beta):
        ran = json.load(open(tmp_path / "study" / f"ppo_kl{b:g}" / "config.json"))
        assert ran["kl_coef"] == b and ran["iterations"] == 3 and ran["ptx_coef"] == 0
    rows = [json.loads(line) for line in open(tmp_path / "study" / "ppo_kl0" / "metrics.jsonl")]
    pts = res["rl"]["kl_coef=0"]
    assert len(pts) == 3 and pts[1]["gold"] == pytest.approx(rows[1]["gold"] - res["sft_gold"])
    assert pts[2]["d"] == pytest.approx(math.sqrt(max(rows[2]["kl"], 0.0)))
    assert {"best_of_n", "kl_coef=0"} <= set(res["fits"]) and all(finite(f["a"]) and finite(f["b"]) for f in res["fits"].values())
    assert "fit best_of_n: R(d) = d (a - b d)" in stdout
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_frontier_study_micro(micro, tmp_path):
    """PPO-ptx stopped at 1 iteration, DPO at one beta, SFT colder, best-of-2 and -4: one point
    each. The shorter PPO-ptx run repeats the first iteration of OUT's own exactly, and DPO's
    checkpoint is a policy that evaluate.py's loader takes."""
    out, _ = micro
    study = tmp_path / "study"
    run_study(out, "experiments/frontier.py", f"--out={out}", "--config=configs/micro/frontier.py", f"--figure={tmp_path / 'f.png'}",
        f"--study_dir={study}")
    res = json.load(open(study / "results.json"))
    labels = [p["label"] for p in res["points"]]
    assert labels == ["sft T=1", "best-of-2", "best-of-4", "sft T=0.7", "ppo_ptx it1", "ppo_ptx it2", "dpo beta=0.1"]
    for p in res["points"]:
        assert finite(p["gold"]) and finite(p["kl"]) and finite(p["rm"])
        lo, hi = p["gold_vs_sft_ci95"]
        assert lo <= p["gold_vs_sft"] <= hi
    pts = {p["label"]: p for p in res["points"]}
    assert pts["sft T=1"]["gold_vs_sft"] == 0 and pts["best-of-4"]["kl"] == pytest.approx(math.log(4) - 0.75)
    assert pts["ppo_ptx it2"]["run"] == str(out / "ppo_ptx")                   # OUT's own run is the last point
    skip = {"elapsed_s", "tok_per_s"}
    first = lambda d: {k: v for k, v in json.loads(open(d / "metrics.jsonl").readline()).items() if k not in skip}  # noqa: E731
    assert first(study / "ppo_ptx_it1") == first(out / "ppo_ptx")
    # DPO: from SFT, its first step at loss log 2 (the policy is its own reference), then trained
    model, ckpt = common.load_model(str(study / "dpo_b0.1"), verbose=False)
    sft, _ = common.load_model(str(out / "sft"), verbose=False)
    assert ckpt["config"]["beta"] == 0.1 and ckpt["config"]["tokenizer"] and ckpt["config"]["init_from"] == str(out / "sft")
    assert any(not torch.equal(v, sft.state_dict()[k]) for k, v in model.state_dict().items())
    rows = [json.loads(line) for line in open(study / "dpo_b0.1" / "metrics.jsonl")]
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5) and rows[0]["reward_margin"] == pytest.approx(0, abs=1e-6)
    assert {"loss", "accuracy", "reward_chosen", "reward_rejected", "reward_margin", "val_loss", "val_accuracy"} <= set(rows[-1])
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_habit_sweep_micro(micro, tmp_path):
    """The sweep on the session's finished micro pipeline (the world's default strength): PPO-ptx's
    margin over each reference row equals the difference of their gaps to SFT in the report (the
    same prompts, the same baseline). Another strength is only dry-run: a whole pipeline each."""
    out, _ = micro
    report = json.load(open(out / "eval" / "report.json"))
    refs = "sft_best_T,sft_best_of_4" if "sft_best_T" in report["references"] else "sft_T0.7,sft_best_of_2"
    runs = tmp_path / "runs"
    run_study(out, "experiments/habits.py", "--config=configs/micro/habits.py", "--strengths=default", f"--reuse=default:{out}",
        f"--references={refs}", f"--runs_dir={runs}", f"--figure={tmp_path / 'h.png'}")
    res = json.load(open(runs / "results.json"))
    entry = res["strengths"]["default"]
    for r in refs.split(","):
        want = report["policies"]["ppo_ptx"]["gold_vs_sft"] - report["references"][r]["gold_vs_sft"]
        m = entry["margins"][r]
        assert m["mean"] == pytest.approx(want, abs=1e-9) and m["ci95"][0] <= m["mean"] <= m["ci95"][1]
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    stdout = run_study(out, "experiments/habits.py", "--config=configs/micro/habits.py", "--strengths=0", f"--runs_dir={runs}",
                 "--dry_run=True")
    preset = runs / "presets" / "h0"
    assert f"PRESET={preset}" in stdout and f"bash run.sh {runs / 'h0'}" in stdout
    assert sorted(os.listdir(preset)) == sorted(f for f in os.listdir(os.path.join(ROOT, "configs", "micro")) if f.endswith(".py"))
    assert (preset / "world.py").read_text().rstrip().endswith("habit_strength = 0.0   # experiments/habits.py")
    assert not (runs / "h0").exists()


def test_diagnostic_scripts_micro(micro):
    """experiments/rm_knowledge.py, rm_clean_pairs.py and benchmark_flips.py on the micro run: a
    table row per family and split with accuracies in [0, 1]; an RM trained on the clean pairs
    written; per-item flips that add up to the accuracies."""
    out, _ = micro
    lines = run_study(out, "experiments/rm_knowledge.py", f"--out={out}", "--n_pairs=20").splitlines()
    rows = [line.split("|")[1:-1] for line in lines if line.startswith("| fact") or line.startswith("| benign")]
    words = lines[-1].split()
    assert lines[-1].startswith("training comparisons: ") and 0 <= int(words[-6]) <= int(words[2])
    assert [r[0].strip() for r in rows] == ["fact, train split", "fact, eval split", "benign, train split", "benign, eval split"]
    assert all(0 < int(r[1]) <= 20 and 0 <= float(r[2]) <= 1 and 0 <= float(r[3]) <= 1 for r in rows)
    line = run_study(out, "experiments/rm_clean_pairs.py", f"--out={out}", "--n_train=64", "--n_val=16",
                     f"--study_dir={out.parent / 'clean_pairs'}").strip().splitlines()[-1]
    assert line.startswith("RM from SFT on 64 clean true/wrong pairs: ") and line.endswith(" on 16 held-out ones")
    assert 0 <= float(line.split(": ")[1].split()[0]) <= 1
    assert sum(1 for _ in open(out.parent / "clean_pairs" / "train.jsonl")) == 64
    stdout = run_study(out, "experiments/benchmark_flips.py", f"--out={out}")
    acc = {line.split()[0]: float(line.split()[2]) for line in stdout.splitlines() if " accuracy " in line}
    assert set(acc) == {"base", "sft", "ppo", "ppo_ptx"}
    for line in (ln for ln in stdout.splitlines() if " -> " in ln):
        a, b = line.split(":")[0].split(" -> ")
        lost, gained = (int(w.strip(",")) for w in line.split()[4:7:2])
        assert (gained - lost) / 440 == pytest.approx(acc[b] - acc[a], abs=2e-3), line


def test_ppo_lr_tax_study_micro(micro):
    """experiments/ppo_lr_tax.sh on the micro run: PPO and PPO-ptx re-trained at another learning
    rate into OUT/studies, the finished run left as it was, a printed row per policy that agrees
    with the study's own report.json."""
    out, _ = micro
    before = (out / "ppo" / "ckpt.pt").stat().st_mtime_ns
    r = subprocess.run(["bash", "experiments/ppo_lr_tax.sh", str(out), "3e-4"], cwd=out.parent, capture_output=True,
                       text=True, env={**os.environ, "PRESET": "configs/micro", "NPROC": "1", "PYTHON": sys.executable})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    study = out / "studies" / "ppo_lr3e-4"
    report = json.load(open(study / "eval" / "report.json"))
    assert set(report["policies"]) == {"sft", "ppo", "ppo_ptx"}
    rows = {ln.split()[0]: ln for ln in r.stdout.splitlines() if " gold - SFT's " in ln}
    assert set(rows) == {"sft", "ppo", "ppo_ptx"}
    for name, line in rows.items():
        assert f"benchmark {report['policies'][name]['benchmark_accuracy']:.3f}" in line, line
    cfg = json.load(open(study / "ppo" / "config.json"))
    assert cfg["lr"] == pytest.approx(3e-4) and cfg["ptx_coef"] == 0
    assert json.load(open(study / "ppo_ptx" / "config.json"))["ptx_coef"] > 0
    assert (out / "ppo" / "ckpt.pt").stat().st_mtime_ns == before   # the finished run only read


def test_rm_label_noise_study_micro(micro, tmp_path):
    """experiments/rm_label_noise.py on the micro run: the comparisons ranked again at each sigma
    (the same samples and gold, a new ranking: near 0 it is the gold order), a reward model trained
    on each, and a printed row per sigma that matches results.json."""
    out, _ = micro
    stdout = run_study(out, "experiments/rm_label_noise.py", f"--out={out}", "--sigmas=0.001,0.5",
                       f"--study_dir={tmp_path}", "--extra=--config=configs/micro/rm.py")
    res = json.load(open(tmp_path / "results.json"))
    assert [r["sigma"] for r in res] == [0.001, 0.5]
    assert res[0]["labeler_agreement"] > res[1]["labeler_agreement"]
    assert res[0]["labeler_gold_accuracy"] > 0.99 and res[1]["labeler_gold_accuracy"] < 0.99
    orig = data.read_jsonl(str(out / "world" / "comparisons_val.jsonl"), "comparisons")
    new = data.read_jsonl(str(tmp_path / "sigma0.001" / "comparisons_val.jsonl"), "comparisons")
    assert [(r["prompt"], r["responses"], r["gold"]) for r in new] == [(r["prompt"], r["responses"], r["gold"]) for r in orig]
    for r in new:   # sigma near 0: the gold order, wherever the gold scores differ
        g = [r["gold"][i] for i in r["ranking"]]
        assert all(a >= b - 1e-6 for a, b in zip(g, g[1:]))
    rows = [ln for ln in stdout.splitlines() if ln.startswith("sigma ")]
    assert len(rows) == 2 and all(f"against gold {r['rm_gold_accuracy']:.3f}" in ln for r, ln in zip(res, rows))


def test_rm_data_scale_study_micro(micro, tmp_path):
    """experiments/rm_data_scale.py on the micro run: fresh training-split prompts (none of them an
    evaluation prompt), the run's SFT samples of them ranked, the union with the run's training
    comparisons, an RM on it read on the run's own validation file, and printed rows that match
    results.json."""
    out, _ = micro
    stdout = run_study(out, "experiments/rm_data_scale.py", f"--out={out}", "--extra_prompts=24", "--nproc=1",
                       "--collect_config=configs/micro/collect.py", f"--study_dir={tmp_path}",
                       "--extra=--config=configs/micro/rm.py")
    prompts = [r["prompt"] for r in data.read_jsonl(str(tmp_path / "prompts.jsonl"), "prompts")]
    evals = {r["prompt"] for r in data.read_jsonl(str(out / "world" / "prompts_eval.jsonl"), "prompts")}
    assert len(prompts) == 24 and not set(prompts) & evals
    base = data.read_jsonl(str(out / "world" / "comparisons_train.jsonl"), "comparisons")
    added = data.read_jsonl(str(tmp_path / "comparisons_train.jsonl"), "comparisons")
    assert added and {r["prompt"] for r in added} <= set(prompts)
    assert data.read_jsonl(str(tmp_path / "union_train.jsonl"), "comparisons") == base + added
    rm_cfg = json.load(open(tmp_path / "rm" / "config.json"))
    assert os.path.samefile(rm_cfg["val_file"], out / "world" / "comparisons_val.jsonl")
    res = json.load(open(tmp_path / "results.json"))
    assert [r["train_prompts"] for r in res["rows"]] == [len(base), len(base) + len(added)]
    run_summary = json.load(open(out / "rm" / "summary.json"))
    assert res["rows"][0]["rm_gold_accuracy"] == run_summary["gold_accuracy"]
    rows = [ln for ln in stdout.splitlines() if "training prompts |" in ln]
    assert len(rows) == 2 and all(f"against gold {r['rm_gold_accuracy']:.3f}" in ln for r, ln in zip(res["rows"], rows))
