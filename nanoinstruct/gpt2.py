"""OpenAI's GPT-2 weights in our GPT, with the standard library only.

    model = from_pretrained("gpt2")            # downloads config.json + model.safetensors once
    model = from_pretrained("path/to/hf_dir")  # config.json + model.safetensors or pytorch_model.bin

A Hugging Face GPT-2 checkpoint maps 1:1 onto nanoinstruct/model.py (nanoGPT's parameter names),
except that GPT-2 stores its linear layers as "Conv1D" with weight (in, out) where nn.Linear has
(out, in): those four weights are transposed. The safetensors file is parsed here by hand
(no safetensors package): an 8-byte little-endian header length N, N bytes of JSON
{name: {"dtype", "shape", "data_offsets": [begin, end]}} (offsets from the end of the header),
then the raw little-endian tensor bytes.
"""
import json
import mmap
import os
import sys
import urllib.request

import torch

from nanoinstruct.model import GPT, GPTConfig

GPT2_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
HF_URL = "https://huggingface.co/{name}/resolve/main/{file}"
# GPT-2's Conv1D layers: weight stored (in, out), transposed into nn.Linear's (out, in)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
                      "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
                      "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


def fetch(url, path):
    """Download `url` to `path` with one progress line; the temp file + rename means an
    interrupted download never leaves a truncated file that a later run would trust."""
    tmp = path + ".part"
    with urllib.request.urlopen(url) as r, open(tmp, "wb") as f:
        total, done = int(r.headers.get("Content-Length") or 0), 0
        while chunk := r.read(1 << 20):
            f.write(chunk)
            done += len(chunk)
            of = f" / {total / 1e6:.1f}" if total else ""
            print(f"\r{os.path.basename(path)}: {done / 1e6:.1f}{of} MB", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    os.replace(tmp, path)


def download(name, cache_dir=None):
    """Fetch `name`'s config.json and model.safetensors from the Hugging Face hub (once) into
    {cache_dir}/{name}, where cache_dir defaults to $NANOINSTRUCT_CACHE or ~/.cache/nanoinstruct.
    Returns that directory."""
    if name not in GPT2_NAMES:
        raise ValueError(f"unknown GPT-2 model {name!r}; expected one of {', '.join(GPT2_NAMES)}")
    root = cache_dir or os.environ.get("NANOINSTRUCT_CACHE") or os.path.expanduser("~/.cache/nanoinstruct")
    out = os.path.join(root, name)
    os.makedirs(out, exist_ok=True)
    for file in ("config.json", "model.safetensors"):
        if not os.path.exists(os.path.join(out, file)):
            fetch(HF_URL.format(name=name, file=file), os.path.join(out, file))
    return out


def read_safetensors(path):
    """{name: tensor} from a .safetensors file, in the file's dtypes. The file is memory-mapped
    copy-on-write, so tensors are views of the page cache (no second copy of a 6 GB gpt2-xl
    file) and torch gets the writable buffer it wants; nothing is ever written back to disk."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY) if os.path.getsize(path) > 8 + n else None
    start = 8 + n
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(f"{path}: {name}: unsupported dtype {info['dtype']}")
        dtype, shape = SAFETENSORS_DTYPES[info["dtype"]], info["shape"]
        begin, end = info["data_offsets"]
        numel = 1
        for s in shape:
            numel *= s
        if end - begin != numel * dtype.itemsize or start + end > os.path.getsize(path):
            raise ValueError(f"{path}: {name}: data_offsets {begin, end} do not fit shape {shape} {info['dtype']}")
        if numel == 0:   # torch.frombuffer refuses empty buffers
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        tensors[name] = torch.frombuffer(mm, dtype=dtype, count=numel, offset=start + begin).view(shape)
    return tensors


def load_hf_state_dict(dir):
    """The raw Hugging Face state dict in `dir`: model.safetensors, else pytorch_model.bin."""
    st, pt = os.path.join(dir, "model.safetensors"), os.path.join(dir, "pytorch_model.bin")
    if os.path.exists(st):
        return read_safetensors(st)
    if os.path.exists(pt):
        return torch.load(pt, map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{dir}: neither model.safetensors nor pytorch_model.bin")


def is_hf_name_or_dir(init_from):
    """True for a GPT-2 model name or a local Hugging Face GPT-2 directory. Our own run
    directories also hold a config.json, so the weight file is what tells them apart."""
    if init_from in GPT2_NAMES:
        return True
    return os.path.isdir(init_from) and os.path.exists(os.path.join(init_from, "config.json")) and any(
        os.path.exists(os.path.join(init_from, f)) for f in ("model.safetensors", "pytorch_model.bin"))


def config_from_hf(hf, **overrides):
    """Our GPTConfig from a Hugging Face GPT-2 config.json dict (plus overrides)."""
    act = hf.get("activation_function", "gelu_new")
    if act != "gelu_new":   # our MLP uses GPT-2's tanh-approximated GELU (HF's gelu_new)
        raise ValueError(f"activation_function {act!r} not supported (only GPT-2's gelu_new)")
    cfg = dict(n_layer=hf["n_layer"], n_head=hf["n_head"], n_embd=hf["n_embd"],
               block_size=hf.get("n_positions", hf.get("n_ctx")), vocab_size=hf["vocab_size"], bias=True)
    cfg.update(overrides)
    return GPTConfig(**cfg)


def from_pretrained(name_or_dir, **overrides):
    """GPT with GPT-2's weights, in float32. `name_or_dir`: a name in GPT2_NAMES (downloaded
    once) or a local Hugging Face GPT-2 directory. `overrides` go to GPTConfig, e.g.
    dropout=0.1, scalar_head=True (the score head stays freshly initialised), or a smaller
    block_size (the position table is cropped, as in nanoGPT)."""
    dir = download(name_or_dir) if name_or_dir in GPT2_NAMES else name_or_dir
    with open(os.path.join(dir, "config.json")) as f:
        config = config_from_hf(json.load(f), **overrides)
    hf = load_hf_state_dict(dir)
    hf = {k.removeprefix("transformer."): v for k, v in hf.items()}   # GPT2LMHeadModel vs GPT2Model names
    model = GPT(config)
    # parameters only: buffers (a causal mask, say) are computed by the model, not loaded
    params = dict(model.named_parameters(remove_duplicate=False))
    with torch.no_grad():
        for key, param in params.items():
            # lm_head is tied to wte (same tensor) and the score head is ours, not GPT-2's
            if key == "lm_head.weight" or key.startswith("score_head."):
                continue
            name = key.removeprefix("transformer.")
            if name not in hf:
                raise ValueError(f"missing tensor {name} in {dir}")
            t = hf[name]
            if name == "wpe.weight":   # allow a block_size below GPT-2's 1024 positions
                t = t[: config.block_size]
            conv1d = name.endswith(CONV1D)
            want = tuple(param.shape[::-1]) if conv1d else tuple(param.shape)   # in the file's layout
            if tuple(t.shape) != want:
                raise ValueError(f"{name}: expected shape {want}, got {tuple(t.shape)}")
            param.copy_((t.t() if conv1d else t).float())
    return model
