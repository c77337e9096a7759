"""What every stage script shares: config, device and dtype, optimizer and schedule, checkpoints,
model loading, resume and the divergence guard, and the metrics log (torchrun helpers: ddp.py).
Nothing here knows about any one stage."""
import ast
import contextlib
import ctypes
import io
import json
import math
import os
import pickle
import random
import socket
import sys
import textwrap
import time
import tokenize
from dataclasses import asdict, fields

import torch

from nanoinstruct import data, ddp, gpt2, tokenizer
from nanoinstruct.model import GPT, GPTConfig


# ----------------------------------------------------------------------------- config

def die(msg):
    """A user error: one line on stderr, exit status 2 (what argparse does too)."""
    print(f"error: {msg}", file=sys.stderr)
    ddp.failed()
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
            caller = sys._getframe(1).f_globals   # the script that called get_config
            print(config_help(defaults, caller.get("__file__"), caller.get("__doc__")))
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


# ----------------------------------------------------------------------------- --help, config print

# the meaning of settings that several scripts share, for --help where the script's own line has
# no comment (a comment on the setting's line in the script wins)
SHARED_HELP = {
    "out_dir": "where this stage writes ckpt.pt, config.json and metrics.jsonl",
    "init_from": "the checkpoint to start from: a run directory, gpt2*, or a Hugging Face GPT-2 directory",
    "tokenizer": '"" = the init checkpoint\'s own (carried in it); else gpt2 or a .tiktoken file',
    "device": "auto (cuda, then mps, then cpu) | cpu | cuda | mps",
    "dtype": "auto (bfloat16 autocast where the hardware has native bf16, else float32) | float32 | bfloat16 | float16",
    "compile": "torch.compile the model (pays on CUDA; not on CPU)",
    "seed": "random seed: initialisation, data order, sampling",
    "epochs": "passes over the training file",
    "batch_size": "examples per optimisation step",
    "lr": "peak learning rate (AdamW), decayed by a cosine to min_lr_frac * lr",
    "min_lr_frac": "the cosine decay ends at this fraction of lr",
    "warmup_steps": "steps of linear learning-rate warm-up",
    "weight_decay": "AdamW weight decay (matrices only, not biases or LayerNorm gains)",
    "beta2": "AdamW's second-moment decay (beta1 is 0.9)",
    "grad_clip": "clip the gradient norm to this",
    "dropout": "dropout in the model while it trains",
    "train_file": "training data (JSON lines)",
    "val_file": "validation data (JSON lines), never trained on",
    "prompts_file": 'prompts, JSON lines of {"prompt": str}',
    "ptx_bin": "pretraining tokens (a .bin file) for the pretraining mix",
    "eval_interval": "evaluate every this many steps (and at the last)",
    "log_interval": "one console and metrics line every this many steps",
    "max_new_tokens": "most tokens sampled per response",
    "temperature": "sampling temperature (0: greedy)",
    "top_k": "sample among the k likeliest tokens (0: all)",
    "top_p": "nucleus sampling: the likeliest tokens that hold this much probability (1.0: all)",
}


def _help_lines(source):
    """The `defaults = dict(...)` call of a script's source -> [(comment header or None,
    [(key, default), ...] of one source line, that line's trailing comment)], in order."""
    comments = {}   # line -> (text, on a line of its own)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.string.lstrip("#").strip(), tok.line.strip().startswith("#"))
    call = next((n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "defaults" for t in n.targets)
                 and isinstance(n.value, ast.Call)), None)
    if call is None:
        return []
    groups, prev_end = [], call.lineno
    for kw in call.keywords:
        first, last = kw.value.lineno, kw.value.end_lineno
        header = [comments[i][0] for i in range(prev_end + 1, first) if comments.get(i, ("", False))[1]]
        if groups and groups[-1][3] == last and not header:   # another setting on the same line
            groups[-1][1].append(kw.arg)
        else:
            trailing = comments.get(last, ("", True))
            groups.append([" ".join(header) or None, [kw.arg], "" if trailing[1] else trailing[0], last])
        prev_end = last
    return [(h, keys, c) for h, keys, c, _ in groups]


