"""The paper's SFT hyperparameters (Ouyang et al. 2022, sec. 3.5 and App. C.1), for any data.

Only hyperparameters: layer it after a preset that names the model and data (later files win):
    python train_sft.py --config=configs/gpt2_hh_sft.py --config=configs/paper_sft.py
    python train_sft.py --config=configs/paper_sft.py          # on the default world

Sources, checked against quotations of the paper's text (not the PDF itself):
  sec. 3.5  "We trained for 16 epochs, using a cosine learning rate decay, and residual dropout
            of 0.2." The final SFT model is picked by RM score on a validation set; we keep the last.
  App. C    Adam, beta1 0.9, beta2 0.95; fp16 weights and activations with an fp32 master copy;
            a 2k-token context.
  App. C.1  16 epochs, residual dropout 0.2, cosine schedule down to 10% of the original lr,
            no warmup; lr 9.65e-6 with batch 32 for 1.3B and 6B, 5.03e-6 with batch 8 for 175B
            (picked by a geometric search over 7 and 5 lrs).
  App. C.3  the SFT model that PPO starts from is a different one: 2 epochs with 10% pretraining
            data mixed in, lr 5e-6 / 1.04e-5 / 2.45e-6 for 1.3B / 6B / 175B. train_sft.py does
            this with --ptx_frac=0.1 --epochs=2 (and --ptx_bin naming the pretraining tokens)
            added after this file, into another out_dir.
Our dropout flag covers the residual branches (attention and MLP outputs), as the paper's, and
also the embeddings and attention weights (nanoGPT's layout).
"""
out_dir = "out/paper/sft"
epochs = 16              # paper sec. 3.5 / App. C.1
batch_size = 32          # paper App. C.1, 1.3B and 6B
lr = 9.65e-6             # paper App. C.1, 1.3B and 6B (tuned for those sizes, not for GPT-2 124M)
min_lr_frac = 0.1        # paper App. C.1: cosine down to 10%
warmup_steps = 0         # paper App. C.1: no warmup
beta2 = 0.95             # paper App. C: Adam (0.9, 0.95)
dropout = 0.2            # paper sec. 3.5: residual dropout 0.2
# weight decay and gradient clipping are not stated: the script's defaults stay
