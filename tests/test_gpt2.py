"""GPT-2 checkpoint loading (nanoinstruct/gpt2.py), offline: a tiny checkpoint in Hugging Face's
layout is written here in both file kinds, loaded, and checked against a reference forward pass
computed directly from the raw tensors."""
import json
import math
import os

import pytest
import torch
import torch.nn.functional as F

from nanoinstruct import gpt2
from nanoinstruct.gpt2 import from_pretrained, is_hf_name_or_dir, read_safetensors
from nanoinstruct.tokenizer import get_encoding

GPT2_RANKS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tokenizers", "gpt2.tiktoken")

CFG = dict(n_layer=2, n_head=2, n_embd=16, n_positions=32, n_ctx=32, vocab_size=50,
           activation_function="gelu_new", layer_norm_epsilon=1e-5, model_type="gpt2")


def hf_tensors(cfg=CFG, prefix="", seed=0):
    """Random GPT-2 tensors under Hugging Face names, Conv1D weights in (in, out) layout,
    plus the attn.bias / masked_bias buffers a real checkpoint carries."""
    g = torch.Generator().manual_seed(seed)
    C, V, P, L = cfg["n_embd"], cfg["vocab_size"], cfg["n_positions"], cfg["n_layer"]
    r = lambda *shape: torch.randn(*shape, generator=g) * 0.2
    sd = {"wte.weight": r(V, C), "wpe.weight": r(P, C), "ln_f.weight": 1 + r(C), "ln_f.bias": r(C)}
    for i in range(L):
        sd.update({f"h.{i}.ln_1.weight": 1 + r(C), f"h.{i}.ln_1.bias": r(C),
                   f"h.{i}.attn.c_attn.weight": r(C, 3 * C), f"h.{i}.attn.c_attn.bias": r(3 * C),
                   f"h.{i}.attn.c_proj.weight": r(C, C), f"h.{i}.attn.c_proj.bias": r(C),
                   f"h.{i}.ln_2.weight": 1 + r(C), f"h.{i}.ln_2.bias": r(C),
                   f"h.{i}.mlp.c_fc.weight": r(C, 4 * C), f"h.{i}.mlp.c_fc.bias": r(4 * C),
                   f"h.{i}.mlp.c_proj.weight": r(4 * C, C), f"h.{i}.mlp.c_proj.bias": r(C),
                   f"h.{i}.attn.bias": torch.tril(torch.ones(P, P)).view(1, 1, P, P),
                   f"h.{i}.attn.masked_bias": torch.tensor(-1e4)})
    sd = {prefix + k: v for k, v in sd.items()}
    if prefix:   # GPT2LMHeadModel also stores the tied head
        sd["lm_head.weight"] = sd["transformer.wte.weight"]
    return sd


def write_safetensors(path, tensors, dtype="F32"):
    """The safetensors byte format, by hand: u64 little-endian header size, JSON header, data."""
    torch_dtype = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        # bf16 has no numpy dtype: take the raw bytes through an int16 view
        b = t.to(torch_dtype).contiguous().view(torch.int16 if dtype != "F32" else torch.int32).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)   # the format pads the header so the data is 8-byte aligned
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


