"""The GPU path's correctness: bf16 against float32, compiled against eager, the CUDA-graph
sampler against the eager one, and PPO's first minibatch under bf16 (old log-probs come from the
sampler, whose kernels differ from the training forward's). CUDA tests skip without CUDA; the
PPO check also runs on CPU under bf16 autocast."""
import pytest
import torch

from nanoinstruct import common, rlhf
from nanoinstruct.model import GPT, GPTConfig, generate, response_logits

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
V, EOT = 512, 511


def model(device, sharpen=1.0, **kw):
    """A small GPT; sharpen scales the (tied) embeddings so that its next-token distributions are
    far from uniform, as a trained model's are (random init gives near-uniform logits)."""
    torch.manual_seed(0)
    arch = dict(vocab_size=V, block_size=128, n_layer=3, n_head=4, n_embd=128)
    m = GPT(GPTConfig(**{**arch, **kw}), verbose=False).to(device).eval()
    with torch.no_grad():
        m.transformer.wte.weight.mul_(sharpen)
    return m


def prompts(n=8):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, EOT, (int(torch.randint(4, 20, (), generator=g)),), generator=g).tolist() for _ in range(n)]


@cuda
def test_bf16_logits_close_to_float32():
    m = model("cuda", sharpen=3.5)
    x = torch.randint(0, V, (4, 64), device="cuda")
    with torch.no_grad():
        ref = m.lm_logits(m(x)).float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = m.lm_logits(m(x)).float()
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()
    assert (out.argmax(-1) == ref.argmax(-1)).float().mean() > 0.95


@cuda
def test_compiled_forward_equals_eager():
    m = model("cuda", sharpen=3.5)
    x = torch.randint(0, V, (4, 64), device="cuda")
    mask = torch.ones(4, 64, dtype=torch.bool, device="cuda")
    mask[:, :10] = False
    compiled = torch.compile(m)
    with torch.no_grad():
        for kw in ({}, {"attn_mask": mask}):
            torch.testing.assert_close(compiled(x, **kw), m(x, **kw), rtol=1e-4, atol=1e-4)


@cuda
def test_sdpa_runs_a_fused_kernel_for_training():
    m = model("cuda").train()
    x = torch.randint(0, V, (4, 64), device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        kernels = common.sdpa_kernels(lambda: m.lm_logits(m(x)).float().mean().backward())
    assert kernels and not set(kernels) & {"attention_math"}, kernels


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_sampler_equals_eager(dtype):
    """Same kernels, replayed: the same tokens and log-probs, bit for bit, for a fixed seed."""
    m = model("cuda", sharpen=3.5)
    with torch.no_grad():   # some sequences end early
        m.lm_head.weight[EOT] = m.lm_head.weight[:8].mean(0) * 3
    outs = []
    for graph in (False, True):
        g = torch.Generator("cuda").manual_seed(0)
        with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
            outs.append([generate(m, prompts(), 40, EOT, temperature=1.0, generator=g, cuda_graph=graph)
                         for _ in range(2)])
    for eager, graphed in zip(*outs):
        for a, b in zip(eager, graphed):
            assert torch.equal(a, b)
    assert not outs[0][0][3].all()   # early stops were covered


@pytest.mark.parametrize("device", DEVICES)
def test_ppo_first_minibatch_under_bf16_is_on_policy(device):
    """Before any update the policy is the one that sampled: the ratio must be 1 up to bf16
    rounding, so approx_kl ~ 0 and no token is clipped, although the old log-probs come from the
    cached decode step and the new ones from the full training forward."""
    if device == "cpu" and not common.cpu_has_bf16():
        pytest.skip("this CPU has no native bf16")
    m = model(device, sharpen=3.5)
    g = torch.Generator(device).manual_seed(0)
    with torch.autocast(device, dtype=torch.bfloat16):
        tokens, prompt_mask, logprobs, mask = generate(m, prompts(16), 32, EOT, generator=g, cuda_graph=True)
        full_mask = torch.cat([prompt_mask, mask], 1)
        m.train()
        new_logprobs = rlhf.logprobs_from_logits(response_logits(m, tokens, full_mask, prompt_mask.size(1)),
                                                 tokens[:, prompt_mask.size(1):])
    advantages = torch.randn(mask.shape, device=device)
    _, clip_frac, approx_kl = rlhf.policy_loss(new_logprobs, logprobs, advantages, mask, 0.2)
    assert -4 < logprobs[mask].mean() < -0.5       # neither uniform nor deterministic
    assert approx_kl.abs() < 2e-3 and clip_frac < 0.01, (approx_kl.item(), clip_frac.item())
