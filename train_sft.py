"""Stage 1: supervised fine-tuning (SFT) on demonstrations.

Paper section 3.5, "Supervised fine-tuning (SFT)": fine-tune the base model on labeler
demonstrations with next-token cross-entropy, 16 epochs, cosine learning-rate decay, residual
dropout 0.2 (those values are in configs/paper_sft.py). The loss covers the response tokens only:
prompt and padding are masked out, and the end-of-text token counts as a response token, so the
model learns to stop.

Deviations: the default preset trains 5 epochs at a higher learning rate with less dropout,
which suits a tiny model on the default world's ~4k demonstrations and 2 CPU minutes (3 epochs
left the small model unable to reverse a list: greedy gold 0.82 -> 0.91 with 5). The paper
selects the SFT model by the RM score on a validation set; we keep the last checkpoint.

Paper App. C.3 starts its RL policies (and their KL reference) from SFT models trained with a
pretraining mix, and so does the default here: ptx_frac=0.1 makes 10% of the learned tokens
windows of the pretraining corpus. Without it SFT forgets the corpus: on the default world the
LM loss on the corpus' val split went from 1.10 (base) to 5.96 nats, everywhere in the text, not
only at sentence ends, where it learned to predict end-of-text (0.89 of its mass after a full
stop, against 0.09 for the base): every SFT target is a short response that ends there. With the
mix it stays at 1.23 (experiments/sft_forgetting.py; README). --ptx_frac=0 turns it off.

  CPU (default world, ~2 min):  python train_sft.py
  GPT-2 on HH-RLHF (GPU):       python train_sft.py --config=configs/gpt2_hh_sft.py
  N GPUs (or CPU processes):    torchrun --nproc_per_node=N train_sft.py   # batch_size stays the global batch
"""
import os
import random
import time

import torch

from nanoinstruct import common, data, ddp
from nanoinstruct.data import encode_example, lm_batch, open_tokens, read_jsonl, sft_batch
from nanoinstruct.model import generate
from nanoinstruct.rlhf import ptx_loss, sft_loss
from nanoinstruct.tokenizer import decode_response, encode_prompt

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/sft",
    init_from="out/base",     # the base model: a checkpoint dir, gpt2*, a Hugging Face GPT-2 dir; or resume
    tokenizer="",             # "" = the one the base checkpoint carries; else gpt2 or a .tiktoken file
    train_file="data/world/demos_train.jsonl",   # demonstrations, {"prompt", "response"} per line
    val_file="data/world/demos_val.jsonl",       # held-out demonstrations, for val_loss
    device="auto", dtype="auto", compile=False, seed=1337,
    epochs=5,
    batch_size=32,            # demonstrations per step
    lr=1e-3, min_lr_frac=0.1, warmup_steps=20, weight_decay=0.1,
    beta2=0.99, grad_clip=1.0,
    dropout=0.0,              # paper: residual dropout 0.2; 0.1 here ended at val_loss 0.382, not 0.363, and its
                              # SFT's samples gave the RM 0.687 (0 gave 0.684) but PPO-ptx +0.132, not +0.168 (README)
    block_size=0,             # 0 = the model's context; examples longer are cut from the prompt's left
    group_batches=1,          # >1: batches of similar length from runs of this many (data.length_grouped_order);
                              # 8 ended at val_loss 0.415, not 0.382: its batches are nearly one family each
    ptx_frac=0.1,             # share of all learned tokens drawn from the pretraining corpus (paper App. C.3; 0 = off)
    ptx_bin="data/world/train.bin",
    eval_interval=100, log_interval=10,
    n_samples=3,              # at each evaluation, show sampled responses to this many validation prompts
    max_new_tokens=48,        # their length at most
    ckpt_interval=200,        # a checkpoint every N steps, for --init_from=resume
    stop_step=-1,             # stop (with a checkpoint) after this step, as if preempted; -1: never
)
cfg = common.get_config(defaults)
resume = cfg["init_from"] == "resume"
if resume:   # the saved run's settings, with what the command line changes on top
    resume_ckpt, cfg = common.resume_config(cfg, defaults)
