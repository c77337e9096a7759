"""Micro preset of experiments/habits.py: every pipeline on configs/micro (about a minute each on
2 cores); the smoke test reuses its session's micro pipeline for the default strength."""
preset = "configs/micro"
strengths = "0,default"
