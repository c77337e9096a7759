"""Micro preset of experiments/frontier.py: seconds, for the smoke test."""
ppo_runs = "ppo_ptx"
ppo_iterations = "1"
dpo_betas = "0.1"
dpo_args = "--batch_size=2 --max_train=4 --eval_interval=100 --log_interval=1 --drop_unended=False"   # as the micro RM: its samples rarely end
temperatures = "0.7"
best_of = "2,4"
samples_per_prompt = 2
max_prompts = 4
batch_size = 64
