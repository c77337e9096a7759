"""The model and generation: causality, KV cache vs full forward, padding invariance, sampling."""
import pytest
import torch
import torch.nn.functional as F

from nanoinstruct.model import GPT, GPTConfig, KVCache, attend, exponential_noise, filter_logits, generate, position_ids, sample_logits

EOT = 63


def tiny(scalar_head=False, **kw):
    torch.manual_seed(0)
    cfg = dict(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=32, scalar_head=scalar_head)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg), verbose=False).eval()


def seq_logprobs(model, prompt, response):
    """Reference: one sequence alone, no padding, no cache."""
    ids = torch.tensor([prompt + response])
    logits = model.lm_logits(model(ids))[0, len(prompt) - 1:-1]
    return F.log_softmax(logits, -1).gather(1, ids[0, len(prompt):, None]).squeeze(1)


def test_causal():
    m = tiny()
    x = torch.randint(0, 64, (2, 20))
    y = x.clone()
    y[:, 12] = (y[:, 12] + 1) % 64
    with torch.no_grad():
        a, b = m.lm_logits(m(x)), m.lm_logits(m(y))
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_kv_cache_matches_full_forward_ragged():
    m = tiny()
    prompts = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15]]
    Tp = 6
    x = torch.full((3, Tp), EOT)
    mask = torch.zeros(3, Tp, dtype=torch.bool)
    for i, p in enumerate(prompts):
        x[i, Tp - len(p):], mask[i, Tp - len(p):] = torch.tensor(p), True
    cont = torch.randint(0, 63, (3, 5))
    full = torch.cat([x, cont], 1)
    full_mask = torch.cat([mask, torch.ones(3, 5, dtype=torch.bool)], 1)
    pos = position_ids(full_mask)
    with torch.no_grad():
        ref = m.lm_logits(m(full, attn_mask=full_mask, pos=pos))
        cache = KVCache(m.config, 3, full.size(1), "cpu")
        steps = [m.lm_logits(m(x, attn_mask=mask, pos=pos[:, :Tp], kv_cache=cache))]
        for t in range(5):
            S = Tp + t + 1
            steps.append(m.lm_logits(m(cont[:, t:t + 1], pos=pos[:, S - 1:S], kv_cache=cache)))
        assert cache.at.item() == full.size(1) and cache.real.equal(full_mask)
    cached = torch.cat(steps, 1)
    real = full_mask.unsqueeze(-1).expand_as(ref)
    assert (cached - ref)[real].abs().max() < 1e-4
    # and each sequence alone (no padding at all) gives the same logits at its real positions
    for i, p in enumerate(prompts):
        alone = torch.tensor([p + cont[i].tolist()])
        with torch.no_grad():
            ref_i = m.lm_logits(m(alone))[0]
        assert (ref_i - cached[i, Tp - len(p):]).abs().max() < 1e-4


def test_generate_logprobs_match_forward_and_padding_invariance():
    m = tiny()
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    g = torch.Generator().manual_seed(1)
    tokens, pmask, logprobs, rmask = generate(m, prompts, 12, EOT, temperature=1.0, generator=g)
    Tp = pmask.size(1)
    assert tokens.shape == (3, Tp + logprobs.size(1)) and rmask.shape == logprobs.shape
    for i, p in enumerate(prompts):
        n = int(rmask[i].sum())
        resp = tokens[i, Tp:Tp + n].tolist()
        with torch.no_grad():
            ref = seq_logprobs(m, p, resp)
        assert (ref - logprobs[i, :n]).abs().max() < 1e-4
        assert (logprobs[i, n:] == 0).all()


def reference_generate(model, prompts, max_new_tokens, eot_id, temperature, top_k=None, top_p=None, generator=None):
    """The sampler before the static cache, as an oracle: no cache (the whole padded sequence is
    forwarded for each new token) and torch.multinomial itself."""
    Tp = max(len(p) for p in prompts)
    tokens = torch.tensor([[eot_id] * (Tp - len(p)) + p for p in prompts])
    mask = torch.tensor([[False] * (Tp - len(p)) + [True] * len(p) for p in prompts])
    done = torch.zeros(len(prompts), dtype=torch.bool)
    logprobs = []
    for t in range(max_new_tokens):
        with torch.no_grad():
            logits = model.lm_logits(model(tokens, attn_mask=mask, pos=position_ids(mask)))[:, -1]
        logp = F.log_softmax(logits / (temperature if temperature > 0 else 1.0), dim=-1)
        if temperature == 0:
            tok = logits.argmax(-1)
        else:
            probs = F.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        tok = torch.where(done, torch.full_like(tok, eot_id), tok)
        logprobs.append(torch.where(done, 0.0, logp.gather(1, tok[:, None]).squeeze(1)))
        tokens, mask = torch.cat([tokens, tok[:, None]], 1), torch.cat([mask, ~done[:, None]], 1)
        done = done | (tok == eot_id)
        if done.all():
            break
    return tokens, mask[:, :Tp], torch.stack(logprobs, 1), mask[:, Tp:]


