"""What every stage script shares: config, device and dtype, optimizer and schedule, checkpoints,
model loading, and the metrics log. Nothing here knows about any one stage."""
import ast
import contextlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, fields

import torch

from nanoinstruct import gpt2
from nanoinstruct.model import GPT, GPTConfig


# ----------------------------------------------------------------------------- config

def die(msg):
    """A user error: one line on stderr, exit status 2 (what argparse does too)."""
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def _typed(key, value, default):
    """`value` (a literal from a file or a string from the command line) as the type of `default`."""
    want = type(default)
    if isinstance(value, str) and want is not str:
        if want is bool and value.lower() in ("true", "false"):
            return value.lower() == "true"
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            if default is None:
                return value   # an optional string setting
            die(f"--{key}={value}: expected {want.__name__}")
    if default is None or isinstance(value, want) and not (want is int and isinstance(value, bool)):
        return value
    if want is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    die(f"--{key}={value!r}: expected {want.__name__}, got {type(value).__name__}")


def _read_config_file(path):
    """A preset: a Python file of `name = literal` lines (comments welcome), read without exec."""
    try:
        tree = ast.parse(open(path).read(), path)
    except (OSError, SyntaxError) as e:
        die(f"--config={path}: {e}")
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue   # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            die(f"{path}:{node.lineno}: only `name = literal` lines are allowed in a config file")
        try:
            out[node.targets[0].id] = ast.literal_eval(node.value)
        except ValueError:
            die(f"{path}:{node.lineno}: the value of {node.targets[0].id} is not a literal")
    return out


def get_config(defaults, argv=None):
    """Defaults, overridden in order by `--config=FILE` presets and `--key=value` arguments.
    An unknown key or a value of the wrong type exits with status 2 and a one-line message."""
    argv = sys.argv[1:] if argv is None else argv
    cfg = dict(defaults)

    def set_key(key, value, where):
        if key not in cfg:
            die(f"unknown config key {key!r} ({where}); known: {', '.join(sorted(cfg))}")
        cfg[key] = _typed(key, value, defaults[key])

    for arg in argv:
        if arg in ("-h", "--help"):
            print("settings (override with --key=value or --config=FILE):")
            for k, v in defaults.items():
                print(f"  --{k}={v!r}")
            sys.exit(0)
        if not arg.startswith("--") or "=" not in arg:
            die(f"bad argument {arg!r}: expected --key=value")
        key, value = arg[2:].split("=", 1)
        if key == "config":
            for k, v in _read_config_file(value).items():
                set_key(k, v, value)
        else:
            set_key(key, value, "command line")
    return cfg


# ----------------------------------------------------------------------------- device, dtype

def get_device(name="auto"):
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16():
    """Whether this CPU has native bf16 matmuls (torch's own checks; absent in old torch: no)."""
    checks = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(c() for c in checks if c is not None)


def setup(cfg):
    """Seed, pick the device and the one autocast context. Returns (device, autocast_ctx, dtype).
    dtype "auto": bfloat16 autocast where the hardware computes in bf16 natively (CUDA GPUs that
    have it; CPUs with AVX512-BF16 or AMX: ~1.45x faster training steps on 2 cores, bench.py),
    float32 elsewhere (emulated bf16 is slower than float32)."""
    torch.manual_seed(cfg["seed"])
    device = get_device(cfg["device"])
    dtype = cfg["dtype"]
    if dtype == "auto":
        native_bf16 = {"cuda": torch.cuda.is_bf16_supported, "cpu": cpu_has_bf16}.get(device)
        dtype = "bfloat16" if native_bf16 is not None and native_bf16() else "float32"
    if dtype not in ("float32", "bfloat16", "float16"):
        die(f"--dtype={dtype}: expected float32, bfloat16, float16 or auto")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ctx = (contextlib.nullcontext() if dtype == "float32" else
           torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype)))
    return device, ctx, dtype


def maybe_compile(model, cfg):
    """torch.compile when asked for (CUDA: ~1.5-2x faster steps; first steps pay the compile)."""
    return torch.compile(model) if cfg.get("compile") else model


# ----------------------------------------------------------------------------- optimizer