def _cli(v):
    """A default as one writes it on the command line."""
    return ('""' if v == "" else v) if isinstance(v, str) and " " not in v else repr(v)


def config_help(defaults, source_file=None, doc=None):
    """--help: the script's docstring, then every setting with its default and its meaning,
    read from the comments of the script's own `defaults = dict(...)` (one source of truth),
    SHARED_HELP for shared settings the line leaves uncommented."""
    lines = [doc.strip(), ""] if doc else []
    lines.append("settings (override with --key=value, or --config=FILE: a file of `key = value` lines):")
    try:
        groups = _help_lines(open(source_file).read()) if source_file else []
    except OSError:
        groups = []
    seen = set()
    for header, keys, comment in groups:
        keys = [k for k in keys if k in defaults]
        if header:
            lines += textwrap.wrap(header, 98, initial_indent="  # ", subsequent_indent="  # ")
        if comment or len(keys) == 1:   # one line, one meaning
            lines.append(_help_row(" ".join(f"--{k}={_cli(defaults[k])}" for k in keys),
                                   comment or SHARED_HELP.get(keys[0], "")))
        else:                            # several settings on one uncommented line: each its own
            lines += [_help_row(f"--{k}={_cli(defaults[k])}", SHARED_HELP.get(k, "")) for k in keys]
        seen.update(keys)
    lines += [_help_row(f"--{k}={_cli(v)}", SHARED_HELP.get(k, "")) for k, v in defaults.items() if k not in seen]
    return "\n".join(lines)


def _help_row(setting, meaning):
    return f"  {setting.ljust(32)}  {meaning}".rstrip()


def print_config(cfg):
    """The resolved config, once, as key=value lines (config.json saves it too)."""
    print("config:\n" + "\n".join(f"  {k}={_cli(v)}" for k, v in cfg.items()), flush=True)


# ----------------------------------------------------------------------------- device, dtype

def check_settings(cfg, positive=(), non_negative=(), fractions=()):
    """Command-line values out of their range stop the run with the flag and the reason (exit 2),
    before anything is written."""
    for k in positive:
        if not cfg[k] > 0:
            die(f"--{k}={cfg[k]!r}: must be greater than 0")
    for k in non_negative:
        if not cfg[k] >= 0:
            die(f"--{k}={cfg[k]!r}: must be 0 or more")
    for k in fractions:
        if not 0 <= cfg[k] < 1:
            die(f"--{k}={cfg[k]!r}: must be at least 0 and below 1")


def get_device(name="auto"):
    """The device by name, or the best there is (cuda -> mps -> cpu). Under torchrun with CUDA,
    "cuda" is this process's own GPU, cuda:LOCAL_RANK."""
    if name in ("auto", "cuda") and torch.cuda.is_available() and ddp.world_size() > 1:
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
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