@pytest.mark.parametrize("kw", [dict(temperature=1.0), dict(temperature=0.7, top_k=8), dict(temperature=1.3, top_p=0.9),
                                dict(temperature=0.0)])
def test_static_cache_sampler_matches_reference_for_a_fixed_seed(kw):
    """Same tokens, masks, generator state and (to float32 rounding) log-probs as the uncached
    multinomial loop, over two calls in a row, with ragged prompts and early stops."""
    m = tiny()
    with torch.no_grad():   # make end-of-text likely enough that some sequences stop early
        m.lm_head.weight[EOT] = m.lm_head.weight[:8].mean(0) * 60
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [13]]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(2):
        got = generate(m, prompts, 16, EOT, generator=g1, **kw)
        want = reference_generate(m, prompts, 16, EOT, generator=g2, **kw)
        for a, b in zip(got, want):
            assert a.shape == b.shape
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and torch.equal(got[3], want[3])
        torch.testing.assert_close(got[2], want[2], rtol=0, atol=1e-5)
    assert torch.equal(g1.get_state(), g2.get_state())
    if kw["temperature"] > 0:
        assert not got[3].all() and got[3][:, 0].all()   # the test covers early stops


def responses(out):
    """generate's output -> per row (its response tokens, their log-probs), padding stripped."""
    tokens, pmask, logprobs, rmask = out
    return [(t[pmask.size(1):][m].tolist(), lp[m]) for t, lp, m in zip(tokens, logprobs, rmask)]


def test_sharded_sampling_equals_the_whole_batch():
    """torchrun: each process samples its rows (ddp.shard's layout) of a global batch with
    shard=(rank, world) and the same generator state: every row gets the response the one-process
    call gives it, although each process pads, and stops early, on its own rows only."""
    m = tiny()
    with torch.no_grad():   # some sequences stop early
        m.lm_head.weight[EOT] = m.lm_head.weight[:8].mean(0) * 60
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [13], [14, 15, 16, 17], [18, 19]]
    whole = responses(generate(m, prompts, 16, EOT, generator=torch.Generator().manual_seed(5)))
    for world in (2, 3):
        for rank in range(world):
            part = responses(generate(m, prompts[rank::world], 16, EOT, generator=torch.Generator().manual_seed(5),
                                      shard=(rank, world)))
            for (tok, lp), (want_tok, want_lp) in zip(part, whole[rank::world]):
                assert tok == want_tok
                torch.testing.assert_close(lp, want_lp, rtol=0, atol=1e-5)
    assert len({len(t) for t, _ in whole}) > 2   # ragged responses: the shards stop at different steps


def test_sample_logits_draws_as_multinomial():
    logits = torch.randn(6, 50)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    tok, logp = sample_logits(logits, 0.8, generator=g1)
    want = torch.multinomial(F.softmax(logits / 0.8, -1), 1, generator=g2).squeeze(1)
    assert torch.equal(tok, want)
    torch.testing.assert_close(logp, F.log_softmax(logits / 0.8, -1).gather(1, want[:, None]).squeeze(1))


def test_exponential_noise_is_exponential_():
    """The CPU noise, written as rand + log1p for speed, is Tensor.exponential_'s to the bit, and
    leaves the generator where exponential_ does (the samples of every seeded run stay the same)."""
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    for shape in ((16, 8193), (3, 5), (1, 1)):
        want = torch.empty(shape).exponential_(1, generator=g1)
        got = exponential_noise(*shape, g2, torch.device("cpu"))
        assert got.dtype == torch.float32 and torch.equal(got, want), shape
    assert torch.equal(g1.get_state(), g2.get_state())


def test_greedy_equals_topk1_and_argmax_loop():
    m = tiny()
    prompts = [[1, 2, 3], [4, 5, 6, 7, 8]]
    greedy = generate(m, prompts, 10, EOT, temperature=0.0)[0]
    topk1 = generate(m, prompts, 10, EOT, temperature=0.7, top_k=1, generator=torch.Generator().manual_seed(3))[0]
    assert torch.equal(greedy, topk1)
    Tp = max(len(p) for p in prompts)
    for i, p in enumerate(prompts):   # a plain argmax loop without cache or padding
        seq = list(p)
        for _ in range(greedy.size(1) - Tp):
            with torch.no_grad():
                seq.append(int(m.lm_logits(m(torch.tensor([seq])))[0, -1].argmax()))
            if seq[-1] == EOT:
                break
        assert greedy[i, Tp:Tp + len(seq) - len(p)].tolist() == seq[len(p):]


def test_stop_at_eot_and_response_mask():
    m = tiny()
    with torch.no_grad():   # make EOT overwhelmingly likely after the second new token
        m.lm_head.weight[EOT] *= 0
    prompts = [[1, 2], [3]]
    tokens, pmask, logprobs, rmask = generate(m, prompts, 6, EOT, temperature=1.0, generator=torch.Generator().manual_seed(0))
    Tp = pmask.size(1)
    for i in range(2):
        resp = tokens[i, Tp:].tolist()
        n = int(rmask[i].sum())
        if EOT in resp:
            first = resp.index(EOT)
            assert n == first + 1 and all(t == EOT for t in resp[first:])
        else:
            assert n == len(resp)


