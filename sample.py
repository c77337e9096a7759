"""Sample from, or chat with, any checkpoint: ours (base, SFT, PPO, ...), GPT-2, or a Hugging Face
GPT-2 directory.

Prompts are rendered in the chat format ("\\n\\nHuman: {prompt}\\n\\nAssistant:"), unless --raw=True
(plain text continuation, for base models and GPT-2). A response ends at the end-of-text token or
after --max_new_tokens (default: half the model's context). The tokenizer is the one the
checkpoint carries (so a checkpoint copied anywhere samples), or GPT-2's for GPT-2 weights;
--tokenizer overrides it.

  python sample.py --ckpt=out/sft --prompt="Name three colours."
  python sample.py --ckpt=out/sft --prompts_file=data/world/prompts_eval.jsonl --num_samples=3
  python sample.py --ckpt=out/sft --chat=True                # type a line, Enter; Ctrl-D ends
  python sample.py --ckpt=gpt2 --raw=True --prompt="The meaning of life is" --top_p=0.9
  python sample.py --ckpt=out/sft --temperature=0 --prompt="..."   # greedy

In chat mode the whole dialogue so far is the prompt (HH-RLHF's transcript format); when it no
longer fits the context, its oldest tokens are cropped from the left.
"""
import sys

import torch

from nanoinstruct import common
from nanoinstruct.data import read_jsonl
from nanoinstruct.model import generate
from nanoinstruct.tokenizer import decode_response, encode_prompt, render_prompt

# ----------------------------------------------------------------------------- config
defaults = dict(
    ckpt="out/sft",           # our checkpoint (dir or ckpt.pt), gpt2*, or a Hugging Face GPT-2 dir
    tokenizer="",             # "" = the one the checkpoint carries; else gpt2 or a .tiktoken file
    prompt="",                # one prompt
    prompts_file="",          # or a prompts JSONL file ({"prompt": str} per line)
    chat=False,               # or a dialogue: lines from stdin
    raw=False,                # True: prompts as plain text, no chat format (base models, GPT-2)
    num_samples=1,            # samples per prompt (--prompt / --prompts_file)
    max_new_tokens=0,         # most tokens per response; 0 = half the model's context (the rest holds the prompt)
    temperature=0.8,          # 0: greedy
    top_k=0, top_p=1.0,       # top_k 0 and top_p 1: no filtering
    seed=1337, device="auto", dtype="auto",
)
cfg = common.get_config(defaults)
if not (cfg["prompt"] or cfg["prompts_file"] or cfg["chat"]):
    common.die("nothing to do: give --prompt=TEXT, --prompts_file=FILE or --chat=True")

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
generator = torch.Generator(device).manual_seed(cfg["seed"])

# ----------------------------------------------------------------------------- model
model, ckpt = common.load_model(cfg["ckpt"], device, scalar_head=False)   # an RM / value ckpt samples too
model.eval()
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], ckpt)
block = model.config.block_size
cfg["max_new_tokens"] = cfg["max_new_tokens"] or block // 2
if cfg["max_new_tokens"] >= block:
    common.die(f"--max_new_tokens={cfg['max_new_tokens']} leaves no room for a prompt in the context of {block}")
keep = block - cfg["max_new_tokens"]      # prompt tokens that fit: the rest is cut from the left
print(f"{cfg['ckpt']}: tokenizer {tok_spec['name']}, context {block}, up to {cfg['max_new_tokens']} new tokens, {device} {dtype}")


def respond(prompt_ids, n):
    """n sampled responses to one prompt (token list) -> list of (text, ended)."""
    prompt_ids = prompt_ids[-keep:]
    with ctx:
        tokens, _, _, _ = generate(model, [prompt_ids] * n, cfg["max_new_tokens"], enc.eot_token,
                                   temperature=cfg["temperature"], top_k=cfg["top_k"] or None,
                                   top_p=cfg["top_p"], generator=generator)
    out = []
    for row in tokens[:, len(prompt_ids):].tolist():
        text, ended = decode_response(enc, row)
        if not cfg["raw"] and "\n\nHuman:" in text:   # the model began the user's next turn: stop there
            text, ended = text[:text.index("\n\nHuman:")], True
        out.append((text, ended))
    return out


def encode(prompt):
    return enc.encode_ordinary(prompt) if cfg["raw"] else encode_prompt(enc, prompt)


# ----------------------------------------------------------------------------- sample
if cfg["chat"]:
    transcript = ""
    print("chat: type a message and press Enter; Ctrl-D ends", flush=True)
    while True:
        try:
            line = input("Human: ").strip()
        except EOFError:
            print()
            break
        if not sys.stdin.isatty():   # piped input is not echoed: show what was said
            print(line)
        if not line:
            continue
        transcript += render_prompt(line)   # "\n\nHuman: ...\n\nAssistant:", kept as is by encode_prompt
        text, ended = respond(encode_prompt(enc, transcript), 1)[0]
        print(f"Assistant: {text}" + ("" if ended else " [...]"), flush=True)
        transcript += " " + text
else:
    prompts = [cfg["prompt"]] if cfg["prompt"] else []
    if cfg["prompts_file"]:
        prompts += [r["prompt"] for r in read_jsonl(cfg["prompts_file"], "prompts")]
    for prompt in prompts:
        print(f"\n=== prompt: {prompt!r}")
        for i, (text, ended) in enumerate(respond(encode(prompt), cfg["num_samples"])):
            print(f"--- sample {i + 1}{'' if ended else ' (no end-of-text)'}:\n{text}", flush=True)