def keep_freed_memory():
    """CPU: have glibc's malloc keep large freed blocks for the next step instead of returning them
    to the OS. A training step's logits (8 x 255 x 8193 floats at bench.py's shape: 67 MB), their
    log-softmax and their gradient are above glibc's mmap threshold (at most 32 MB), so each one is
    a fresh mmap whose every page the kernel faults in and zeroes on first touch, every step, then
    unmaps: 10-30% of a training step here (experiments/profile_steps.py: aten::fill_ of the
    logits' gradient alone took 80 ms of a 1.0 s step). jemalloc and tcmalloc, which Intel's
    PyTorch CPU guide preloads, avoid the same cost. Returns whether it took (only on glibc: not
    on macOS, Windows or musl)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3   # <malloc.h>
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


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
    if device == "cpu":
        keep_freed_memory()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    ctx = (contextlib.nullcontext() if dtype == "float32" else
           torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, dtype)))
    return device, ctx, dtype


def maybe_compile(model, cfg):
    """torch.compile when asked for (CUDA: ~1.5-2x faster steps; first steps pay the compile)."""
    return torch.compile(model) if cfg.get("compile") else model


def sdpa_kernels(fn):
    """Which scaled_dot_product_attention implementations fn() ran, as torch.profiler names their
    aten ops: "flash", "efficient", "cudnn" (CUDA kernels), "flash_attention_for_cpu", or
    "attention_math" (the unfused fallback). SDPA picks one silently; this says which."""
    from torch.profiler import profile
    with profile() as prof:
        fn()
    prefix = "aten::_scaled_dot_product_"
    return sorted({e.key.removeprefix(prefix).removesuffix("_attention") for e in prof.key_averages()
                   if e.key.startswith(prefix) and "backward" not in e.key})


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

def write_atomic(path, write):
    """write(tmp_path) into a temp file of this process's own (pid + random name: two runs never
    share one), fsync it, then os.replace it onto path. A kill at any moment leaves either the old
    file or the new one, never a torn one; the temp file of a failed write is removed. Under
    torchrun only rank 0 writes."""
    if not ddp.is_main():
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.{random.SystemRandom().randrange(1 << 32):08x}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())   # the bytes are on disk before the name points at them
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path, obj):
    write_atomic(path, lambda tmp: torch.save(obj, tmp))


def write_json(path, obj):
    """A JSON file written atomically (summary.json, config.json)."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
    write_atomic(path, write)


def load_checkpoint(path, map_location="cpu"):
    """Always weights_only: a file whose pickle would build other objects (and so could run code)
    is refused with a message, as is one that is not a checkpoint at all or is cut short."""
    file = os.path.join(path, "ckpt.pt") if os.path.isdir(path) else path
    if not os.path.exists(file):   # a missing one: a message naming the stage that makes it (data.guide)
        raise data.MissingInput(f"error: {data.guide(path, 'the checkpoint')}")
    path = file
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        die(f"{path}: no such checkpoint")
    except pickle.UnpicklingError as e:
        die(f"{path}: refused: it is not a weights-only checkpoint (its pickle asks for "
            f"{str(e).split('GLOBAL', 1)[-1].split(' was ')[0].strip()[:80] or 'other objects'}, "
            f"which could run code); nanoinstruct loads checkpoints with weights_only=True only")
    except Exception as e:   # noqa: BLE001 (torn, truncated, not a torch file: say which and why)
        die(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})")
    if not isinstance(ckpt, dict) or not {"model", "model_config"} <= set(ckpt):
        die(f"{path}: not a nanoinstruct checkpoint (no 'model' and 'model_config' entries)")
    return ckpt


def expect_reward_model(path, ckpt):
    """Stop, suggesting the likely path, when `path` (given as a reward model) holds a checkpoint
    without a trained reward head: load_model(scalar_head=True) would give it a fresh random one,
    which is right for starting an RM (train_rm.py) and silently wrong for using one."""
    if ckpt is not None and ckpt["model_config"].get("scalar_head"):
        return
    kind = "GPT-2's weights" if ckpt is None else "a language model (stage 0, 1 or 3)"
    here = os.path.dirname(os.path.normpath(path)) or "."
    rms = [os.path.join(here, n) for n in sorted(os.listdir(here)) if n.startswith("rm")
           and os.path.exists(os.path.join(here, n, "ckpt.pt"))] if os.path.isdir(here) else []
    die(f"{path} is {kind}, not a reward model (stage 2, train_rm.py, writes those: "
        f"its checkpoint has a reward head)" + (f"; did you mean {' or '.join(rms)}?" if rms else ""))


def load_tokenizer(name_or_path, ckpt):
    """(encoding, spec) of a stage: --tokenizer when given (gpt2, or a .tiktoken path) and not the
    one the checkpoint carries under that name, else the one the checkpoint carries (tokenizer.tokenizer_spec: a checkpoint copied anywhere decodes),
    else the path an older checkpoint's config names, else GPT-2's (GPT-2 weights).
    Save the spec into every checkpoint written (save_run(..., tokenizer=spec))."""
    carried = ckpt.get("tokenizer") if ckpt is not None else None
    if carried is not None and name_or_path in ("", carried["name"]):
        spec = carried   # (a resumed run's config names it: a relative path may not resolve from here)
    else:
        name_or_path = name_or_path or (ckpt["config"].get("tokenizer", "gpt2") if ckpt is not None else "gpt2")
        if name_or_path != "gpt2":
            data.require(name_or_path, "the tokenizer")
        spec = tokenizer.tokenizer_spec(name_or_path)
    return tokenizer.encoding_from_spec(spec), spec


