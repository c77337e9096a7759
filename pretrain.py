"""Stage 0: the base language model, trained by next-token prediction on a token corpus.

InstructGPT starts from GPT-3 (paper section 3.5, "pretrained GPT-3 language models"). Here the
base model is pretrained on the default world's corpus (or any text made by data/text/prepare.py),
or taken from GPT-2 weights (then this stage is skipped: train_sft.py --init_from=gpt2).

Deviations: none in substance; a tiny model, a tiny corpus, minutes instead of months.

  CPU (default world, ~3 min):  python data/world/prepare.py && python pretrain.py
  GPU:                          python pretrain.py --device=cuda --compile=True --batch_size=64
  resume a stopped run:         python pretrain.py --init_from=resume
  N GPUs (or CPU processes):    torchrun --nproc_per_node=N pretrain.py --grad_accum=N   # same global batch
"""
import os
import time

import torch

from nanoinstruct import common, ddp
from nanoinstruct.data import lm_batch, open_tokens
from nanoinstruct.rlhf import ptx_loss

# ----------------------------------------------------------------------------- config
defaults = dict(
    out_dir="out/base",
    train_bin="data/world/train.bin",            # training tokens (a .bin file: data/world/prepare.py, data/text/prepare.py)
    val_bin="data/world/val.bin",                # validation tokens, for val_loss
    tokenizer="data/world/tokenizer.tiktoken",   # the corpus's encoding (or gpt2); carried in the checkpoint for the later stages
    init_from="scratch",      # scratch | resume | a checkpoint dir | gpt2* | a Hugging Face GPT-2 dir
    device="auto", dtype="auto", compile=False, seed=1337,
    # model (when init_from=scratch): GPT-2's architecture, this small
    n_layer=4,                # transformer blocks
    n_head=4,                 # attention heads per block
    n_embd=256,               # width (the residual stream)
    block_size=128,           # context length in tokens
    dropout=0.0,
    # optimisation (the default: ~1.2M tokens, one epoch of the world's corpus, in 600 steps of
    # 16 windows: at a fixed token budget, twice the steps of batch 32 doubled the facts the
    # base model recalls, 58 -> 111 of 178; bf16 autocast on CPU paid for the rest)
    batch_size=16,            # windows of block_size tokens per micro-step
    grad_accum=1,             # micro-steps per optimisation step (the same update as one batch this many times larger)
    max_steps=600,            # optimisation steps
    lr=2e-3, min_lr_frac=0.1, warmup_steps=20,
    weight_decay=0.1, beta2=0.99, grad_clip=1.0,
    # bookkeeping
    eval_interval=100,
    eval_iters=4,             # batches of each split per evaluation (fixed windows: comparable across steps)
    log_interval=20,
    ckpt_interval=200,        # write the checkpoint every this many steps (and at the end)
    stop_step=-1,             # stop (with a checkpoint) after this step, as if preempted; -1: never
)
cfg = common.get_config(defaults)
resume = cfg["init_from"] == "resume"
if resume:   # the saved run's settings, with what the command line changes on top
    ckpt, cfg = common.resume_config(cfg, defaults)
common.check_settings(cfg, positive=("batch_size", "grad_accum", "max_steps", "lr", "eval_interval", "eval_iters",
                                     "log_interval", "ckpt_interval", "n_layer", "n_head", "n_embd", "block_size"),
                      non_negative=("warmup_steps", "weight_decay", "grad_clip", "min_lr_frac"), fractions=("dropout",))
if cfg["n_embd"] % cfg["n_head"]:
    common.die(f"--n_embd={cfg['n_embd']} must be a multiple of --n_head={cfg['n_head']}")

# ----------------------------------------------------------------------------- setup
device, ctx, dtype = common.setup(cfg)
rank, world = ddp.init_distributed(device)   # (0, 1) without torchrun
if cfg["grad_accum"] % world:
    common.die(f"--grad_accum={cfg['grad_accum']}: must be a multiple of the {world} processes "
               f"(each takes every {world}th micro-step of the global batch)")
common.print_config(cfg)   # (after init_distributed: ranks other than 0 print nothing)
data_gen = torch.Generator().manual_seed(cfg["seed"])   # the order of training windows

# ----------------------------------------------------------------------------- model
enc, tok_spec = common.load_tokenizer(cfg["tokenizer"], None)   # its ranks go into the checkpoint
if resume:
    model, ckpt = common.load_model(cfg["out_dir"], device, partial_ok=True)
