"""Micro preset."""
iterations = 2
rollout_batch = 8
minibatch_size = 4
ppo_epochs = 1
max_new_tokens = 16
ptx_batch_size = 2
ptx_block_size = 32
