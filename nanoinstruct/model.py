"""The GPT model: GPT-2's architecture, one file, plus KV-cache generation for RL.

- Pre-LayerNorm transformer blocks, GELU (tanh approximation, as GPT-2) MLP, learned position
  embeddings, input and output embeddings tied (Radford et al. 2019; code after nanoGPT).
- Parameter names and shapes map one-to-one onto GPT-2's checkpoint (nanoinstruct/gpt2.py loads
  it); the vocabulary is not padded so that the shapes match exactly.
- Attention runs through F.scaled_dot_product_attention (flash / memory-efficient kernels on
  CUDA), except on CPU under bf16 autocast, where plain products are 2-3x faster (`attend`).
- Sampling uses a static, preallocated KV cache; on CUDA one decode step is captured as a CUDA
  graph and replayed per new token (`generate(..., cuda_graph=True)`).
- An optional scalar head (n_embd -> 1) turns the same trunk into a reward model or a value model
  (InstructGPT section 3.5: "the SFT model with the final unembedding layer removed").

Shapes: B batch, T new positions, S key positions (the static cache: S_max slots), C n_embd, nh heads,
hs head size, V vocab.
"""
import math
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class GPTConfig:
    block_size: int = 256     # the longest sequence (position embeddings)
    vocab_size: int = 4096
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0      # embedding, attention and residual dropout (paper SFT: 0.2)
    bias: bool = True         # GPT-2 has biases in Linear and LayerNorm
    scalar_head: bool = False # reward / value model head


class KVCache:
    """A static cache: keys and values of every slot, (n_layer, B, nh, S_max, hs), and which slots
    hold real (non-pad) keys, (B, S_max), allocated once. A forward writes its T positions in place
    at slot `at`, a (1,) tensor that it then advances in place, and attention always spans all
    S_max slots, the unwritten ones masked out: a decode step has the same shapes, addresses and
    kernels every time, so a CUDA graph can capture it once and replay it per token."""

    def __init__(self, config, batch_size, max_len, device):
        assert max_len <= config.block_size, f"cache of {max_len} slots is longer than block_size {config.block_size}"
        self.shape = (config.n_layer, batch_size, config.n_head, max_len, config.n_embd // config.n_head)
        self.k = self.v = None   # allocated on first use, in the dtype autocast gives k and v
        self.real = torch.zeros(batch_size, max_len, dtype=torch.bool, device=device)   # (B, S_max)
        self.slot = torch.arange(max_len, device=device)                                # (S_max,)
        self.at = torch.zeros(1, dtype=torch.long, device=device)

    def update(self, layer, k, v, slots):
        """Write k, v (B, nh, T, hs) at slots (T,) -> all keys and values (B, nh, S_max, hs)."""
        if self.k is None:
            self.k = k.new_zeros(self.shape)   # zeros, not empty: masked slots must not hold NaN
            self.v = v.new_zeros(self.shape)
        self.k[layer].index_copy_(2, slots, k)
        self.v[layer].index_copy_(2, slots, v)
        return self.k[layer], self.v[layer]


def attend(q, k, v, mask, dropout_p=0.0):
    """y = softmax(q k^T / sqrt(hs) + M) v per head: q (B, nh, Tq, hs), k and v (B, nh, S, hs),
    mask (B or 1, 1, Tq, S) bool, True where a query may attend, or None for plain causal
    attention (Tq == S) -> y (B, nh, Tq, hs). Every row of the mask must allow one key.
    F.scaled_dot_product_attention everywhere but on CPU under bf16 autocast: there its fused CPU
    kernel is ~1.5x slower in bf16 than in fp32 and the plain products below, with the softmax in
    fp32, are faster than either (torch 2.13, 2 cores of an EPYC with AVX512-BF16: a 128-sequence
    decode step 3.6 -> 1.1 ms per layer, a 16 x 128 training forward+backward 22.9 -> 11.6 ms)."""
    if q.device.type != "cpu" or q.dtype != torch.bfloat16:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None, dropout_p=dropout_p)
    Tq, S = q.size(-2), k.size(-2)
    att = (q @ k.transpose(-2, -1)).float() * (1.0 / math.sqrt(q.size(-1)))       # (B, nh, Tq, S)
    if mask is None:
        mask = torch.ones(Tq, S, dtype=torch.bool, device=q.device).tril(S - Tq)  # causal
    att = F.dropout(att.masked_fill(~mask, float("-inf")).softmax(-1), dropout_p)
    return att.to(v.dtype) @ v


