"""Data: the DESIGN.md file formats (read and validated), HH-RLHF transcripts, and the batch
builders of each stage. Stage scripts know these formats, never the world that made them.

Formats (JSON lines, UTF-8, `.gz` accepted):
  demonstrations  {"prompt": str, "response": str}
  comparisons     K-wise {"prompt", "responses": [str, ...], "ranking": [best index, ..., worst]},
                  pairwise {"prompt", "chosen", "rejected"}, or HH-RLHF {"chosen", "rejected"}
                  (full transcripts); all three come out as the K-wise form (pairwise: K = 2).
                  K-wise lines may carry "gold": [float, ...], the default world's gold score
                  of each response, which the reward model's evaluation then reports against,
                  and "ended": [bool, ...], whether each sampled response emitted end-of-text
                  (see `drop_unended`)
  prompts         {"prompt": str}
  pretraining     a .bin token file (numpy uint16 or uint32, see `open_tokens`)
"""
import gzip
import json
import os
import sys

import numpy as np
import torch

from nanoinstruct.tokenizer import encode_prompt, encode_response

ASSISTANT = "\n\nAssistant:"


class FormatError(SystemExit):
    """A malformed line stops the run with `path:line: what is wrong` (never silently dropped)."""


# ----------------------------------------------------------------------------- missing inputs

class MissingInput(SystemExit):
    """An input that is not there stops the run with one message (no traceback) that names the
    stage asking for it and the command that makes it (`guide`)."""


# what each script is, for the messages (the name of the running script: sys.argv[0])
STAGES = {"pretrain.py": "stage 0 (pretraining)", "train_sft.py": "stage 1 (SFT)",
          "train_rm.py": "stage 2 (reward model)", "train_ppo.py": "stage 3 (PPO)",
          "collect_comparisons.py": "the comparison collection", "evaluate.py": "the evaluation",
          "sample.py": "sample.py", "prepare.py": "a prepare script"}
# a run directory's usual name -> the stage that writes it, and its command (`guide` adds --out_dir)
RUN_DIRS = {"base": ("stage 0 (pretraining)", "python pretrain.py"),
            "sft": ("stage 1 (SFT)", "python train_sft.py"),
            "rm": ("stage 2 (reward model)", "python train_rm.py"),
            "ppo": ("stage 3 (PPO)", "python train_ppo.py --ptx_coef=0"),
            "ppo_ptx": ("stage 3 (PPO-ptx)", "python train_ppo.py")}
RUN_DEFAULTS = {"base": "out/base", "sft": "out/sft", "rm": "out/rm", "ppo": "out/ppo_ptx", "ppo_ptx": "out/ppo_ptx"}


def _maker(path):
    """(what makes `path`, its command, the run.sh OUT it belongs to) from the path's name, or
    None when its name says nothing."""
    path = os.path.normpath(path)
    if os.path.basename(path) == "ckpt.pt":
        path = os.path.dirname(path) or "."
    name, folder = os.path.basename(path), os.path.dirname(path) or "."
    if name in RUN_DIRS:   # a run directory: OUT/<stage>, as run.sh lays them out
        stage, cmd = RUN_DIRS[name]
        out = "" if path == os.path.normpath(RUN_DEFAULTS[name]) else f" --out_dir={path}"
        return stage, cmd + out, folder
    default_world = folder == os.path.normpath("data/world")   # the stage scripts' defaults, not run.sh's OUT/world
    world, out = ("", None) if default_world else (f" --out_dir={folder}", os.path.dirname(folder))
    if name.startswith("comparisons"):
        return "the comparison collection", "python data/world/collect_comparisons.py" + world, out
    if os.path.basename(folder) == "hh":
        return "data/hh/prepare.py (it downloads HH-RLHF)", "python data/hh/prepare.py", None
    if os.path.basename(folder) == "text":
        return "data/text/prepare.py", "python data/text/prepare.py BOOK.txt", None
    if name in ("tokenizer.tiktoken", "train.bin", "val.bin") or name.startswith(("demos_", "prompts_")):
        return "the default world", "python data/world/prepare.py" + world, out
    return None