def raw_model(model):
    """The module under torch.compile's wrapper, whose state_dict has the plain names."""
    return getattr(model, "_orig_mod", model)


def save_run(out_dir, cfg, model, step, optimizer=None, **extra):
    """Write out_dir/ckpt.pt (DESIGN.md layout) and out_dir/config.json. extra may carry
    finished=False (a mid-run checkpoint: later stages refuse it, --init_from=resume continues it)
    and rng=rng_state(...)."""
    if not ddp.is_main():
        return
    os.makedirs(out_dir, exist_ok=True)
    m = raw_model(model)
    ckpt = {"model": m.state_dict(), "model_config": asdict(m.config), "config": cfg, "step": step,
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "rng": {"torch": torch.get_rng_state()}, **extra}
    save_checkpoint(os.path.join(out_dir, "ckpt.pt"), ckpt)
    write_json(os.path.join(out_dir, "config.json"), cfg)


def load_model(init_from, device="cpu", verbose=True, partial_ok=False, **overrides):
    """A GPT from one of: "scratch" (overrides give the GPTConfig), a GPT-2 name or a Hugging Face
    GPT-2 directory (nanoinstruct/gpt2.py), or one of our checkpoints (a directory or ckpt.pt).
    overrides replace model-config fields (e.g. dropout=0.2, scalar_head=True). A scalar head
    absent from the checkpoint starts fresh (reward model from SFT, paper section 3.5).
    A mid-run checkpoint (finished=False) is refused unless partial_ok: a later stage or the
    evaluation would otherwise take a stopped run for a finished one.
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
    if ckpt.get("finished") is False and not partial_ok:
        die(f"{init_from}: the checkpoint of a run stopped after step {ckpt['step']}, not of a finished "
            f"one; finish that run first (its script with --init_from=resume and its --out_dir)")
    model = GPT(GPTConfig(**{**ckpt["model_config"], **overrides}), verbose=verbose)
    state = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    if not model.config.scalar_head:
        state = {k: v for k, v in state.items() if not k.startswith("score_head.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("score_head.")]
    if missing or unexpected:
        raise ValueError(f"{init_from}: checkpoint does not fit the model: missing {missing}, unexpected {unexpected}")
    return model.to(device), ckpt


# ----------------------------------------------------------------------------- resume, faults

def rng_state(**generators):
    """Every random stream a run draws from, for a checkpoint: torch's CPU and CUDA default
    generators (dropout, randperm) and the named torch.Generator / random.Random objects.
    torchrun: every process's own as well, gathered ("per_rank"; every process must call this,
    rank 0 writes it): their dropout streams part ways as soon as their shares differ in shape."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    for name, g in generators.items():
        state[name] = g.getstate() if isinstance(g, random.Random) else g.get_state()
    return state if ddp.world_size() == 1 else {**state, "per_rank": ddp.gather(state)}


def restore_rng(state, **generators):
    """Undo rng_state: set torch's generators and each named one back to the saved state (under
    torchrun, this process's own; from a checkpoint of another number of processes, rank 0's,
    which continues the run, but not exactly)."""
    ranks = state.get("per_rank", [state])
    rank = torch.distributed.get_rank() if ddp.world_size() > 1 and torch.distributed.is_initialized() else 0
    if len(ranks) != ddp.world_size():
        print(f"resume: the checkpoint holds the random state of {len(ranks)} process(es), this run has "
              f"{ddp.world_size()}: it continues, but not exactly as the saved run would have")
    state = ranks[rank] if rank < len(ranks) else state
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    for name, g in generators.items():
        g.setstate(state[name]) if isinstance(g, random.Random) else g.set_state(state[name])


