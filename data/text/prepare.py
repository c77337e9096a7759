"""Any UTF-8 text -> pretraining token files, for stage 0 or PPO's ptx term.

    python data/text/prepare.py FILE... [--out_dir=data/text] [--val_frac=0.005] [--encoding=gpt2]

Each FILE is one document: its tokens, then an end-of-text token, as GPT-2's own corpus was laid
out. The concatenated stream is cut once: the last `val_frac` of the tokens become val.bin, the
rest train.bin; both are raw numpy uint16 arrays, readable with np.memmap(path, dtype=np.uint16,
mode="r") as in nanoGPT (a vocabulary over 65536 tokens writes uint32 train.u32.bin / val.u32.bin). `--encoding` is "gpt2" (GPT-2's
BPE, offline from ../shared/tokenizers when present) or a path to a .tiktoken ranks file.
A literal "<|endoftext|>" inside the text is encoded as plain text, never as the special token.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))   # repo root
from nanoinstruct.common import get_config
from nanoinstruct.tokenizer import get_encoding

CHUNK_CHARS = 1 << 22   # encode big files in ~4M-character pieces, so memory stays bounded


def read_chunks(path):
    """A file's text in pieces cut at line ends. A cut can only change how the whitespace at
    the cut is split into tokens; the decoded text is always the file's exact text."""
    with open(path, encoding="utf-8", newline="") as f:   # newline="": keep \r\n as written
        piece, size = [], 0
        for line in f:
            piece.append(line)
            size += len(line)
            if size >= CHUNK_CHARS:
                yield "".join(piece)
                piece, size = [], 0
        if piece:
            yield "".join(piece)


def encode_file(enc, path, dtype):
    """Token ids of one document (file) followed by end-of-text, as one numpy array."""
    parts = [np.array(enc.encode_ordinary(text), dtype=dtype) for text in read_chunks(path)]
    return np.concatenate(parts + [np.array([enc.eot_token], dtype=dtype)])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    files = [a for a in argv if not a.startswith("--")]
    defaults = dict(
        out_dir=os.path.dirname(os.path.abspath(__file__)),   # where train.bin and val.bin go
        val_frac=0.005,           # the share of the tokens (the end of the text) kept for val.bin
        encoding="gpt2",          # gpt2, or a .tiktoken file (the world's BPE)
    )
    config = get_config(defaults, [a for a in argv if a.startswith("--")])
    if not files:
        sys.exit("usage: python data/text/prepare.py FILE... [--out_dir=DIR] [--val_frac=F] [--encoding=gpt2|PATH]")
    enc = get_encoding(config["encoding"])
    dtype, ext = (np.uint16, ".bin") if enc.n_vocab <= 1 << 16 else (np.uint32, ".u32.bin")   # data.open_tokens
    docs = []
    for path in files:
        docs.append(encode_file(enc, path, dtype))
        print(f"{path}: {len(docs[-1]):,} tokens")
    ids = np.concatenate(docs)
    n_val = int(round(len(ids) * config["val_frac"]))
    os.makedirs(config["out_dir"], exist_ok=True)
    for name, part in (("train", ids[: len(ids) - n_val]), ("val", ids[len(ids) - n_val:])):
        path = os.path.join(config["out_dir"], name + ext)
        part.tofile(path)
        print(f"{path}: {len(part):,} tokens ({np.dtype(dtype).name}, vocab {enc.n_vocab})")


if __name__ == "__main__":
    main()
