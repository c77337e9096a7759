"""Config parsing, checkpoints, optimizer/schedule, tokenizer, data formats, and a few training
steps of a 4-layer 256-wide model through the common core."""
import gzip
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from nanoinstruct import common, data, tokenizer
from nanoinstruct.model import GPT, GPTConfig

from conftest import ROOT

SHARED_GPT2 = os.path.join(ROOT, "..", "shared", "tokenizers", "gpt2.tiktoken")
DEFAULTS = {"lr": 3e-4, "steps": 10, "name": "x", "compile": False, "opt": None}


def run_config(args, capsys):
    """get_config's exit status and stderr (in-process: a subprocess per case cost ~3 s of
    importing torch each)."""
    with pytest.raises(SystemExit) as e:
        common.get_config(DEFAULTS, args)
    return e.value.code, capsys.readouterr().err


def test_config_overrides_and_file(tmp_path):
    f = tmp_path / "preset.py"
    f.write_text('"""a preset"""\nlr = 1e-3  # paper value\nsteps = 20\n')
    cfg = common.get_config(DEFAULTS, [f"--config={f}", "--steps=5", "--name=abc", "--compile=True", "--lr=1"])
    assert cfg == {"lr": 1.0, "steps": 5, "name": "abc", "compile": True, "opt": None}


@pytest.mark.parametrize("args", [["--nope=1"], ["--steps=1.5"], ["--compile=maybe"], ["--lr=abc"], ["steps=3"]])
def test_config_errors_exit_2(args, capsys):
    code, err = run_config(args, capsys)
    assert code == 2, err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_config_file_rejects_code(tmp_path, capsys):
    f = tmp_path / "bad.py"
    f.write_text("import os\n")
    assert run_config([f"--config={f}"], capsys)[0] == 2


def test_checkpoint_roundtrip_and_atomic(tmp_path, monkeypatch):
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16), verbose=False)
    opt = common.make_optimizer(m, 1e-3, 0.1)
    m(torch.randint(0, 50, (2, 8))).sum().backward()
    opt.step()
    out = str(tmp_path / "run")
    common.save_run(out, {"a": 1}, m, step=3, optimizer=opt)
    m2, ck = common.load_model(out, verbose=False)
    for k, v in m.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    opt2 = common.make_optimizer(m2, 1e-3, 0.1)
    opt2.load_state_dict(ck["optimizer"])
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    assert ck["step"] == 3 and json.load(open(os.path.join(out, "config.json"))) == {"a": 1}
    # a crash during save leaves the previous checkpoint intact
    before = open(os.path.join(out, "ckpt.pt"), "rb").read()

    def boom(obj, f, *a, **k):
        open(f, "wb").write(b"partial")
        raise RuntimeError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(RuntimeError):
        common.save_run(out, {"a": 2}, m, step=4, optimizer=opt)
    assert open(os.path.join(out, "ckpt.pt"), "rb").read() == before
    assert not os.path.exists(os.path.join(out, "ckpt.pt.tmp"))


def test_load_model_adds_fresh_scalar_head(tmp_path):
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16), verbose=False)
    common.save_run(str(tmp_path), {}, m, step=0)
    rm, _ = common.load_model(str(tmp_path), scalar_head=True, verbose=False)
    assert rm.score_head is not None
    assert torch.equal(rm.transformer.wte.weight, m.transformer.wte.weight)


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_is_bf16_only_where_native(monkeypatch, native):
    """dtype=auto: bf16 autocast on a CPU with native bf16 matmuls, float32 on one without
    (emulated bf16 is slower); an explicit dtype always wins."""
    monkeypatch.setattr(common, "cpu_has_bf16", lambda: native)
    cfg = {"seed": 0, "device": "cpu", "dtype": "auto"}
    device, ctx, dtype = common.setup(cfg)
    assert device == "cpu" and dtype == ("bfloat16" if native else "float32")
    with ctx:
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    assert common.setup({**cfg, "dtype": "float32"})[2] == "float32"


def test_cosine_schedule():
    lrs = [common.cosine_lr(s, 100, 1.0, warmup_steps=10, min_lr_frac=0.1) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5) and lrs[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_optimizer_groups():
    m = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16), verbose=False)
    opt = common.make_optimizer(m, 1e-3, 0.1)
    decay, no_decay = opt.param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert no_decay["weight_decay"] == 0 and decay["weight_decay"] == 0.1
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in m.parameters())


