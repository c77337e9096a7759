"""Micro preset of experiments/overoptimization.py: seconds, for the smoke test."""
iterations = 3
n_prompts = 4
n_max = 4
window = 1
batch_size = 64