elif cfg["init_from"] == "scratch":
    arch = {k: cfg[k] for k in ("n_layer", "n_head", "n_embd", "block_size", "dropout")}
    model, _ = common.load_model("scratch", device, vocab_size=enc.n_vocab, **arch)
else:   # continue pretraining a checkpoint or GPT-2 on this corpus
    model, _ = common.load_model(cfg["init_from"], device, dropout=cfg["dropout"])
optimizer = common.make_optimizer(model, cfg["lr"], cfg["weight_decay"], (0.9, cfg["beta2"]), device)
start = 0
if resume:   # continue exactly: weights, optimizer moments, step, dropout RNG and data order
    optimizer.load_state_dict(ckpt["optimizer"])
    common.restore_rng(ckpt["rng"], data=data_gen)
    start = ckpt["step"] + 1
block = model.config.block_size
train_data, val_data = (open_tokens(cfg[k], block, model.config.vocab_size) for k in ("train_bin", "val_bin"))
print(f"train tokens {len(train_data):,} | val tokens {len(val_data):,}")
train_model = common.maybe_compile(model, cfg)


@torch.no_grad()
def evaluate():
    """Mean LM loss over eval_iters fixed batches of each split (a fixed generator, so evals of
    different runs and steps see the same windows and never touch the training data order)."""
    model.eval()
    out = {}
    for split, tokens in (("train", train_data), ("val", val_data)):
        g = torch.Generator().manual_seed(0)
        losses = []
        for _ in range(cfg["eval_iters"]):
            x, y = lm_batch(tokens, cfg["batch_size"], block, g, device)
            with ctx:
                losses.append(ptx_loss(model.lm_logits(model(x)), y).item())
        out[f"{split}_loss"] = sum(losses) / len(losses)
    model.train()
    return out


def save(step):
    common.save_run(cfg["out_dir"], cfg, model, step, optimizer, tokenizer=tok_spec, finished=step == cfg["max_steps"] - 1,
                    rng=common.rng_state(data=data_gen))


# ----------------------------------------------------------------------------- loop
common.lock_out_dir(cfg["out_dir"])
log = common.MetricsLog(cfg["out_dir"], cfg["max_steps"], resume_step=start - 1 if resume else None)
tokens_per_step, tokens_since_log = cfg["batch_size"] * cfg["grad_accum"] * block, 0
t0 = time.time()
model.train()
for step in range(start, cfg["max_steps"]):
    lr = common.cosine_lr(step, cfg["max_steps"], cfg["lr"], cfg["warmup_steps"], cfg["min_lr_frac"])
    common.set_lr(optimizer, lr)
    loss_sum = 0.0
    for micro in range(cfg["grad_accum"]):   # gradient accumulation: the same update as one big batch
        x, y = lm_batch(train_data, cfg["batch_size"], block, data_gen, device)
        if micro % world != rank:   # torchrun: every process draws all windows (one data order), runs its share
            continue
        with ctx:
            loss = ptx_loss(train_model.lm_logits(train_model(x)), y) / cfg["grad_accum"]
        loss.backward()
        loss_sum += loss.item()
    ddp.sum_grads(model)   # torchrun: the gradient of the whole global batch on every process
    loss_sum = ddp.all_sum(loss_sum, device=device)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
    common.check_finite(step, loss=loss_sum, grad_norm=grad_norm)   # the divergence guard
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    tokens_since_log += tokens_per_step

    last = step == cfg["max_steps"] - 1   # (a stop_step logs as if nothing happened: resume equals no stop)
    metrics = evaluate() if step % cfg["eval_interval"] == 0 or last else {}
    common.check_finite(step, **metrics)
    if step % cfg["log_interval"] == 0 or metrics:
        log.log(step, tokens=tokens_since_log, loss=loss_sum, lr=lr, grad_norm=grad_norm.item(), **metrics)
        tokens_since_log = 0
    common.mid_run_checkpoint(step, last, cfg, lambda: save(step))
    if last:
        save(step)

print(common.summary_line("pretrain", time.time() - t0, os.path.join(cfg["out_dir"], "ckpt.pt"),
                          steps=step + 1, **{k: log.last[k] for k in ("train_loss", "val_loss") if k in log.last}))
