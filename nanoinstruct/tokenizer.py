"""Tokenizers on tiktoken, and the chat format.

Two encodings serve nanoinstruct:
- GPT-2's BPE (50257 tokens), for GPT-2 weights and real text;
- the default world's own small BPE (<= 4096 tokens), trained here by `train_bpe` on the world's
  corpus and saved in tiktoken's `.tiktoken` format (one `base64(token) rank` pair per line).
Both use GPT-2's pre-tokenisation regex and end with the special token <|endoftext|> (EOT), which
ends every response and separates pretraining documents.

Chat format (DESIGN.md, the Anthropic HH-RLHF convention, so GPT-2 and HH data need no change):
    prompt   -> "\n\nHuman: {prompt}\n\nAssistant:"
    response -> " {response}" + EOT
"""
import base64
import heapq
import os
from collections import Counter, defaultdict

import regex
import tiktoken

EOT = "<|endoftext|>"
# GPT-2's pre-tokenisation pattern (from OpenAI's gpt-2 encoder.py): BPE never merges across these pieces.
GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# the GPT-2 ranks shipped beside the project (../shared/tokenizers), for offline use
_SHARED_GPT2 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "tokenizers", "gpt2.tiktoken")


def load_ranks(path):
    """Read a .tiktoken ranks file. We parse it ourselves: tiktoken.load caches files by *path*
    in a temp dir, so a world rebuilt with another seed at the same path would load stale ranks."""
    with open(path, "rb") as f:
        return _parse_ranks(f.read())


def _parse_ranks(data):
    """The ranks of a .tiktoken file's bytes: one `base64(token) rank` pair per line."""
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def save_ranks(ranks, path):
    """Write ranks in tiktoken's .tiktoken format, sorted by rank (atomic: temp file, then rename)."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
            f.write(base64.b64encode(token) + b" " + str(rank).encode() + b"\n")
    os.replace(tmp, path)


def encoding_from_ranks(ranks, name="nanoinstruct"):
    """A tiktoken.Encoding over `ranks` with EOT as the one special token, id len(ranks)."""
    return tiktoken.Encoding(name=name, pat_str=GPT2_PAT, mergeable_ranks=ranks, special_tokens={EOT: len(ranks)})


def get_encoding(name_or_path="gpt2"):
    """"gpt2" -> GPT-2's encoding (offline from ../shared/tokenizers/gpt2.tiktoken when present,
    else tiktoken's download); a path -> the encoding saved there by `save_ranks`."""
    if name_or_path == "gpt2":
        if os.path.exists(_SHARED_GPT2):
            return encoding_from_ranks(load_ranks(_SHARED_GPT2), name="gpt2")
        return tiktoken.get_encoding("gpt2")
    return encoding_from_ranks(load_ranks(name_or_path), name=os.path.basename(name_or_path))


def tokenizer_spec(name_or_path="gpt2"):
    """What a checkpoint carries to rebuild its encoding anywhere: {"name": "gpt2"} (tiktoken's
    own, or the shared offline copy), or a BPE's path (for the record) with its ranks file's text
    itself (the world's BPE: ~20 KB), so a checkpoint copied away from that path still decodes."""
    if name_or_path == "gpt2":
        return {"name": "gpt2"}
    with open(name_or_path, encoding="ascii") as f:
        return {"name": name_or_path, "ranks": f.read()}


def encoding_from_spec(spec):
    """The encoding a `tokenizer_spec` describes."""
    if "ranks" not in spec:
        return get_encoding(spec["name"])
    return encoding_from_ranks(_parse_ranks(spec["ranks"].encode("ascii")), name=os.path.basename(spec["name"]))


def train_bpe(text, vocab_size):
    """Byte-level BPE (Sennrich et al. 2016, GPT-2's byte variant) on `text`.

    Starts from the 256 single bytes and repeatedly merges the most frequent adjacent pair inside
    pre-tokenised words until the vocabulary (EOT included) has `vocab_size` entries or no pair
    is left. Returns {token bytes: rank}; the rank is the merge order, which is exactly what
    tiktoken's encoder needs to replay the merges. Words are counted once with their frequency
    and pair counts are updated incrementally, so training on ~1 MB takes seconds.
    Ties between equally frequent pairs break on the smaller byte pair: deterministic.
    """
    assert vocab_size >= 257, "need the 256 bytes plus EOT"
    word_freq = Counter(regex.findall(GPT2_PAT, text))
    words = [[bytes([b]) for b in w.encode("utf-8")] for w in word_freq]   # sequences of tokens
    freqs = list(word_freq.values())
    ranks = {bytes([i]): i for i in range(256)}
    pair_count = Counter()
    pair_words = defaultdict(set)   # pair -> indices of words that contain it (maybe stale)
    for i, w in enumerate(words):
        for pair in zip(w, w[1:]):
            pair_count[pair] += freqs[i]
            pair_words[pair].add(i)
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)
    while len(ranks) < vocab_size - 1 and heap:
        neg, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg or -neg <= 0:
            continue   # stale heap entry: its count changed since it was pushed
        merged = pair[0] + pair[1]
        if merged not in ranks:
            ranks[merged] = len(ranks)
        touched = Counter()
        for i in pair_words.pop(pair):
            w, new = words[i], []
            j = 0
            while j < len(w):
                if j + 1 < len(w) and (w[j], w[j + 1]) == pair:
                    new.append(merged)
                    j += 2
                else:
                    new.append(w[j])
                    j += 1
            if len(new) == len(w):
                continue
            for p in zip(w, w[1:]):
                touched[p] -= freqs[i]
            for p in zip(new, new[1:]):
                touched[p] += freqs[i]
                pair_words[p].add(i)
            words[i] = new
        for p, delta in touched.items():
            if delta:
                pair_count[p] += delta
                if pair_count[p] > 0:
                    heapq.heappush(heap, (-pair_count[p], p))
        pair_count.pop(pair, None)
    return ranks


def render_prompt(prompt):
    return f"\n\nHuman: {prompt}\n\nAssistant:"


def is_rendered(prompt):
    """HH-RLHF prompts are whole transcripts, already in the chat format."""
    return prompt.startswith("\n\nHuman:") and prompt.endswith("\n\nAssistant:")


def encode_prompt(enc, prompt):
    """Prompt tokens in the chat format (a transcript already in it is kept as it is)."""
    return enc.encode_ordinary(prompt if is_rendered(prompt) else render_prompt(prompt))


def encode_response(enc, response, eot=True):
    """" {response}" followed by EOT: the EOT is part of the response, so the model learns to stop."""
    return enc.encode_ordinary(" " + response) + ([enc.eot_token] if eot else [])


def decode_response(enc, ids):
    """Text of a response up to (not including) the first EOT, without the leading space.
    Returns (text, ended) where ended says whether an EOT was found."""
    ids = list(ids)
    ended = enc.eot_token in ids
    if ended:
        ids = ids[: ids.index(enc.eot_token)]
    text = enc.decode(ids, errors="replace")
    return (text[1:] if text.startswith(" ") else text), ended
