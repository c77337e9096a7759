"""Micro preset."""
batch_size = 4
warmup_steps = 1
eval_interval = 2
norm_samples = 16
drop_unended = False   # the micro policy, 4 steps old, seldom ends a response: keep them all
