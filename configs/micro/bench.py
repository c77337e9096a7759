"""Micro preset: bench.py's workloads at toy sizes, for the README test (seconds, not minutes)."""
n_layer = 1
n_head = 2
n_embd = 32
vocab_size = 256
n_positions = 64
batch = 2
seq = 32
gen_batch = 2
prompt_len = 8
new_tokens = 8
mini_batch = 1
warmup = 1
steps = 2
gen_reps = 1
rl_warmup = 1
rl_iters = 1
