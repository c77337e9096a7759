"""A tiny default world for the end-to-end test (seconds, not minutes)."""
n_pretrain_docs = 300
n_val_docs = 30
n_demos_train = 64
n_demos_val = 16
n_prompts_rm = 24
n_prompts_ppo = 32
n_eval_per_family = 2