def test_train_bpe_roundtrip(tmp_path):
    text = "the zorblat lives in mirevale. the zorblat is blue! 12 + 30 = 42\n" * 50 + "Ünïcode ✓ ok"
    ranks = tokenizer.train_bpe(text, 300)
    assert len(ranks) == 299 and sorted(ranks.values()) == list(range(299))
    path = str(tmp_path / "w.tiktoken")
    tokenizer.save_ranks(ranks, path)
    enc, enc2 = tokenizer.encoding_from_ranks(ranks), tokenizer.get_encoding(path)
    ids = enc.encode_ordinary(text)
    assert enc2.encode_ordinary(text) == ids and enc2.decode(ids) == text
    assert len(ids) < len(text.encode()) / 2          # merges were learned and used
    assert enc2.eot_token == 299


def test_chat_format():
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: hi there", 270))
    p, r = tokenizer.encode_prompt(enc, "hi"), tokenizer.encode_response(enc, "there")
    assert enc.decode(p) == "\n\nHuman: hi\n\nAssistant:" and enc.decode(r) == " there<|endoftext|>"
    assert tokenizer.decode_response(enc, r + [5]) == ("there", True)
    assert tokenizer.encode_prompt(enc, "\n\nHuman: hi\n\nAssistant:") == p   # HH transcripts kept


@pytest.mark.skipif(not os.path.exists(SHARED_GPT2), reason="no ../shared/tokenizers/gpt2.tiktoken")
def test_gpt2_encoding_offline():
    enc = tokenizer.get_encoding("gpt2")
    assert enc.encode("Hello world") == [15496, 995] and enc.eot_token == 50256


def test_read_jsonl_formats_and_errors(tmp_path):
    rows = [{"prompt": "p", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]},
            {"prompt": "p", "chosen": "a", "rejected": "b"},
            {"chosen": "\n\nHuman: hi\n\nAssistant: yes", "rejected": "\n\nHuman: hi\n\nAssistant: no"}]
    path = str(tmp_path / "c.jsonl.gz")
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n")
    got = data.read_jsonl(path, "comparisons")
    assert got[1] == {"prompt": "p", "responses": ["a", "b"], "ranking": [0, 1]}
    assert got[2] == {"prompt": "\n\nHuman: hi\n\nAssistant:", "responses": ["yes", "no"], "ranking": [0, 1]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "response": "b"}\n{"prompt": 3, "response": "b"}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:2: .*prompt"):
        data.read_jsonl(str(bad), "demonstrations")
    bad.write_text('{"prompt": "p", "responses": ["a", "b"], "ranking": [0, 0]}\n')
    with pytest.raises(SystemExit, match=r"bad.jsonl:1: .*ranking"):
        data.read_jsonl(str(bad), "comparisons")


def test_core_trains_4x256_model():
    """A 4-layer, 256-wide model fits a fixed batch through make_optimizer + cosine_lr."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=4, n_head=4, n_embd=256), verbose=False)
    opt = common.make_optimizer(m, 1e-3, 0.1)
    x = torch.randint(0, 512, (4, 65))
    losses = []
    for step in range(8):
        common.set_lr(opt, common.cosine_lr(step, 8, 1e-3, warmup_steps=2))
        logits = m.lm_logits(m(x[:, :-1]))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 512), x[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")
def test_keep_freed_memory_keeps_large_blocks_for_reuse():
    # Under glibc's defaults each 64 MB tensor is its own mmap (mallinfo2's hblkhd counts it),
    # returned to the OS when freed and faulted in page by page (16k pages) at the next one.
    # With keep_freed_memory() it comes from the heap, stays there once freed (fordblks), and
    # the faults stop once the heap holds the few blocks the loop needs: a small piece of a
    # freed block can go to some other allocation, so the heap may grow by a block or two
    # before it settles (which is why the counts are taken after a warm-up).
    code = textwrap.dedent("""
        import ctypes, resource, torch
        from nanoinstruct import common
        class MallInfo2(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        def faults(n):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            for _ in range(n):
                torch.ones(16 << 20)          # 64 MB, written once, freed
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
        def mmapped_while_alive():
            t = torch.ones(16 << 20)
            return libc.mallinfo2().hblkhd >= 64 << 20
        faults(5)
        default, default_mmapped = faults(20), mmapped_while_alive()
        took = common.keep_freed_memory()
        faults(10)
        kept, kept_mmapped = faults(20), mmapped_while_alive()
        free_after = libc.mallinfo2().fordblks
        print(took, default, kept, default_mmapped, kept_mmapped, free_after >= 64 << 20)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    took, default, kept, default_mmapped, kept_mmapped, kept_free = out.stdout.split()
    if took != "True":
        pytest.skip("not glibc")
    assert (default_mmapped, kept_mmapped, kept_free) == ("True", "False", "True"), out.stdout
    assert int(default) > 20 * 16000 and int(kept) < int(default) // 4, out.stdout