class CausalSelfAttention(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.dropout, self.layer = config.n_head, config.dropout, layer

    def forward(self, x, mask, cache, slots, read=None):
        # BEGIN SOLUTION attention
        B, T, C = x.shape
        if read is None:
            q, k, v = self.c_attn(x).split(C, dim=2)
        else:   # queries only at the positions that are read; keys and values at all of them
            w, b = self.c_attn.weight, self.c_attn.bias
            q = F.linear(read(x), w[:C], None if b is None else b[:C])
            k, v = F.linear(x, w[C:], None if b is None else b[C:]).split(C, dim=2)
        Tq = q.size(1)
        q = q.view(B, Tq, self.n_head, C // self.n_head).transpose(1, 2)                           # (B, nh, Tq, hs)
        k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (k, v))      # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(self.layer, k, v, slots)   # (B, nh, S_max, hs)
        y = attend(q, k, v, mask, dropout_p=self.dropout if self.training else 0.0)   # (B, nh, Tq, hs)
        y = y.transpose(1, 2).contiguous().view(B, Tq, C)
        return self.resid_dropout(self.c_proj(y))
        # END SOLUTION attention


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")   # GPT-2's "gelu_new"; exact GELU would not match its weights
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config, layer):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, mask, cache, slots, read=None):
        x = (x if read is None else read(x)) + self.attn(self.ln_1(x), mask, cache, slots, read)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config, verbose=True):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight   # weight tying (GPT-2)
        self.score_head = nn.Linear(config.n_embd, 1) if config.scalar_head else None
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):   # GPT-2: scale residual projections by 1/sqrt(2 * n_layer)
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        if verbose:
            n = sum(p.numel() for p in self.parameters())
            print(f"GPT: {n / 1e6:.2f}M parameters ({config.n_layer} layers, {config.n_embd} wide, "
                  f"{config.n_head} heads, vocab {config.vocab_size}, context {config.block_size}"
                  f"{', scalar head' if config.scalar_head else ''})")

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, attn_mask=None, pos=None, kv_cache=None, read=None):
        """idx (B, T) token ids -> hidden states (B, T, C) after the final LayerNorm.

        attn_mask: (B, T) bool, True at real (non-pad) tokens of idx; None means no padding, and
            then, without a cache, plain causal attention runs (the flash kernel on CUDA).
        pos: (B, T) position ids; default 0 .. T-1 (with a cache: from its slot on). Left-padded
            prompts pass their own so that each sequence's first real token sits at position 0.
        kv_cache: a KVCache; idx's keys and values go to its slots at .. at+T-1, and idx attends to
            every real key before it there, its own included.
        read: which hidden states are wanted: None, all (B, T, C); a slice of positions, the same
            in every row (B, R, C); a (B,) index tensor, one position per row (B, C). The last
            block then computes its queries, MLP and the final LayerNorm only there (the keys and
            values of all positions still feed it): 5/6 of a block saved per position not read.
        """
        B, T = idx.shape
        q_at = torch.arange(T, device=idx.device)             # (T,) where the queries sit
        k_at, real, slots = q_at, attn_mask, None             # (S,) key slots, (B, S) real keys
        if kv_cache is not None:
            slots = q_at = kv_cache.at + q_at
            kv_cache.real.index_copy_(1, slots, attn_mask if attn_mask is not None else
                                      torch.ones(B, T, dtype=torch.bool, device=idx.device))
            k_at, real = kv_cache.slot, kv_cache.real
        assert T <= self.config.block_size, f"sequence of {T} tokens is longer than block_size {self.config.block_size}"
        if pos is None:
            pos = q_at.unsqueeze(0)                             # (1, T)
        mask = None   # None: plain causal attention over T positions, the fastest (flash) kernel on CUDA
        if real is not None:
            S = k_at.numel()
            # causal, and a query always sees itself: a pad query with no real key before it
            # would otherwise be a fully masked row, which makes SDPA return NaN
            mask = (k_at.view(1, S) <= q_at.view(T, 1)) & (real.view(B, 1, 1, S) | (k_at.view(1, S) == q_at.view(T, 1)))   # (B, 1, T, S)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        last, pick = len(self.transformer.h) - 1, None
        if read is not None:
            rows = torch.arange(B, device=idx.device)
            pick = (lambda t: t[:, read]) if isinstance(read, slice) else (lambda t: t[rows, read].unsqueeze(1))
            r_at = q_at[read].view(1, -1) if isinstance(read, slice) else read.view(B, 1)   # (1 or B, R)
            S, R = k_at.numel(), r_at.size(1)
            read_mask = k_at.view(1, 1, 1, S) <= r_at.view(-1, 1, R, 1)     # causal at the read positions
            if real is not None:
                read_mask = read_mask & (real.view(B, 1, 1, S) | (k_at.view(1, 1, 1, S) == r_at.view(-1, 1, R, 1)))
        for i, block in enumerate(self.transformer.h):
            x = block(x, mask, kv_cache, slots) if pick is None or i < last else block(x, read_mask, kv_cache, slots, pick)
        if kv_cache is not None:
            kv_cache.at.add_(T)
        x = self.transformer.ln_f(x)
        return x.squeeze(1) if pick is not None and not isinstance(read, slice) else x

    def lm_logits(self, h):
        return self.lm_head(h)                      # (B, T, V)

    def scores(self, h):
        """(B, T, C) -> (B, T): a scalar per position, in float32 even under bf16 autocast. A bf16
        reward keeps about 3 significant digits: close pairs would round to ties (which count as
        wrong) and the normalisation bias, added at its own rounding, could reorder them."""
        # setup() autocasts only on CPU and CUDA; older torch refuses autocast(...) for other devices
        off = torch.autocast(h.device.type, enabled=False) if h.device.type in ("cpu", "cuda") else nullcontext()
        with off:
            return self.score_head(h.float()).squeeze(-1)



