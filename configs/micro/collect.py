"""Micro preset (the paper's K = 4..9 is the default; fewer here for speed)."""
k_min = 2
k_max = 4
max_new_tokens = 16
val_frac = 0.25
