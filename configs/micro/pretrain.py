"""Micro preset: a 1-layer, 32-wide model, a few steps."""
n_layer = 1
n_head = 2
n_embd = 32
block_size = 128
batch_size = 4
max_steps = 4
warmup_steps = 1
eval_interval = 2
eval_iters = 1
log_interval = 1
