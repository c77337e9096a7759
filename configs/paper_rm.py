"""The paper's reward-model hyperparameters (Ouyang et al. 2022, sec. 3.5 and App. C.2).

Only hyperparameters: layer it after a preset that names the data (later files win):
    python train_rm.py --config=configs/gpt2_hh_rm.py --config=configs/paper_rm.py
    python train_rm.py --config=configs/paper_rm.py            # default world: K-wise, K = 4..9

Sources, checked against quotations of the paper's text (not the PDF itself):
  sec. 3.5  the RM is the SFT model with the unembedding replaced by a scalar; only 6B RMs
            (175B RM training was unstable); all C(K,2) comparisons of a prompt in one batch
            element; bias set so labeler demonstrations score 0 before RL.
  App. C.2  one 6B RM, initialised from a 6B GPT-3 fine-tuned on public NLP datasets ("mostly
            for historical reasons": GPT-3 or SFT init gave similar results); a single epoch
            ("multiple epochs quickly overfit"); lr 9e-6, cosine schedule down to 10% of its
            initial value; batch size 64 *prompts*, each with K = 4..9 ranked responses, so up to
            64 x C(9,2) = 2,304 comparisons per batch; ties dropped; +-50% lr made no difference.
  App. C    Adam, beta1 0.9, beta2 0.95.
K = 4..9 is a property of the data: data/world/collect_comparisons.py's default k_min/k_max.
HH-RLHF has K = 2 only.
"""
out_dir = "out/paper/rm"
init_from = "out/paper/sft"   # paper sec. 3.5 (App. C.2's final RM came from a GPT-3 variant)
epochs = 1               # paper App. C.2
batch_size = 64          # paper App. C.2: prompts per batch, all K responses of each
lr = 9e-6                # paper App. C.2 (for a 6B RM)
min_lr_frac = 0.1        # paper App. C.2: cosine down to 10% of the initial lr
warmup_steps = 0         # not stated; ours: none, as the paper's SFT (App. C.1)
beta2 = 0.95             # paper App. C
dropout = 0.0            # not stated; ours
weight_decay = 0.0       # not stated; ours (the script's default)
