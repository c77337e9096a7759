"""Bad input, swept (issue 21): one row per malformed input of a stage script. Each must stop the
run with a non-zero exit and a message that names the file and line (or the flag) and says what
is wrong, before any output file is created or replaced. Run in-process (runpy) to stay fast:
every row fails before training starts."""
import json
import os
import runpy
import sys

import numpy as np
import pytest
import torch

from nanoinstruct import common, data, tokenizer
from nanoinstruct.model import GPT, GPTConfig

from conftest import ROOT
from test_resume import stage_args


class Evil:
    """A pickle that would run a shell command when loaded without weights_only."""
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def write(path, content):
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return str(path)


@pytest.fixture(scope="module")
def bad(micro, tmp_path_factory):
    """Malformed files next to good copies of the micro pipeline's inputs."""
    out, _ = micro
    d = tmp_path_factory.mktemp("bad")
    demos = (out / "world" / "demos_train.jsonl").read_text().splitlines()
    comps = (out / "world" / "comparisons_train.jsonl").read_text().splitlines()
    tie = json.loads(comps[0])
    tie["ranking"] = [0] * len(tie["responses"])
    partial = GPT(GPTConfig(vocab_size=1076, block_size=128, n_layer=1, n_head=2, n_embd=32), verbose=False)
    common.save_run(str(d / "partial"), {"tokenizer": "gpt2"}, partial, step=3, finished=False)
    torch.save({"model": Evil(d / "pwned"), "model_config": {}}, d / "evil.pt")
    blob = (out / "base" / "ckpt.pt").read_bytes()
    return {
        "empty_bin": write(d / "empty.bin", b""),
        "odd_bin": write(d / "odd.bin", b"\x01\x02\x03"),
        "short_bin": write(d / "short.bin", np.arange(10, dtype=np.uint16).tobytes()),
        "vocab_bin": write(d / "vocab.bin", np.full(500, 60000, dtype=np.uint16).tobytes()),
        "preset": write(d / "preset.py", "batch_size = 4\nimport os\n"),
        "evil": str(d / "evil.pt"), "pwned": d / "pwned",
        "torn_ckpt": write(d / "torn.pt", blob[:len(blob) // 2]),
        "partial": str(d / "partial"),
        "demos_bad_line": write(d / "demos.jsonl", demos[0] + "\n" + '{"prompt": "hi", "response": 3}\n'),
        "demos_empty": write(d / "demos_empty.jsonl", "\n"),
        "comps_tie": write(d / "comps.jsonl", json.dumps(tie) + "\n"),
        "comps_empty": write(d / "comps_empty.jsonl", ""),
        "prompts_bad": write(d / "prompts.jsonl", '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": \n'),
    }


# (id, stage, extra arguments (may name a `bad` file as {key}), what the message must hold)
CASES = [
    ("pretrain-empty-bin", "pretrain", ["--train_bin={empty_bin}"], "{empty_bin}: not a uint16 token file"),
    ("pretrain-odd-bin", "pretrain", ["--train_bin={odd_bin}"], "{odd_bin}: not a uint16 token file"),
    ("pretrain-short-bin", "pretrain", ["--val_bin={short_bin}"], "{short_bin}: 10 tokens, too few"),
    ("pretrain-vocab-bin", "pretrain", ["--train_bin={vocab_bin}"], "{vocab_bin}: token id 60000 is outside"),
    ("pretrain-batch-0", "pretrain", ["--batch_size=0"], "--batch_size=0: must be greater than 0"),
    ("pretrain-heads", "pretrain", ["--n_embd=30", "--n_head=4"], "--n_embd=30 must be a multiple of --n_head=4"),
    ("pretrain-preset-code", "pretrain", ["--config={preset}"], "{preset}:2: only `name = literal`"),
    ("pretrain-pickle-code", "pretrain", ["--init_from={evil}"], "{evil}: refused: it is not a weights-only checkpoint"),
    ("pretrain-torn-ckpt", "pretrain", ["--init_from={torn_ckpt}"], "{torn_ckpt}: not a readable checkpoint"),
    ("pretrain-no-resume", "pretrain", ["--init_from=resume"], "--init_from=resume: there is no checkpoint"),
    ("sft-bad-line", "sft", ["--train_file={demos_bad_line}"], "{demos_bad_line}:2: demonstrations: field 'response'"),
    ("sft-empty-train", "sft", ["--train_file={demos_empty}"], "{demos_empty}: no demonstrations"),
    ("sft-empty-val", "sft", ["--val_file={demos_empty}"], "{demos_empty}: no demonstrations"),
    ("sft-ptx-frac", "sft", ["--ptx_frac=1.0"], "--ptx_frac=1.0: must be at least 0 and below 1"),
    ("sft-block", "sft", ["--block_size=4096"], "--block_size=4096: more than the model's context of 128"),
    ("sft-partial-init", "sft", ["--init_from={partial}"], "{partial}: the checkpoint of a run stopped after step 3"),
    ("rm-tie", "rm", ["--train_file={comps_tie}"], "{comps_tie}:1: comparisons: 'ranking' must order"),
    ("rm-empty-val", "rm", ["--val_file={comps_empty}"], "{comps_empty}: no comparisons"),
    ("rm-bad-norm-file", "rm", ["--norm_file={demos_bad_line}"], "{demos_bad_line}:2:"),
    ("rm-lr", "rm", ["--lr=-1.0"], "--lr=-1.0: must be greater than 0"),
    ("ppo-bad-prompts", "ppo", ["--prompts_file={prompts_bad}"], "{prompts_bad}:3:"),
    ("ppo-minibatch", "ppo", ["--minibatch_size=100"], "--minibatch_size=100: more than --rollout_batch=12"),
    ("ppo-gold-fn", "ppo", ["--gold_fn=nanoinstruct.world:nope"], "--gold_fn=nanoinstruct.world:nope: expected module:function"),
    ("ppo-new-tokens", "ppo", ["--max_new_tokens=128"], "--max_new_tokens=128: leaves no room"),
    ("ppo-ptx-bin", "ppo", ["--ptx_bin={odd_bin}"], "{odd_bin}: not a uint16 token file"),
]


def snapshot(d):
    return {n: (d / n).read_bytes() for n in sorted(os.listdir(d))} if d.exists() else None


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_stops_before_writing(case, micro, bad, tmp_path, capsys, monkeypatch):
    _, stage, extra, want = case
    out, _ = micro
    out_dir = tmp_path / "out"   # a previous run's files, which must survive untouched
    out_dir.mkdir()
    (out_dir / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    (out_dir / "config.json").write_text("{}")
    before = snapshot(out_dir)
    script, *args = stage_args(stage, out)
    args = [a.format(**bad) for a in args + extra] + [f"--out_dir={out_dir}"]
    monkeypatch.setattr(sys, "argv", [script, *args])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    code = e.value.code
    message = (code if isinstance(code, str) else "") + capsys.readouterr().err
    assert code not in (0, None), message
    assert want.format(**bad) in message, message
    assert snapshot(out_dir) == before
    assert not bad["pwned"].exists()   # the pickled command never ran


def test_long_responses_are_counted_not_silent(capsys):
    enc = tokenizer.encoding_from_ranks(tokenizer.train_bpe("Human: Assistant: a b c d e f", 270))
    rows = [{"prompt": "a", "response": "b c"}, {"prompt": "a", "response": " ".join("abcdef" * 4)},
            {"prompt": "a", "responses": ["b", "c d e f " * 5], "ranking": [0, 1]}]
    n = data.warn_long_responses(enc, rows, 12, "x.jsonl")
    text = capsys.readouterr().out
    assert n == 2 and "x.jsonl: 2 of 3 records" in text and "the first is record 2" in text
    ids, _, _ = data.encode_example(enc, "a", rows[1]["response"], 12)
    assert ids[-1] != enc.eot_token          # what the warning is about: the end-of-text is lost
    assert data.count_long_responses(enc, rows[:1], 12) == (0, None)


@pytest.mark.parametrize("script", ["pretrain.py", "train_sft.py", "train_rm.py", "train_ppo.py"])
def test_range_checks_name_only_settings_the_script_has(script):
    """common.check_settings(cfg, ...) of each stage names only keys of its defaults (a key another
    change removed would stop every run with a KeyError)."""
    import ast
    tree = ast.parse(open(os.path.join(ROOT, script)).read())
    call = next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "defaults" for t in n.targets))
    keys = {kw.arg for kw in call.keywords}
    checks = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "check_settings"]
    named = {e.value for c in checks for kw in c.keywords for e in kw.value.elts}
    assert checks and named and named <= keys, named - keys
