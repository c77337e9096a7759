"""GPT-2 124M on HH-RLHF, stage 3 (PPO-ptx), one GPU.

    python data/text/prepare.py MY_TEXT.txt ...           # -> data/text/train.bin (the ptx corpus)
    python train_ppo.py --config=configs/gpt2_hh_ppo.py    # after the SFT and RM presets
    python train_ppo.py --config=configs/gpt2_hh_ppo.py --ptx_coef=0 --out_dir=out/gpt2_hh/ppo   # plain PPO

Values marked "ours" were chosen for GPT-2 124M, not measured; "paper" is Ouyang et al. 2022,
App. C.4. The script has no prompt-length key: prompts are cut from the left to
1024 - max_new_tokens = 896 tokens (GPT-2's context), so PPO sees longer prompts than SFT/RM's 512.
"""
out_dir = "out/gpt2_hh/ppo_ptx"
init_from = "out/gpt2_hh/sft"             # policy and frozen reference pi_SFT
reward_model = "out/gpt2_hh/rm"           # frozen r_theta; the value model starts from it (paper App. C.4)
prompts_file = "data/hh/prompts_ppo.jsonl"   # distinct HH train prompts (data/hh/prepare.py)
# D_pretrain: any text through data/text/prepare.py; GPT-2 was trained on WebText, so an
# OpenWebText sample is the closest stand-in for the paper's GPT-3 pretraining mix
ptx_bin = "data/text/train.bin"
gold_fn = ""             # real data has no gold score
device = "cuda"
dtype = "bfloat16"
compile = True

# PPO: 500 x 128 = 64k episodes (paper: 256k = 500 x 512)
iterations = 500
rollout_batch = 128      # ours (paper 512; configs/paper_ppo.py); ~25 GB in all at these sizes (estimate)
minibatch_size = 32      # 4 minibatches per rollout batch (paper: 512 / 64 = 8)
ppo_epochs = 1           # paper App. C.4: "a single inner epoch"
lr = 3e-6                # ours; constant, as in the paper (App. C.4), whose final policy lr is not stated
value_lr = 9e-6          # paper App. C.4: value function lr for the 1.3B and 6B policies
temperature = 1.0        # paper App. C.4
max_new_tokens = 128     # ours (paper: responses up to 1k tokens in a 2k context)
kl_coef = 0.02           # beta, paper sec. 3.5 / App. C.4; fixed, not adaptive
adaptive_kl = False
gamma = 1.0              # paper App. C.4: no discount in GAE
lam = 0.95               # ours: lambda is not stated in the paper
clip_eps = 0.2           # paper App. C.4
ptx_coef = 1.0           # ours (the script's default is 0.2, tuned on the default world); the paper's 27.8 is relative to its own
                         # loss normalisation, not stated (configs/paper_ppo.py carries it)
ptx_batch_size = 16      # ours: 16 x 512 = 8k pretraining tokens per minibatch step
ptx_block_size = 512

log_samples = 2
ckpt_interval = 50       # a checkpoint every 50 iterations (~2-4 minutes, estimate)