def resume_config(cfg, defaults, always_now=("out_dir", "stop_step")):
    """--init_from=resume: (out_dir/ckpt.pt, the config to continue with). That config is the saved
    one (so `--init_from=resume --out_dir=D` alone continues a run, its init_from included), with
    the settings given now that differ from the defaults on top; each change is printed. A
    resumed run is exactly the uninterrupted one only when nothing changed."""
    path = os.path.join(cfg["out_dir"], "ckpt.pt")
    if not os.path.exists(path):
        die(f"--init_from=resume: there is no checkpoint {path} to resume from")
    ckpt = load_checkpoint(path)
    saved = ckpt.get("config") or {}
    merged = {**cfg, **{k: v for k, v in saved.items() if k in cfg}}
    for k, v in cfg.items():
        if k != "init_from" and (k in always_now or v != defaults[k]):
            merged[k] = v
    for k in merged:
        if k in saved and saved[k] != merged[k] and k not in always_now:
            print(f"resume: {k} changed from {saved[k]!r} to {merged[k]!r}")
    print(f"resuming {path} after step {ckpt['step']}")
    return ckpt, merged


def mid_run_checkpoint(step, last, cfg, save, unit="step"):
    """A stage loop's checkpoints before its end (the end's is the caller's): every ckpt_interval
    steps (0: none), and after stop_step, as if pre-empted: write it, say how to resume, exit 0."""
    if last:
        return
    if step == cfg["stop_step"]:
        save()
        print(f"stopped after {unit} {step} (stop_step); resume with --init_from=resume")
        raise SystemExit(0)
    if cfg["ckpt_interval"] and (step + 1) % cfg["ckpt_interval"] == 0:
        save()


def check_finite(step, **quantities):
    """The divergence guard: a NaN or inf loss, reward or gradient norm ends the run here, with
    exit status 3, naming the step and the quantity. It runs before the optimizer step and before
    any checkpoint, so the broken state is never saved and the last good ckpt.pt stays."""
    if not quantities:
        return
    values = torch.stack([torch.as_tensor(v, dtype=torch.float32).detach().cpu() for v in quantities.values()])
    if bool(torch.isfinite(values).all()):   # one host sync for all of them
        return
    name, v = next((n, x.item()) for n, x in zip(quantities, values) if not torch.isfinite(x))
    print(f"error: step {step}: {name} is {v}: the run diverged and stops (nothing of this step "
          f"is saved; the last checkpoint stays). Try a lower --lr.", file=sys.stderr, flush=True)
    ddp.failed()
    sys.exit(3)


_locks = []   # lock files held for the life of the process


def lock_out_dir(out_dir):
    """Refuse a second run on the same out_dir while this one lives: an flock on out_dir/run.lock,
    which the kernel releases when the process ends in any way (kill -9 leaves no stale lock).
    Holding it, the temp files that killed runs left behind are removed. (Rank 0 holds it.)"""
    if not ddp.is_main():
        return
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "run.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl   # POSIX; elsewhere there is no lock
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:
        other = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
        die(f"--out_dir={out_dir} is in use by another run ({other}); wait for it to end or choose another out_dir")
    for name in os.listdir(out_dir):   # temp files of killed runs (the lock says none is alive)
        if name.endswith(".tmp"):
            os.remove(os.path.join(out_dir, name))
    os.ftruncate(fd, 0)
    os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, {' '.join(sys.argv)[:300]}".encode())
    _locks.append(fd)


# ----------------------------------------------------------------------------- logging