common.check_settings(cfg, positive=("epochs", "batch_size", "lr", "eval_interval", "log_interval", "group_batches"),
                      non_negative=("warmup_steps", "weight_decay", "grad_clip", "min_lr_frac", "block_size",
                                    "n_samples", "max_new_tokens", "ckpt_interval"), fractions=("ptx_frac", "dropout"))

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rank, world = ddp.init_distributed(device)   # (0, 1) without torchrun
rng = random.Random(cfg["seed"])   # shuffles the demonstrations each epoch

# ----------------------------------------------------------------------------- models
model, base_ckpt = common.load_model(cfg["out_dir"] if resume else cfg["init_from"], device,
                                     partial_ok=resume, dropout=cfg["dropout"])
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], base_ckpt)
cfg["tokenizer"] = cfg["tokenizer"] or tok_spec["name"]
common.print_config(cfg)
block = cfg["block_size"] or model.config.block_size
if block > model.config.block_size:
    common.die(f"--block_size={block}: more than the model's context of {model.config.block_size}")

# ----------------------------------------------------------------------------- data
def encode_all(path):
    rows = read_jsonl(path, "demonstrations")
    if not rows:
        common.die(f"{path}: no demonstrations in the file")
    data.warn_long_responses(enc, rows, block, path)
    examples = [encode_example(enc, r["prompt"], r["response"], block) for r in rows]
    n_cut = sum(e[2] for e in examples)
    print(f"{path}: {len(rows)} demonstrations, {sum(len(e[0]) for e in examples):,} tokens"
          + (f", {n_cut} prompt tokens cut to fit {block}" if n_cut else ""))
    return rows, [e[:2] for e in examples]


train_rows, train_ex = encode_all(cfg["train_file"])
val_rows, val_ex = encode_all(cfg["val_file"])
steps_per_epoch = (len(train_ex) + cfg["batch_size"] - 1) // cfg["batch_size"]
max_steps = cfg["epochs"] * steps_per_epoch
if len(train_ex) - (steps_per_epoch - 1) * cfg["batch_size"] < world:
    common.die(f"--batch_size={cfg['batch_size']}: the last batch of an epoch would leave one of the {world} "
               f"processes without demonstrations")

# the pretraining mix of paper App. C.3 (module docstring)
ptx_ratio = cfg["ptx_frac"] / (1 - cfg["ptx_frac"])    # pretraining tokens per demonstration token
ptx_tokens = open_tokens(cfg["ptx_bin"], block, model.config.vocab_size) if cfg["ptx_frac"] > 0 else None
ptx_gen = torch.Generator().manual_seed(cfg["seed"] + 1)
ptx_owed, ptx_seen, resp_seen = 0.0, 0, 0

optimizer = common.make_optimizer(model, cfg["lr"], cfg["weight_decay"], (0.9, cfg["beta2"]), device)
start, order = 0, None
if resume:   # continue exactly: weights, optimizer moments, step, this epoch's order, every RNG
    optimizer.load_state_dict(resume_ckpt["optimizer"])
    common.restore_rng(resume_ckpt["rng"], shuffle=rng, ptx=ptx_gen)
    start, order = resume_ckpt["step"] + 1, resume_ckpt["order"]
    ptx_owed, ptx_seen, resp_seen = resume_ckpt["ptx_counts"]
train_model = common.maybe_compile(model, cfg)


@torch.no_grad()
def evaluate():
    """Masked (response-only) loss over all validation demonstrations, token-weighted."""
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(val_ex), cfg["batch_size"]):
        x, y, mask = sft_batch(val_ex[i:i + cfg["batch_size"]], enc.eot_token, device)
        with ctx:
            total += sft_loss(model.lm_logits(model(x)), y, mask).item() * mask.sum().item()
        n += mask.sum().item()
    model.train()
    return total / n


def show_samples():
    """A few sampled responses (temperature 1) to fixed validation prompts."""
    rows = val_rows[:cfg["n_samples"]]
    prompts = [encode_prompt(enc, r["prompt"])[-(block - cfg["max_new_tokens"]):] for r in rows]
    with ctx:
        tokens, _, _, _ = generate(model, prompts, cfg["max_new_tokens"], enc.eot_token,
                                   generator=torch.Generator(device).manual_seed(0))
    for r, t in zip(rows, tokens[:, max(len(p) for p in prompts):].tolist()):
        text, ended = decode_response(enc, t)
        print(f"  prompt: {r['prompt'][-200:]!r}\n  sample: {text!r}{'' if ended else ' [no end-of-text]'}")