def test_filter_logits_top_p_and_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    kept = filter_logits(logits, top_p=0.7).isfinite()[0].tolist()
    assert kept == [True, True, False, False]    # 0.5 < 0.7, 0.5 + 0.3 reaches it
    kept = filter_logits(logits, top_k=3).isfinite()[0].tolist()
    assert kept == [True, True, True, False]


def test_scalar_head_and_tied_weights():
    m = tiny(scalar_head=True)
    assert m.lm_head.weight is m.transformer.wte.weight
    h = m(torch.randint(0, 64, (2, 7)))
    assert m.scores(h).shape == (2, 7)
    names = set(m.state_dict())
    assert {"score_head.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_proj.bias"} <= names


def test_scalar_head_is_float32_under_bf16_autocast():
    """Rewards a bf16 step apart would otherwise tie, and a tie counts as a wrong pair."""
    m = tiny(scalar_head=True)
    with torch.no_grad():
        m.score_head.weight.normal_(0, 1.0)
        m.score_head.bias.fill_(5.0)                    # rewards near 5, where bf16 steps by 1/32
        h = m(torch.randint(0, 64, (4, 9)))
        exact = m.scores(h)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = m.scores(h)
    assert mixed.dtype == torch.float32
    torch.testing.assert_close(mixed, exact, rtol=0, atol=1e-5)


@pytest.mark.parametrize("case", ["causal", "padded", "decode"])
def test_attend_bf16_cpu_path_equals_sdpa(case):
    """On CPU in bf16, attend() computes attention with its own products; it must be SDPA's
    attention (fp32 SDPA on the same bf16 inputs, to bf16 rounding), values and gradients."""
    torch.manual_seed(0)
    B, nh, hs, S = 3, 2, 16, 12
    Tq = 1 if case == "decode" else S
    q, k, v = (torch.randn(B, nh, n, hs).bfloat16().requires_grad_() for n in (Tq, S, S))
    mask = None
    if case != "causal":   # left padding: row b's first 2b keys are pads; a query always sees itself
        real = torch.arange(S).view(1, S) >= 2 * torch.arange(B).view(B, 1)
        q_at = torch.arange(S - Tq, S).view(Tq, 1)
        mask = (torch.arange(S).view(1, S) <= q_at) & (real.view(B, 1, 1, S) | (torch.arange(S).view(1, S) == q_at))
    y = attend(q, k, v, mask)
    ref = F.scaled_dot_product_attention(*(t.float() for t in (q, k, v)), attn_mask=mask, is_causal=mask is None)
    assert y.dtype == torch.bfloat16 and y.shape == ref.shape
    torch.testing.assert_close(y.float(), ref, rtol=0, atol=2e-2)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad((y.float() * g).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * g).sum(), (q, k, v))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a.float(), b.float(), rtol=0, atol=5e-2)
    qf, kf, vf = (t.detach().float() for t in (q, k, v))   # fp32: SDPA itself
    assert torch.equal(attend(qf, kf, vf, mask), F.scaled_dot_product_attention(qf, kf, vf, attn_mask=mask, is_causal=mask is None))


def test_dropout_is_configurable():
    m = tiny(dropout=0.5).train()
    x = torch.randint(0, 64, (1, 8))
    assert not torch.equal(m(x), m(x))
    m.eval()
    assert torch.equal(m(x), m(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_matches_cpu():
    m = tiny()
    x = torch.randint(0, 64, (2, 16))
    ref = m.lm_logits(m(x))
    mc = m.cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = mc.lm_logits(mc(x.cuda())).float().cpu()
    assert (out - ref).abs().max() < 0.1


@pytest.mark.parametrize("padded", [False, True])
def test_read_only_some_positions_equals_full_forward(padded):
    """read= computes the last block only where the output is read: same hidden states (and
    gradients) as the full forward, sliced."""
    m = tiny(scalar_head=True)
    x = torch.randint(0, 63, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.bool)
    if padded:
        mask[0, :4], mask[2, :7] = False, False
    kw = dict(attn_mask=mask, pos=position_ids(mask)) if padded else {}
    full = m(x, **kw)
    torch.testing.assert_close(m(x, read=slice(5, -1), **kw), full[:, 5:-1], rtol=0, atol=1e-5)
    last = torch.tensor([11, 6, 9])
    got = m(x, read=last, **kw)
    torch.testing.assert_close(got, full[torch.arange(3), last], rtol=0, atol=1e-5)
    got.sum().backward()
    g_read = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    m(x, **kw)[torch.arange(3), last].sum().backward()
    g_full = {n: p.grad for n, p in m.named_parameters() if p.grad is not None}
    assert g_read.keys() == g_full.keys() and "transformer.h.1.attn.c_attn.weight" in g_read
    for n in g_read:
        torch.testing.assert_close(g_read[n], g_full[n], rtol=1e-4, atol=1e-5)