def position_ids(mask):
    """(B, T) bool mask of real tokens -> (B, T) position ids that start at 0 on each sequence's
    first real token (left padding shifts nothing); pads get 0."""
    return (mask.long().cumsum(1) - 1).clamp(min=0)


def response_logits(model, tokens, mask, n_prompt, temperature=1.0):
    """Logits that predict each response token of left-padded prompt + response sequences, as
    `generate` lays them out: tokens and mask (B, Tp + Tn), n_prompt = Tp -> (B, Tn, V) float32,
    divided by the sampling temperature (PPO's old, new and reference log-probs all use it)."""
    h = model(tokens, attn_mask=mask, pos=position_ids(mask), read=slice(n_prompt - 1, -1))   # (B, Tn, C)
    return model.lm_logits(h).float() / temperature


def last_token_scores(model, tokens, last, mask=None):
    """A scalar-head model's r(x, y), read at each sequence's last real token (its end-of-text):
    tokens (B, T), last (B,) index of that token -> (B,) float32. mask: (B, T) real tokens, for
    left-padded prompts (None: right padding only, which causal attention already ignores)."""
    # BEGIN SOLUTION last_token_reward
    h = model(tokens, attn_mask=mask, pos=None if mask is None else position_ids(mask), read=last)   # (B, C)
    return model.scores(h)
    # END SOLUTION last_token_reward