def save(step, finished):
    common.save_run(cfg["out_dir"], cfg, model, step, optimizer, tokenizer=tok_spec, finished=finished, order=order,
                    ptx_counts=[ptx_owed, ptx_seen, resp_seen], rng=common.rng_state(shuffle=rng, ptx=ptx_gen))


# ----------------------------------------------------------------------------- loop
common.lock_out_dir(cfg["out_dir"])
log = common.MetricsLog(cfg["out_dir"], max_steps, resume_step=start - 1 if resume else None)
print(f"{cfg['epochs']} epochs x {steps_per_epoch} steps = {max_steps} steps")
t0, tokens_since_log, step = time.time(), 0, start - 1
model.train()
for step in range(start, max_steps):
    epoch, i = divmod(step, steps_per_epoch)
    if i == 0:   # a new epoch: a new order of the demonstrations
        order = data.length_grouped_order([len(e[0]) for e in train_ex], cfg["batch_size"], cfg["group_batches"], rng)
    lr = common.cosine_lr(step, max_steps, cfg["lr"], cfg["warmup_steps"], cfg["min_lr_frac"])
    common.set_lr(optimizer, lr)
    batch = order[i * cfg["batch_size"]:(i + 1) * cfg["batch_size"]]
    x, y, mask = sft_batch([train_ex[j] for j in ddp.shard(batch, rank, world)], enc.eot_token, device)
    # the pretraining mix: whole windows of the corpus join the batch whenever they are owed,
    # so that ptx_frac of all learned tokens are pretraining text; one token-weighted mean
    # (torchrun: this process's demonstrations and windows, each weighted by the global count)
    n_resp = mask.sum().item() if ptx_tokens is not None or world > 1 else 0   # (a GPU sync)
    n_resp_all = ddp.all_sum(n_resp, device=device)
    ptx_owed += ptx_ratio * n_resp_all
    n_win, ptx_owed = int(ptx_owed // block), ptx_owed % block
    with ctx:
        h = train_model(x)                                         # (B, T, C)
        # logits only where the loss needs them, the response tokens: (N, V) for N of B*T
        loss = sft_loss(train_model.lm_logits(h[mask]), y[mask], mask[mask])
        if world > 1:
            loss = loss * n_resp / (n_resp_all + n_win * block)
        if n_win:
            px, py = lm_batch(ptx_tokens, n_win, block, ptx_gen, device)
            px, py = ddp.shard(px, rank, world), ddp.shard(py, rank, world)
            ptx = ptx_loss(train_model.lm_logits(train_model(px)), py) if len(py) else 0.0
            if world == 1:
                loss = (n_resp * loss + py.numel() * ptx) / (n_resp + py.numel())
            else:
                loss = loss + py.numel() * ptx / (n_resp_all + n_win * block)
            ptx_seen += n_win * block
    resp_seen += n_resp_all
    loss.backward()
    ddp.sum_grads(model)   # torchrun: the gradient of the whole global batch on every process
    if world > 1:
        loss = torch.tensor(ddp.all_sum(loss.item(), device=device))   # the global batch's loss
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    common.check_finite(step, loss=loss, grad_norm=grad_norm)   # the divergence guard
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    tokens_since_log += x.numel()

    last = step == max_steps - 1
    metrics = {"val_loss": evaluate()} if step % cfg["eval_interval"] == 0 or last else {}
    common.check_finite(step, **metrics)
    if step % cfg["log_interval"] == 0 or metrics:
        log.log(step, tokens=tokens_since_log, epoch=epoch, loss=loss.item(), lr=lr, grad_norm=grad_norm.item(), **metrics)
        tokens_since_log = 0
    if metrics and cfg["n_samples"]:
        show_samples()
    common.mid_run_checkpoint(step, last, cfg, lambda: save(step, finished=False))

if ptx_tokens is not None:
    print(f"pretraining mix: {ptx_seen} corpus tokens and {resp_seen} response tokens learned "
          f"({ptx_seen / (ptx_seen + resp_seen):.3f} corpus)")
# ----------------------------------------------------------------------------- save
if step == max_steps - 1:
    save(step, finished=True)
print(common.summary_line("sft", time.time() - t0, os.path.join(cfg["out_dir"], "ckpt.pt"),
                          steps=max_steps, loss=log.last.get("loss"), val_loss=log.last.get("val_loss")))
