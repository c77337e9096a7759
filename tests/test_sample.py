"""sample.py smoke test: a tiny random checkpoint with its own tiny BPE, sampled from with prompts
and chatted with over stdin, as a user runs it (subprocesses from the repo root)."""
import json
import os
import subprocess
import sys

from nanoinstruct import common
from nanoinstruct.model import GPT, GPTConfig
from nanoinstruct.tokenizer import encoding_from_ranks, save_ranks, train_bpe

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sample(*args, stdin=None):
    r = subprocess.run([sys.executable, "sample.py", *args, "--device=cpu", "--max_new_tokens=8"],
                       cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_sample_prompts_and_chat(tmp_path):
    # a tiny checkpoint whose config names its own tokenizer, as the stage scripts save it
    ranks = train_bpe("Human: hello there. Assistant: hi, how can I help you today? " * 20, 300)
    save_ranks(ranks, str(tmp_path / "tok.tiktoken"))
    vocab = encoding_from_ranks(ranks).n_vocab
    model = GPT(GPTConfig(block_size=64, vocab_size=vocab, n_layer=1, n_head=2, n_embd=16), verbose=False)
    ckpt = str(tmp_path / "ckpt")
    common.save_run(ckpt, {"tokenizer": str(tmp_path / "tok.tiktoken")}, model, step=0)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ("one", "two")))

    out = sample(f"--ckpt={ckpt}", "--prompt=hello there", f"--prompts_file={prompts}", "--num_samples=2")
    for p in ("hello there", "one", "two"):
        assert f"=== prompt: {p!r}" in out
    assert out.count("--- sample 1") == 3 and out.count("--- sample 2") == 3

    out = sample(f"--ckpt={ckpt}", "--chat=True", "--temperature=0", stdin="hello\nhow are you?\n")
    assert "Human: hello\n" in out and "Human: how are you?\n" in out
    assert out.count("Assistant: ") == 2
