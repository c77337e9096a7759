"""Anthropic's HH-RLHF (Bai et al. 2022) -> nanoinstruct's data files for the three stages.

    python data/hh/prepare.py                     # downloads into data/hh (once), then converts
    python data/hh/prepare.py --src=DIR           # reads DIR/{subset}/{split}.jsonl.gz (or .jsonl)
    python data/hh/prepare.py --src=URL           # downloads from another URL base (a mirror, file://)

Reads the helpful-base and harmless-base subsets. Each HH line is a pair of full transcripts
{"chosen", "rejected"} that share every turn but the last Assistant response. It writes, in the
DESIGN.md formats (train split -> *_train / prompts_ppo, test split -> *_val):
  sft_train.jsonl, sft_val.jsonl                 {"prompt", "response"}: the chosen response
  comparisons_train.jsonl, comparisons_val.jsonl {"prompt", "chosen", "rejected"}
  prompts_ppo.jsonl                              {"prompt"}: distinct train prompts
A prompt is HH's whole transcript up to and including its last "\n\nAssistant:": it is already
in our chat format (HH's convention is ours), and nanoinstruct.tokenizer.encode_prompt uses such a
transcript as it is, multi-turn dialogues included.

Deviations from InstructGPT: the paper draws its SFT, RM and PPO prompts from disjoint sets and
writes fresh demonstrations; HH has no demonstrations, so SFT imitates the chosen (preferred)
response, and all three stages share HH's train dialogues. Pairs whose two responses are equal,
whose transcripts do not split into prompt + response, or whose prompt does not start with
"\n\nHuman: " are dropped, and counted.
"""
import gzip
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))   # repo root
from nanoinstruct.common import get_config
from nanoinstruct.data import split_hh, write_jsonl
from nanoinstruct.gpt2 import fetch

SUBSETS = ("helpful-base", "harmless-base")
HH_URL = "https://huggingface.co/datasets/Anthropic/hh-rlhf/resolve/main"
HUMAN = "\n\nHuman: "


def locate(src, out_dir, subset, split):
    """Path of one HH file: under the local directory `src`, else downloaded from the URL base
    `src` into out_dir/{subset}/{split}.jsonl.gz (once)."""
    if "://" not in src:
        for ext in (".jsonl.gz", ".jsonl"):
            path = os.path.join(src, subset, split + ext)
            if os.path.exists(path):
                return path
        sys.exit(f"{src}: no {subset}/{split}.jsonl.gz or .jsonl")
    path = os.path.join(out_dir, subset, split + ".jsonl.gz")
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fetch(f"{src}/{subset}/{split}.jsonl.gz", path)
    return path


def read_pairs(path):
    """(prompt, chosen, rejected) triples of one HH file, and the number of pairs dropped."""
    triples, dropped = [], 0
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                ex = json.loads(line)
                chosen, rejected = ex["chosen"], ex["rejected"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                sys.exit(f"{path}:{lineno}: not an HH pair {{'chosen', 'rejected'}} ({e!r})")
            try:
                prompt, c, r = split_hh(chosen, rejected)
            except ValueError:
                prompt = None
            # equal responses: no preference to learn from; no leading Human turn: not a dialogue
            if prompt is None or c == r or not prompt.startswith(HUMAN):
                dropped += 1
                continue
            triples.append((prompt, c, r))
    return triples, dropped


def write(path, rows):
    write_jsonl(path, rows)
    print(f"{path}: {len(rows)} lines")


def main(argv=None):
    defaults = dict(
        out_dir=os.path.dirname(os.path.abspath(__file__)),   # where the files go (and downloads are kept)
        src=HH_URL,               # HH-RLHF's URL base, a mirror (file:// too), or a local directory
    )
    config = get_config(defaults, argv)
    out_dir, src = config["out_dir"], config["src"].rstrip("/")
    os.makedirs(out_dir, exist_ok=True)
    data = {"train": [], "test": []}
    for split in data:
        for subset in SUBSETS:
            triples, dropped = read_pairs(locate(src, out_dir, subset, split))
            print(f"{subset}/{split}: {len(triples)} pairs, {dropped} dropped "
                  f"(equal responses or not a Human/Assistant dialogue)")
            data[split] += triples
    for split, suffix in (("train", "train"), ("test", "val")):
        write(os.path.join(out_dir, f"sft_{suffix}.jsonl"),
                    [{"prompt": p, "response": c} for p, c, _ in data[split]])
        write(os.path.join(out_dir, f"comparisons_{suffix}.jsonl"),
                    [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in data[split]])
    prompts = list(dict.fromkeys(p for p, _, _ in data["train"]))   # distinct, in file order
    write(os.path.join(out_dir, "prompts_ppo.jsonl"), [{"prompt": p} for p in prompts])


if __name__ == "__main__":
    main()