def write_checkpoint(dir, sd, kind, cfg=CFG):
    os.makedirs(dir, exist_ok=True)
    with open(os.path.join(dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    if kind == "safetensors":
        write_safetensors(os.path.join(dir, "model.safetensors"), sd)
    else:
        torch.save(sd, os.path.join(dir, "pytorch_model.bin"))
    return str(dir)


def reference_logits(sd, idx, cfg=CFG):
    """GPT-2's forward pass from the raw Hugging Face tensors, plain torch ops (Radford et al.
    2019; the layout of Hugging Face's modeling_gpt2: Conv1D y = x @ W + b)."""
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()}
    C, nh = cfg["n_embd"], cfg["n_head"]
    T = idx.shape[1]
    ln = lambda x, p: F.layer_norm(x, (C,), sd[p + ".weight"], sd[p + ".bias"], 1e-5)
    gelu_new = lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    x = sd["wte.weight"][idx] + sd["wpe.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for i in range(cfg["n_layer"]):
        p = f"h.{i}."
        q, k, v = (ln(x, p + "ln_1") @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]).split(C, -1)
        q, k, v = (t.view(*t.shape[:2], nh, C // nh).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2) / math.sqrt(C // nh)).masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(x.shape)
        x = x + y @ sd[p + "attn.c_proj.weight"] + sd[p + "attn.c_proj.bias"]
        m = gelu_new(ln(x, p + "ln_2") @ sd[p + "mlp.c_fc.weight"] + sd[p + "mlp.c_fc.bias"])
        x = x + m @ sd[p + "mlp.c_proj.weight"] + sd[p + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ sd["wte.weight"].T


@pytest.mark.parametrize("kind,prefix", [("safetensors", ""), ("safetensors", "transformer."),
                                         ("bin", ""), ("bin", "transformer.")])
def test_logits_match_reference(tmp_path, kind, prefix):
    sd = hf_tensors(prefix=prefix)
    dir = write_checkpoint(tmp_path / "ckpt", sd, kind)
    assert is_hf_name_or_dir(dir)
    model = from_pretrained(dir).eval()
    idx = torch.randint(0, CFG["vocab_size"], (3, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model.lm_logits(model(idx))
    assert (logits - reference_logits(sd, idx)).abs().max().item() < 1e-4
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()   # still tied


def test_overrides_scalar_head_and_block_size(tmp_path):
    sd = hf_tensors()
    dir = write_checkpoint(tmp_path / "ckpt", sd, "safetensors")
    model = from_pretrained(dir, scalar_head=True, dropout=0.1, block_size=16)
    assert model.config.block_size == 16 and model.config.dropout == 0.1
    assert torch.equal(model.transformer.wpe.weight, sd["wpe.weight"][:16])
    assert model.score_head.weight.shape == (1, CFG["n_embd"])   # fresh, not from the file


@pytest.mark.parametrize("dtype", ["F16", "BF16"])
def test_half_precision_safetensors_load_as_float32(tmp_path, dtype):
    sd = hf_tensors()
    dir = tmp_path / "ckpt"
    write_checkpoint(dir, sd, "bin")
    os.remove(dir / "pytorch_model.bin")
    write_safetensors(dir / "model.safetensors", sd, dtype)
    raw = read_safetensors(dir / "model.safetensors")
    assert raw["wte.weight"].dtype == {"F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    model = from_pretrained(str(dir))
    assert model.transformer.wte.weight.dtype == torch.float32
    torch.testing.assert_close(model.transformer.h[1].mlp.c_fc.weight,
                               raw["h.1.mlp.c_fc.weight"].float().T)


def test_wrong_shape_names_the_tensor(tmp_path):
    sd = hf_tensors()
    sd["h.1.mlp.c_fc.weight"] = sd["h.1.mlp.c_fc.weight"].T.contiguous()   # saved in Linear layout by mistake
    dir = write_checkpoint(tmp_path / "ckpt", sd, "safetensors")
    with pytest.raises(ValueError, match=r"h\.1\.mlp\.c_fc\.weight: expected shape \(16, 64\), got \(64, 16\)"):
        from_pretrained(dir)


def test_missing_tensor_names_it(tmp_path):
    sd = hf_tensors()
    del sd["h.1.ln_2.bias"]
    dir = write_checkpoint(tmp_path / "ckpt", sd, "bin")
    with pytest.raises(ValueError, match=r"missing tensor h\.1\.ln_2\.bias in "):
        from_pretrained(dir)


def test_download_once_into_cache(tmp_path, monkeypatch):
    """The download path, offline: a file:// "hub" holding a checkpoint stands in for huggingface.co."""
    write_checkpoint(tmp_path / "hub" / "gpt2", hf_tensors(), "safetensors")
    monkeypatch.setattr(gpt2, "HF_URL", (tmp_path / "hub").as_uri() + "/{name}/{file}")
    monkeypatch.setenv("NANOINSTRUCT_CACHE", str(tmp_path / "cache"))
    dir = gpt2.download("gpt2")
    assert dir == str(tmp_path / "cache" / "gpt2") and sorted(os.listdir(dir)) == ["config.json", "model.safetensors"]
    os.remove(tmp_path / "hub" / "gpt2" / "model.safetensors")   # cached: not fetched again
    assert from_pretrained("gpt2").config.n_layer == CFG["n_layer"]
    with pytest.raises(ValueError, match="unknown GPT-2 model"):
        gpt2.download("gpt3")


def test_is_hf_name_or_dir(tmp_path):
    assert is_hf_name_or_dir("gpt2-xl") and not is_hf_name_or_dir("scratch")
    (tmp_path / "config.json").write_text("{}")   # our run dirs hold a config.json too, but no weights file
    assert not is_hf_name_or_dir(str(tmp_path))


@pytest.mark.skipif(not os.path.exists(GPT2_RANKS), reason="../shared/tokenizers/gpt2.tiktoken absent")
def test_gpt2_tokenizer_offline():
    enc = get_encoding("gpt2")
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.eot_token == 50256 and enc.n_vocab == 50257