def filter_logits(logits, top_k=None, top_p=None):
    """Top-k then nucleus (top-p, Holtzman et al. 2020) filtering of (B, V) logits: removed
    tokens get -inf. Only the sampling distribution is filtered, never the returned log-probs."""
    if top_k is not None and top_k > 0:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > top_p   # keep the smallest set whose mass reaches top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def exponential_noise(rows, cols, generator, device):
    """(rows, cols) float32 draws of Exp(1), the values and generator state of Tensor.exponential_.
    On CPU that draws a float64 uniform u per element and rounds -log1p(-u) to float32, one element
    at a time; the same written as torch.rand + log1p is vectorised and 1.5x faster (the same bits:
    tests/test_model.py), and it was a fifth of a decode step."""
    if device.type != "cpu":
        return torch.empty(rows, cols, device=device).exponential_(1, generator=generator)
    u = torch.rand(rows, cols, dtype=torch.float64, generator=generator)
    return u.neg_().log1p_().neg_().float()


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, generator=None, shard=(0, 1)):
    """(B, V) logits -> (B,) sampled tokens and (B,) their float32 log-probs under
    softmax(logits / temperature) (temperature 1 when greedy), before top-k/top-p filtering: the
    policy's own log-prob, which PPO's ratio needs. temperature 0 is greedy decoding.
    The draw is torch.multinomial(probs, 1)'s own, argmax(probs / q) with q ~ Exp(1) (the same
    tokens, the same generator state), written out because multinomial checks its input on the
    host, which a CUDA graph cannot capture.
    shard = (rank, world): these B rows are rows rank, rank + world, ... of a batch of B * world
    (ddp.shard's layout), and the noise q is drawn for that whole batch, each row taking its
    own: the same tokens as sampling the whole batch in one process (torchrun: the draw does not
    depend on how the batch is split). (0, 1), one process, is the plain draw."""
    logits = logits.float()
    if temperature > 0 and temperature != 1:
        logits = logits / temperature
    logp = F.log_softmax(logits, dim=-1)                                       # (B, V)
    if temperature == 0:
        tok = logits.argmax(-1)
    else:
        probs = F.softmax(filter_logits(logits, top_k, top_p), dim=-1)
        rank, world = shard
        q = exponential_noise(world * probs.size(0), probs.size(1), generator, probs.device)   # (B*world, V)
        tok = (probs / q[rank::world]).argmax(-1)
    return tok, logp.gather(1, tok[:, None]).squeeze(1)