def _look_alikes(path):
    """Existing paths that look like the missing `path`: its nearest existing folder's entries
    closest to the first missing name (out/sfft -> out/sft, out_micro/base -> out/base...)."""
    import difflib
    path = os.path.normpath(path)
    if os.path.isdir(path):   # a run's root where one of its stages was meant: out -> out/sft
        return sorted(os.path.join(path, n) for n in os.listdir(path) if os.path.exists(os.path.join(path, n, "ckpt.pt")))
    head, missing = path, []
    while head and not os.path.exists(head):
        head, tail = os.path.split(head)
        missing.insert(0, tail)
    base = head or "."
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    found = []
    for n in difflib.get_close_matches(missing[0], names, n=2, cutoff=0.6):
        candidate = os.path.join(head, n, *missing[1:])
        found.append(candidate if os.path.exists(candidate) else os.path.join(head, n))
    return found


def guide(path, what):
    """The message for a missing input: which stage needs it, which command makes it, and the
    existing paths it may have meant."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    who = STAGES.get(script, script or "this script")
    there = "holds no ckpt.pt" if os.path.isdir(path) else "does not exist"
    msg = f"{who} needs {what} {path}, which {there}."
    maker = _maker(path)
    if maker:
        stage, cmd, out = maker
        msg += f" It is made by {stage}: `{cmd}`"
        if out is not None:   # run.sh's layout: OUT/<stage> and OUT/world (data/world: run.sh's own prepare)
            out = "" if out in ("out", "") else " " + out
            msg += f"; `bash run.sh{out}` runs every stage in order"
        msg += "."
    alike = _look_alikes(path)
    if alike:
        msg += " Did you mean " + " or ".join(alike) + "?"
    return msg


def require(path, what):
    """`path` itself, or MissingInput with `guide`'s message when it is not there."""
    if not os.path.exists(path):
        raise MissingInput(f"error: {guide(path, what)}")
    return path


def split_hh(chosen, rejected):
    """An HH-RLHF pair of transcripts -> (prompt, chosen response, rejected response).
    The prompt is the shared prefix up to and including its last "\\n\\nAssistant:"; each
    response is what follows, without its leading space."""
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    cut = chosen.rfind(ASSISTANT, 0, n)   # the shared prefix ends inside the last assistant turn
    if cut < 0:
        raise ValueError("no shared '\\n\\nAssistant:' turn in the two transcripts")
    cut += len(ASSISTANT)
    return chosen[:cut], chosen[cut:].removeprefix(" "), rejected[cut:].removeprefix(" ")


def _check(obj, kind):
    """Validate one record; return it normalised, or raise ValueError saying what is wrong."""
    def strings(*keys):
        for k in keys:
            if not isinstance(obj.get(k), str):
                raise ValueError(f"{kind}: field {k!r} must be a string")
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    if kind == "prompts":
        strings("prompt")
        return {"prompt": obj["prompt"]}
    if kind == "demonstrations":
        strings("prompt", "response")
        return {"prompt": obj["prompt"], "response": obj["response"]}
    if kind != "comparisons":
        raise ValueError(f"unknown kind {kind!r}")
    if "responses" in obj:
        strings("prompt")
        responses, ranking = obj["responses"], obj.get("ranking")
        if not isinstance(responses, list) or len(responses) < 2 or not all(isinstance(r, str) for r in responses):
            raise ValueError("comparisons: 'responses' must be a list of at least 2 strings")
        if not isinstance(ranking, list) or sorted(ranking) != list(range(len(responses))):
            raise ValueError(f"comparisons: 'ranking' must order all {len(responses)} responses once (no ties)")
        out = {"prompt": obj["prompt"], "responses": responses, "ranking": ranking}
        if "gold" in obj:   # optional: the default world's gold score of each response
            if not isinstance(obj["gold"], list) or len(obj["gold"]) != len(responses) or \
                    not all(isinstance(g, (int, float)) for g in obj["gold"]):
                raise ValueError("comparisons: 'gold' must be a number per response")
            out["gold"] = [float(g) for g in obj["gold"]]
        if "ended" in obj:  # optional: whether each response emitted end-of-text (sampled, not written)
            if not isinstance(obj["ended"], list) or len(obj["ended"]) != len(responses) or \
                    not all(isinstance(e, bool) for e in obj["ended"]):
                raise ValueError("comparisons: 'ended' must be a true/false per response")
            out["ended"] = obj["ended"]
        return out
    strings("chosen", "rejected")
    if "prompt" in obj:
        strings("prompt")
        return {"prompt": obj["prompt"], "responses": [obj["chosen"], obj["rejected"]], "ranking": [0, 1]}
    prompt, chosen, rejected = split_hh(obj["chosen"], obj["rejected"])
    return {"prompt": prompt, "responses": [chosen, rejected], "ranking": [0, 1]}


