"""GPT-2 124M on HH-RLHF, stage 1 (SFT), one GPU.

    python data/hh/prepare.py
    python data/text/prepare.py MY_TEXT.txt ...           # -> data/text/train.bin (the pretraining mix)
    python train_sft.py --config=configs/gpt2_hh_sft.py

HH-RLHF has no demonstrations: SFT imitates the chosen response of each pair (data/hh/prepare.py).
Values marked "ours" were chosen for GPT-2 124M, not measured; "paper" is Ouyang et al. 2022.
Memory and time: README, "Real models and data" (estimates until measured on a GPU).
"""
out_dir = "out/gpt2_hh/sft"
init_from = "gpt2"                        # OpenAI's 124M weights, downloaded once (nanoinstruct/gpt2.py)
tokenizer = "gpt2"                        # GPT-2's BPE, the one the weights were trained with
train_file = "data/hh/sft_train.jsonl"    # written by data/hh/prepare.py
val_file = "data/hh/sft_val.jsonl"
device = "cuda"
dtype = "bfloat16"                        # autocast; weights and AdamW state stay float32
compile = True

# optimisation
epochs = 2               # ours: ~86k demonstrations; paper: 16 epochs on ~13k, and its SFT overfits val loss after 1
batch_size = 32          # paper: 32 for 1.3B/6B (App. C.1); ~15-20 GB at block_size 512 (estimate)
lr = 2e-5                # ours: ~1/30 of GPT-2 124M's pretraining lr 6e-4 (nanoGPT); paper 9.65e-6 for 1.3B/6B
min_lr_frac = 0.1        # paper App. C.1: cosine decay to 10% of the initial lr
warmup_steps = 100       # ours (paper App. C.1: no warmup); ~3% of the ~5.4k steps
weight_decay = 0.0       # ours: not stated in the paper; no pull towards 0 when fine-tuning
beta2 = 0.95             # paper App. C: Adam beta1 0.9, beta2 0.95 (as GPT-3)
dropout = 0.1            # ours: GPT-2's own pretraining dropout; paper 0.2 (residual) for its 16 epochs

# sequences: GPT-2's context is 1024; most HH dialogues fit in 512, longer ones lose the oldest
# turns of the prompt (cut from the left; the response is always kept whole)
block_size = 512

# the pretraining mix of paper App. C.3 (the script's default, 10% of the learned tokens): any text
# tokenised with GPT-2's BPE by data/text/prepare.py; ptx_frac = 0.0 turns it off
ptx_frac = 0.0           # off here: it needs data/text/train.bin (above); 0.1 is App. C.3's mix
ptx_bin = "data/text/train.bin"

# bookkeeping
eval_interval = 500      # val loss over all ~4.7k val demonstrations (a few seconds)
log_interval = 20
n_samples = 3
max_new_tokens = 128
