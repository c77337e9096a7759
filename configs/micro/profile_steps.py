"""Micro preset: experiments/profile_steps.py with one timed repetition, for the README test (its
shapes are bench.py's, fixed)."""
reps = 1