def read_jsonl(path, kind):
    """All records of a JSON-lines file of `kind` ("demonstrations", "comparisons", "prompts")."""
    require(path, f"a {kind} file")
    rows = []
    with (gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else open(path, encoding="utf-8")) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(_check(json.loads(line), kind))
            except (ValueError, json.JSONDecodeError) as e:
                raise FormatError(f"{path}:{lineno}: {e}")
    return rows


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


# ----------------------------------------------------------------------------- pretraining tokens

def open_tokens(path, block_size=None, vocab_size=None):
    """A token file as a read-only memmap; uint32 when the name says so (`*.u32.bin`), else uint16.
    With block_size / vocab_size it is checked to hold a (block_size + 1)-token window and only ids
    below vocab_size (the first 16M tokens are checked: a token file for another tokenizer shows
    there); a bad file stops the run with `path: what is wrong`."""
    require(path, "a token file")
    dtype = np.uint32 if path.endswith(".u32.bin") else np.uint16
    try:
        tokens = np.memmap(path, dtype=dtype, mode="r")
    except (OSError, ValueError) as e:   # missing, empty, or not a whole number of tokens
        raise FormatError(f"{path}: not a {np.dtype(dtype).name} token file ({e})")
    if block_size is not None and len(tokens) < block_size + 2:
        raise FormatError(f"{path}: {len(tokens)} tokens, too few for one window of {block_size} + 1")
    if vocab_size is not None and len(tokens) and int(tokens[:1 << 24].max()) >= vocab_size:
        raise FormatError(f"{path}: token id {int(tokens[:1 << 24].max())} is outside the model's "
                          f"vocabulary of {vocab_size} (a token file made with another tokenizer?)")
    return tokens


def lm_batch(tokens, batch_size, block_size, generator, device="cpu"):
    """Random windows of a token memmap: x (B, T) and next-token targets y (B, T). The offsets
    come from `generator`, whose state a checkpoint saves so that a resumed run sees the same data."""
    ix = torch.randint(len(tokens) - block_size - 1, (batch_size,), generator=generator).tolist()
    xy = torch.from_numpy(np.stack([tokens[i:i + block_size + 1].astype(np.int64) for i in ix]))
    x, y = xy[:, :-1], xy[:, 1:]
    if str(device).startswith("cuda"):
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return x.to(device), y.to(device)


# ----------------------------------------------------------------------------- prompt + response

def encode_example(enc, prompt, response, block_size):
    """Chat-format tokens of prompt + response (+ EOT) and the prompt's length. When too long,
    tokens are cut from the left of the prompt (the response and its EOT are what is learned or
    scored); a response longer than the whole context keeps its first block_size - 1 tokens.
    Returns (ids, n_prompt, n_cut)."""
    p, r = encode_prompt(enc, prompt), encode_response(enc, response)
    r = r[:block_size - 1]
    cut = max(0, len(p) + len(r) - block_size)
    return p[cut:] + r, len(p) - cut, cut


def count_long_responses(enc, rows, block_size):
    """Responses (of demonstration or comparison rows) that do not fit block_size with their
    end-of-text: encode_example keeps their first block_size - 1 tokens, so they lose their end
    and the end-of-text. Returns (count, index of the first such row or None) for the warning."""
    n, first = 0, None
    for i, row in enumerate(rows):
        responses = row["responses"] if "responses" in row else [row["response"]]
        if any(len(encode_response(enc, r)) > block_size - 1 for r in responses):   # as encode_example cuts
            n, first = n + 1, i if first is None else first
    return n, first


def warn_long_responses(enc, rows, block_size, path):
    """Counted, never silent: the rows of `path` whose responses are cut (count_long_responses)."""
    n, first = count_long_responses(enc, rows, block_size)
    if n:
        print(f"warning: {path}: {n} of {len(rows)} records have a response longer than the context "
              f"({block_size - 1} tokens with its end-of-text; the first is record {first + 1}): they keep "
              f"its first {block_size - 1} tokens and lose the end-of-text")
    return n


def pad_right(seqs, pad_id):
    """List of token lists -> (B, T) long tensor, right-padded, and lengths (B,)."""
    T = max(len(s) for s in seqs)
    out = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out, torch.tensor([len(s) for s in seqs])