class MetricsLog:
    """metrics.jsonl (one JSON object per logged step) plus one console line per log step:
    step, loss, learning rate, tokens/s, elapsed and ETA, then the other metrics.
    resume_step=S (a run resumed from a checkpoint of step S) keeps the lines of steps <= S and
    drops the later ones, which the resumed run logs again; a torn last line (a kill mid-write)
    is dropped with a note. Each line goes out in one write() of an O_APPEND file, so a kill
    cannot tear a line in the middle of the file."""

    def __init__(self, out_dir, max_steps, resume_step=None, name="metrics.jsonl"):
        self.fd = None   # (torchrun: ranks other than 0 write nothing)
        path = os.path.join(out_dir, name)
        if ddp.is_main():
            os.makedirs(out_dir, exist_ok=True)
            if resume_step is not None and os.path.exists(path):
                self._truncate(path, resume_step)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if resume_step is None else 0)
            self.fd = os.open(path, flags, 0o644)
        self.max_steps = max_steps
        self.t0 = self.t_last = time.time()
        self.first_step = None
        self.last = {}   # the last logged record (for the stage's summary line)

    @staticmethod
    def _truncate(path, resume_step):
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
        keep = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1:   # no newline after it: the write was cut short
                    print(f"{path}: dropped a torn last line (the run was killed while writing it)")
                    continue
                die(f"{path}:{i + 1}: not a JSON object; fix or remove the line before resuming")
            if rec.get("step", -1) <= resume_step:
                keep.append(line + "\n")
        def write(tmp):
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(keep)
        write_atomic(path, write)

    def log(self, step, tokens=0, **metrics):
        """tokens: tokens processed since the previous call (for tokens/s)."""
        now = time.time()
        if self.first_step is None:
            self.first_step = step
        rec = {"step": step, **{k: (float(v) if isinstance(v, (float, torch.Tensor)) else v) for k, v in metrics.items()}}
        if tokens:
            rec["tok_per_s"] = tokens / max(now - self.t_last, 1e-9)
        rec["elapsed_s"] = now - self.t0
        if self.fd is not None:
            os.write(self.fd, (json.dumps(rec) + "\n").encode())
        done = step - self.first_step + 1
        eta = (now - self.t0) / done * max(0, self.max_steps - step - 1)
        print(log_line(step, self.max_steps, rec, now - self.t0, eta), flush=True)
        self.t_last = now
        self.last = rec
        return rec


def log_line(step, max_steps, rec, elapsed, eta):
    """One compact console line: `step 4/600  loss 5.535  lr 0.002 ... 0:12 ETA 2:03`, the keys in
    the order logged (the metrics.jsonl keys); steps shown 1-based, so the last is max/max."""
    width = len(str(max_steps))
    parts = [f"step {step + 1:>{width}}/{max_steps}"]
    parts += [f"{k} {fmt(v)}" for k, v in rec.items() if k not in ("step", "elapsed_s")]
    parts.append(f"{clock(elapsed)} ETA {clock(eta)}")
    return "  ".join(parts)


def fmt(v):
    """A metric with the precision it deserves: 4 significant digits (-0.00123, 5.535, 0.002),
    whole numbers from 100 up (tok_per_s 681, KL 156)."""
    if isinstance(v, bool) or not isinstance(v, float):
        return str(v)
    if v == 0 or not math.isfinite(v):
        return f"{v:g}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.4g}"


def clock(s):
    """Seconds as m:ss (h:mm:ss from an hour)."""
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def progress(items, desc, total=None, every_s=15.0):
    """Yield from `items`; on a long phase (collection, evaluation, normalisation), print
    `desc i/total  elapsed ETA` every every_s seconds and once at its end. Phases shorter than
    every_s print nothing."""
    total = len(items) if total is None else total
    t0 = last = time.time()
    printed = False
    for i, item in enumerate(items, 1):
        yield item
        now = time.time()
        if now - last >= every_s or (printed and i == total):
            print(f"{desc} {i}/{total}  {clock(now - t0)} ETA {clock((now - t0) / i * (total - i))}", flush=True)
            last, printed = now, True


def summary_line(stage, seconds, wrote, **figures):
    """The last line of a stage: `pretrain done in 2:41 | val_loss 1.015 ... | wrote out/base/ckpt.pt`."""
    parts = [f"{stage} done in {clock(seconds)}"]
    if figures:
        parts.append("  ".join(f"{k} {fmt(v)}" for k, v in figures.items()))
    parts.append(f"wrote {wrote}")
    return " | ".join(parts)
