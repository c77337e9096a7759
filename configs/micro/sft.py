"""Micro preset."""
epochs = 1
batch_size = 16
warmup_steps = 1
eval_interval = 2
n_samples = 1
max_new_tokens = 16