def length_grouped_order(lengths, batch_size, group, rng):
    """One epoch's order of the examples: shuffled, then each run of `group` batches sorted by
    length and cut into batches, the batches shuffled (the short last one stays last, where
    the training loops expect it). A batch is padded to its longest example, so random batches
    compute ~1/3 padding on the default world's demonstrations; grouped ones (group 8) ~1/12.
    Every example is still seen once per epoch, in a random batch of similar-length neighbours
    (Hugging Face's group_by_length does the same). group <= 1: a plain shuffle."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group <= 1:
        return order
    batches = []
    for m in range(0, len(order), batch_size * group):
        run = sorted(order[m:m + batch_size * group], key=lambda j: lengths[j])
        batches += [run[k:k + batch_size] for k in range(0, len(run), batch_size)]
    last = [batches.pop()] if len(batches[-1]) < batch_size else []
    rng.shuffle(batches)
    return [j for b in batches + last for j in b]


def sft_batch(examples, pad_id, device="cpu"):
    """examples: list of (ids, n_prompt) from encode_example ->
    x (B, T-1) inputs, y (B, T-1) targets, loss_mask (B, T-1): True where the target is a
    response token (the EOT included, so the model learns to stop); prompt and padding False."""
    ids, lengths = pad_right([e[0] for e in examples], pad_id)
    n_prompt = torch.tensor([e[1] for e in examples])
    t = torch.arange(1, ids.size(1)).unsqueeze(0)                # position of each target
    loss_mask = (t >= n_prompt.unsqueeze(1)) & (t < lengths.unsqueeze(1))
    return ids[:, :-1].to(device), ids[:, 1:].to(device), loss_mask.to(device)


def drop_unended(comparisons):
    """K-wise comparisons without the responses that never emitted end-of-text ("ended": false):
    the reward model is never asked to score one (PPO, best-of-n and evaluation give them a fixed
    penalty instead), and training on it would teach a reading at an end-of-text that was never
    produced. The ranking of the rest is kept; a prompt left with fewer than 2 is dropped.
    Returns (comparisons, n_responses_dropped, n_prompts_dropped)."""
    out, n_resp, n_prompts = [], 0, 0
    for c in comparisons:
        ended = c.get("ended", [True] * len(c["responses"]))
        keep = [i for i in c["ranking"] if ended[i]]
        n_resp += len(c["responses"]) - len(keep)
        if len(keep) < 2:
            n_prompts += 1
            continue
        if len(keep) == len(c["responses"]):
            out.append(c)
            continue
        new = {i: j for j, i in enumerate(sorted(keep))}
        d = {"prompt": c["prompt"], "responses": [c["responses"][i] for i in sorted(keep)],
             "ranking": [new[i] for i in keep]}
        if "gold" in c:
            d["gold"] = [c["gold"][i] for i in sorted(keep)]
        out.append(d)
    return out, n_resp, n_prompts


def comparison_batch(comparisons, enc, block_size, device="cpu"):
    """K-wise comparisons (paper section 3.5): the K responses of each prompt become K rows of
    one batch, so each is forwarded once and all C(K, 2) pairs are formed from the K scores.
    Rows are laid out prompt by prompt, each prompt's responses from best to worst.

    Returns x (sum K, T) right-padded sequences; last (sum K,) index of each row's last real
    token (its EOT: the reward is read there); rows (N, Kmax) long, each prompt's row indices
    best to worst, padded with -1; gold (sum K,) float, the gold score of each row (NaN when the
    file has none); n_cut, the prompt tokens cut to fit block_size."""
    seqs, rows, gold, n_cut = [], [], [], 0
    for c in comparisons:
        rows.append(list(range(len(seqs), len(seqs) + len(c["ranking"]))))
        for idx in c["ranking"]:
            ids, _, cut = encode_example(enc, c["prompt"], c["responses"][idx], block_size)
            seqs.append(ids)
            gold.append(c["gold"][idx] if "gold" in c else float("nan"))
            n_cut += cut
    x, lengths = pad_right(seqs, enc.eot_token)
    kmax = max(len(r) for r in rows)
    rows = torch.tensor([r + [-1] * (kmax - len(r)) for r in rows], dtype=torch.long)
    return x.to(device), (lengths - 1).to(device), rows.to(device), torch.tensor(gold).to(device), n_cut
