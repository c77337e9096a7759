"""GPT-2 124M on HH-RLHF, stage 2 (reward model), one GPU.

    python train_rm.py --config=configs/gpt2_hh_rm.py      # after configs/gpt2_hh_sft.py

HH-RLHF's pairs are the K = 2 case of the K-wise loss (paper: K = 4..9). Values marked "ours"
were chosen for GPT-2 124M, not measured; "paper" is Ouyang et al. 2022, App. C.2.
"""
out_dir = "out/gpt2_hh/rm"
init_from = "out/gpt2_hh/sft"             # paper sec. 3.5: the RM starts from the SFT model
train_file = "data/hh/comparisons_train.jsonl"
val_file = "data/hh/comparisons_val.jsonl"
norm_file = "data/hh/sft_train.jsonl"     # chosen responses: their mean reward is set to 0 (paper sec. 3.5)
norm_samples = 2048      # ours: a steadier mean than the default 512; one forward pass each
device = "cuda"
dtype = "bfloat16"
compile = True

# optimisation
epochs = 1               # paper App. C.2: one epoch; more "quickly overfit"
batch_size = 32          # prompts per step (x2 responses = 64 sequences); paper 64 prompts, ~2x the memory
lr = 1e-5                # ours, close to the paper's 9e-6 (App. C.2: +-50% gave similar results)
min_lr_frac = 0.1        # paper App. C.2: cosine schedule down to 10% of the initial lr
warmup_steps = 50        # ours: the scalar head starts from scratch
weight_decay = 0.0       # not stated in the paper
beta2 = 0.95             # paper App. C: Adam beta2 0.95
dropout = 0.0            # not stated in the paper

block_size = 512         # as SFT: longer dialogues lose the oldest prompt tokens, responses kept whole

# bookkeeping
eval_interval = 200      # ~2.7k steps in the epoch
log_interval = 20
