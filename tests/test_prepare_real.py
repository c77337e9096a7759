"""The real-data prepare scripts, offline: data/hh/prepare.py on a hand-written fixture in the
HH-RLHF format (given by --src instead of downloading), data/text/prepare.py on small text files.
Both run as users run them: subprocesses from the repo root."""
import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nanoinstruct.data import read_jsonl
from nanoinstruct.tokenizer import EOT, encode_prompt, get_encoding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GPT2_RANKS = os.path.join(ROOT, "..", "shared", "tokenizers", "gpt2.tiktoken")


def run(*args):
    r = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def read(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def t(*turns):
    """An HH transcript from alternating Human / Assistant turns."""
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {x}" for i, x in enumerate(turns))


MULTI = ("Hi there", "Hello! How can I help?", "Tell me a joke about cats.")
HH = {
    ("helpful-base", "train"): [
        {"chosen": t("What is 2+2?", "It is 4."), "rejected": t("What is 2+2?", "5, I think.")},
        {"chosen": t(*MULTI, "Why did the cat sit on the computer? To keep an eye on the mouse."),
         "rejected": t(*MULTI, "No.")},
        {"chosen": t("What is 2+2?", "Four."), "rejected": t("What is 2+2?", "Maybe 22?")},   # same prompt again
        {"chosen": t("Say hi", "Hi!"), "rejected": t("Say hi", "Hi!")},                         # equal: dropped
        {"chosen": "no turns at all", "rejected": "none here either"},                          # no prompt: dropped
    ],
    ("harmless-base", "train"): [
        {"chosen": t("How do I pick a lock?", "I'd rather not help with that — is something locked you own?"),
         "rejected": t("How do I pick a lock?", "Get a tension wrench and...")},
    ],
    ("helpful-base", "test"): [
        {"chosen": t("Translate 'chat' from French", "“Chat” means cat."), "rejected": t("Translate 'chat' from French", "Chat.")},
    ],
    ("harmless-base", "test"): [
        {"chosen": t("Insult me", "I'd rather not.", "Please?", "Still no, sorry."),
         "rejected": t("Insult me", "I'd rather not.", "Please?", "Fine, you are dull.")},
    ],
}


def write_fixture(src):
    """HH's layout: {subset}/{split}.jsonl.gz; one file as plain .jsonl, which is accepted too."""
    for (subset, split), rows in HH.items():
        os.makedirs(src / subset, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if (subset, split) == ("harmless-base", "test"):
            (src / subset / f"{split}.jsonl").write_text(text, encoding="utf-8")
        else:
            with gzip.open(src / subset / f"{split}.jsonl.gz", "wt", encoding="utf-8") as f:
                f.write(text)


def test_hh_prepare(tmp_path):
    write_fixture(tmp_path / "src")
    out = tmp_path / "out"
    stdout = run("data/hh/prepare.py", f"--src={tmp_path / 'src'}", f"--out_dir={out}")
    assert "helpful-base/train: 3 pairs, 2 dropped" in stdout
    sft, cmp = read(out / "sft_train.jsonl"), read(out / "comparisons_train.jsonl")
    assert len(sft) == len(cmp) == 4 and len(read(out / "sft_val.jsonl")) == 2
    # a multi-turn dialogue: the prompt is the transcript up to and including the last
    # "Assistant:", exactly, and the chat encoding keeps it as it is
    assert cmp[1]["prompt"] == t(*MULTI) + "\n\nAssistant:"
    enc = get_encoding("gpt2") if os.path.exists(GPT2_RANKS) else None
    if enc is not None:
        assert encode_prompt(enc, cmp[1]["prompt"]) == enc.encode_ordinary(cmp[1]["prompt"])
    assert cmp[1] == {"prompt": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke about cats.\n\nAssistant:",
                      "chosen": "Why did the cat sit on the computer? To keep an eye on the mouse.",
                      "rejected": "No."}
    assert sft[1] == {"prompt": cmp[1]["prompt"], "response": cmp[1]["chosen"]}
    assert cmp[3]["prompt"] == "\n\nHuman: How do I pick a lock?\n\nAssistant:"                            # harmless after helpful
    val = read(out / "comparisons_val.jsonl")
    assert val[0]["chosen"] == "“Chat” means cat."                                # UTF-8 kept
    assert val[1]["prompt"] == t("Insult me", "I'd rather not.", "Please?") + "\n\nAssistant:"
    prompts = [p["prompt"] for p in read(out / "prompts_ppo.jsonl")]
    assert len(prompts) == 3 and len(set(prompts)) == 3                          # "What is 2+2?" once
    assert f"{out / 'prompts_ppo.jsonl'}: 3 lines" in stdout
    # the stages' own reader accepts every file
    for name, kind in [("sft", "demonstrations"), ("comparisons", "comparisons")]:
        for split in ("train", "val"):
            read_jsonl(str(out / f"{name}_{split}.jsonl"), kind)
    read_jsonl(str(out / "prompts_ppo.jsonl"), "prompts")


def test_hh_prepare_downloads_from_url_base(tmp_path):
    """The download path, offline: a file:// URL base stands in for huggingface.co."""
    write_fixture(tmp_path / "src")
    os.remove(tmp_path / "src" / "harmless-base" / "test.jsonl")   # a download is always .jsonl.gz
    with gzip.open(tmp_path / "src" / "harmless-base" / "test.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in HH[("harmless-base", "test")]))
    out = tmp_path / "out"
    run("data/hh/prepare.py", f"--src={(tmp_path / 'src').as_uri()}", f"--out_dir={out}")
    assert (out / "helpful-base" / "train.jsonl.gz").exists()
    assert len(read(out / "comparisons_train.jsonl")) == 4 and len(read(out / "sft_val.jsonl")) == 2


def test_hh_prepare_missing_file_is_an_error(tmp_path):
    r = subprocess.run([sys.executable, "data/hh/prepare.py", f"--src={tmp_path}", f"--out_dir={tmp_path}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "helpful-base/train.jsonl.gz" in r.stderr


@pytest.mark.skipif(not os.path.exists(GPT2_RANKS), reason="../shared/tokenizers/gpt2.tiktoken absent")
def test_text_prepare_round_trip(tmp_path):
    docs = ["First document.\nIt has two lines, and ünïcödé — “quotes”.\n",
            "Second one,\r\nwith CRLF and a literal <|endoftext|> that stays text.\n\n\n"]
    files = []
    for i, text in enumerate(docs):
        files.append(tmp_path / f"doc{i}.txt")
        files[-1].write_bytes(text.encode("utf-8"))
    out = tmp_path / "out"
    # the encoding given as a path to the ranks file works as well as the name "gpt2"
    stdout = run("data/text/prepare.py", *map(str, files), f"--out_dir={out}", "--val_frac=0.2",
                 f"--encoding={GPT2_RANKS}")
    train = np.fromfile(out / "train.bin", dtype=np.uint16)
    val = np.fromfile(out / "val.bin", dtype=np.uint16)
    enc = get_encoding("gpt2")
    n = len(train) + len(val)
    assert len(val) == round(0.2 * n) > 0 and f"{len(train):,} tokens" in stdout
    ids = np.concatenate([train, val]).tolist()
    assert enc.decode(ids) == docs[0] + EOT + docs[1] + EOT
    assert ids.count(enc.eot_token) == 2   # the literal in the text is not the special token
