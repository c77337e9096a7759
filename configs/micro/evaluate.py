"""Micro preset."""
max_new_tokens = 16
val_batches = 2
val_batch_size = 2
val_block_size = 32