def make_optimizer(model, lr, weight_decay, betas=(0.9, 0.95), device="cpu"):
    """AdamW; weight decay on matrices only (not on biases, LayerNorm gains: decaying those only
    hurts). Fused kernel on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = {"fused": True} if str(device).startswith("cuda") else {}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **fused)


def cosine_lr(step, max_steps, lr, warmup_steps=0, min_lr_frac=0.1):
    """Linear warm-up to lr, then cosine decay to min_lr_frac * lr at max_steps."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return lr * (min_lr_frac + (1 - min_lr_frac) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path, obj):
    """torch.save into a temp file, then os.replace: a crash mid-save never leaves a torn ckpt.pt."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu"):
    if os.path.isdir(path):
        path = os.path.join(path, "ckpt.pt")
    return torch.load(path, map_location=map_location, weights_only=True)


def raw_model(model):
    """The module under torch.compile's wrapper, whose state_dict has the plain names."""
    return getattr(model, "_orig_mod", model)


def save_run(out_dir, cfg, model, step, optimizer=None, **extra):
    """Write out_dir/ckpt.pt (DESIGN.md layout) and out_dir/config.json."""
    os.makedirs(out_dir, exist_ok=True)
    m = raw_model(model)
    ckpt = {"model": m.state_dict(), "model_config": asdict(m.config), "config": cfg, "step": step,
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "rng": {"torch": torch.get_rng_state()}, **extra}
    save_checkpoint(os.path.join(out_dir, "ckpt.pt"), ckpt)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def load_model(init_from, device="cpu", verbose=True, **overrides):
    """A GPT from one of: "scratch" (overrides give the GPTConfig), a GPT-2 name or a Hugging Face
    GPT-2 directory (nanoinstruct/gpt2.py), or one of our checkpoints (a directory or ckpt.pt).
    overrides replace model-config fields (e.g. dropout=0.2, scalar_head=True). A scalar head
    absent from the checkpoint starts fresh (reward model from SFT, paper section 3.5).
    Returns (model, ckpt or None)."""
    known = {f.name for f in fields(GPTConfig)}
    bad = set(overrides) - known
    if bad:
        raise ValueError(f"not model-config fields: {sorted(bad)}")
    if init_from == "scratch":
        return GPT(GPTConfig(**overrides), verbose=verbose).to(device), None
    if gpt2.is_hf_name_or_dir(init_from):   # a GPT-2 name to download, or a local HF directory
        return gpt2.from_pretrained(init_from, **overrides).to(device), None
    ckpt = load_checkpoint(init_from)
    model = GPT(GPTConfig(**{**ckpt["model_config"], **overrides}), verbose=verbose)
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    if not model.config.scalar_head:
        state = {k: v for k, v in state.items() if not k.startswith("score_head.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("score_head.")]
    if missing or unexpected:
        raise ValueError(f"{init_from}: checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
    return model.to(device), ckpt


# ----------------------------------------------------------------------------- logging

class MetricsLog:
    """metrics.jsonl (one JSON object per logged step) plus one console line per log step:
    step, loss, learning rate, tokens/s, elapsed and ETA, then the other metrics."""

    def __init__(self, out_dir, max_steps, append=False, name="metrics.jsonl"):
        os.makedirs(out_dir, exist_ok=True)
        self.file = open(os.path.join(out_dir, name), "a" if append else "w")
        self.max_steps = max_steps
        self.t0 = self.t_last = time.time()
        self.first_step = None

    def log(self, step, tokens=0, **metrics):
        """tokens: tokens processed since the previous call (for tokens/s)."""
        now = time.time()
        if self.first_step is None:
            self.first_step = step
        rec = {"step": step, **{k: (float(v) if isinstance(v, (float, torch.Tensor)) else v) for k, v in metrics.items()}}
        if tokens:
            rec["tok_per_s"] = tokens / max(now - self.t_last, 1e-9)
        rec["elapsed_s"] = now - self.t0
        self.file.write(json.dumps(rec) + "\n")
        self.file.flush()
        done = step - self.first_step + 1
        eta = (now - self.t0) / done * max(0, self.max_steps - step - 1)
        parts = [f"step {step}/{self.max_steps}"]
        parts += [f"{k} {_fmt(v)}" for k, v in rec.items() if k not in ("step", "elapsed_s")]
        parts += [f"{_clock(now - self.t0)} elapsed", f"ETA {_clock(eta)}"]
        print(" | ".join(parts), flush=True)
        self.t_last = now
        return rec


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.3e}" if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5) else f"{v:.4f}"
    return str(v)


def _clock(s):
    return f"{int(s) // 60}:{int(s) % 60:02d}"