@torch.no_grad()
def generate(model, prompts, max_new_tokens, eot_id, temperature=1.0, top_k=None, top_p=None, generator=None,
             cuda_graph=False, shard=(0, 1), all_done=None):
    """Batched sampling with a static KV cache for prompts of different lengths.

    prompts: list of B token lists. They are left-padded to Tp (pad id = eot_id) with position
    ids that start at 0 on each prompt's first real token, and pads masked out of attention, so
    a prompt's continuation does not depend on its batch mates.
    Each sequence stops at its first end-of-text (which is kept as a real response token); after
    it, the sequence only carries padding. temperature 0 is greedy decoding.
    cuda_graph: on CUDA, capture one decode step (forward of the last token, sampling, bookkeeping,
    all in place on static tensors) as a CUDA graph and replay it per new token; elsewhere, and
    with a user generator on a torch too old to register one with a graph (< 2.5), the same step
    runs eagerly.
    shard = (rank, world): under torchrun, these prompts are this process's rows of a global batch
    (ddp.shard), and each step's noise is drawn for the whole of it (sample_logits): with the
    same generator state on every process, each row gets the tokens one process would give it
    (to float rounding: the padding differs), however the batch is split.
    all_done: done (B,) bool -> whether sampling may stop (default: every row ended). torchrun
    passes one that asks every process (ddp.all_true), so that all of them run as many steps as
    one process would, and their generators stay in step.

    Returns
      tokens        (B, Tp + Tn) long: left-padded prompts, then responses (Tn <= max_new_tokens)
      prompt_mask   (B, Tp) bool: real prompt tokens
      logprobs      (B, Tn) float32: log pi(token) of each sampled token (sample_logits); 0 on padding
      response_mask (B, Tn) bool: real response tokens (up to and including the end-of-text)
    """
    assert max_new_tokens >= 1
    was_training = model.training
    model.eval()   # no dropout while sampling; the mode is restored on return
    device = model.lm_head.weight.device
    B, Tp, Tn = len(prompts), max(len(p) for p in prompts), max_new_tokens
    assert Tp + Tn <= model.config.block_size, \
        f"prompt ({Tp}) + max_new_tokens ({Tn}) exceeds block_size {model.config.block_size}"
    prompt = torch.full((B, Tp), eot_id, dtype=torch.long)
    prompt_mask = torch.zeros(B, Tp, dtype=torch.bool)
    for i, p in enumerate(prompts):
        prompt[i, Tp - len(p):] = torch.tensor(p, dtype=torch.long)
        prompt_mask[i, Tp - len(p):] = True
    prompt, prompt_mask = prompt.to(device), prompt_mask.to(device)   # one copy each, not one per prompt
    pos = position_ids(prompt_mask)                                    # (B, Tp)
    cache = KVCache(model.config, B, Tp + Tn, device)
    h = model(prompt, attn_mask=prompt_mask, pos=pos, kv_cache=cache, read=slice(Tp - 1, Tp))[:, -1]   # (B, C)
    # the decode state: static tensors that each step updates in place
    tokens = torch.full((B, Tn), eot_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(B, Tn, device=device)
    response_mask = torch.zeros(B, Tn, dtype=torch.bool, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    t = torch.zeros(1, dtype=torch.long, device=device)     # the response column being sampled
    next_pos = pos[:, -1:] + 1                                # (B, 1)
    tok = torch.zeros(B, dtype=torch.long, device=device)   # the last sampled token
    real = torch.zeros(B, 1, dtype=torch.bool, device=device)   # ... and whether it is a real one

    def record(h):
        """Sample from the last hidden states (B, C) and write column t."""
        new, logp = sample_logits(model.lm_logits(h), temperature, top_k, top_p, generator, shard)
        new = torch.where(done, eot_id, new)
        logprobs.index_copy_(1, t, torch.where(done, 0.0, logp)[:, None])
        real.copy_(~done[:, None])   # the end-of-text itself is real, what follows it is not
        response_mask.index_copy_(1, t, real)
        tokens.index_copy_(1, t, new[:, None])
        done.logical_or_(new == eot_id)
        tok.copy_(new)
        t.add_(1)

    def step():
        """Feed the last sampled token to the cache, sample the next."""
        h = model(tok[:, None], attn_mask=real, pos=next_pos, kv_cache=cache)[:, -1]
        next_pos.add_(1)
        record(h)

    finished = all_done or (lambda d: bool(d.all()))
    record(h)
    n = 1
    if cuda_graph and device.type == "cuda" and Tn > 2 and not finished(done):
        graph = torch.cuda.CUDAGraph()
        if generator is not None and not hasattr(graph, "register_generator_state"):
            graph = None   # old torch: only the default generator can be captured
        if graph is not None:
            side = torch.cuda.Stream()   # warm up (lazy inits, workspaces) off the capture stream
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                step()
            torch.cuda.current_stream().wait_stream(side)
            n += 1
            if generator is not None:
                graph.register_generator_state(generator)
            with torch.cuda.graph(graph):
                step()   # captured, not run
            step = graph.replay
    while n < Tn and not finished(done):
        step()
        n += 1
    model.train(was_training)
    return torch.cat([prompt, tokens[:, :n]], 1), prompt_mask, logprobs[:, :n], response_mask[:, :n]
