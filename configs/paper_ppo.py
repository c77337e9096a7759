"""The paper's PPO-ptx hyperparameters (Ouyang et al. 2022, sec. 3.5 and App. C.4, E.7-E.11).

Only hyperparameters: layer it after a preset that names the data (later files win):
    python train_ppo.py --config=configs/gpt2_hh_ppo.py --config=configs/paper_ppo.py
At rollout_batch 512 this wants an 80 GB GPU for GPT-2 124M (estimate: README).

Sources, checked against quotations of the paper's text (not the PDF itself):
  App. C.4  policy and KL reference from the SFT model of App. C.3; beta = 0.02; 256k episodes
            (~31k unique prompts); batch 512 per iteration, minibatch 64, "a single inner epoch";
            a constant lr with a warmup over the first 10 iterations from 1/10 of the peak;
            an EMA of the weights (decay 0.992); no discount in GAE; clip ratio 0.2; sampling
            temperature 1; a 6B RM and a 6B value function initialised from it; value-function
            lr 9e-6 (1.3B and 6B policies), 5e-6 (175B); ptx: 8 times more pretraining examples
            than RL episodes, gradients accumulated with the PPO ones and multiplied by
            gamma = 27.8.
  App. C    Adam (0.9, 0.95); a 2k context: prompts over 1k tokens filtered, responses up to 1k.
  App. E    policy lr swept log-linearly from 2.55e-6 to 2.55e-5; PPO without ptx diverged above
            8.05e-6; the chosen models' lr is not stated. beta 0.01-0.02 best. Batch 512 best of
            64..1024; minibatch 32 slightly better than 64, 64 used for GPU utilisation;
            256k episodes enough for the 1.3B PPO-ptx.
Not expressible here (no such keys in train_ppo.py): the 10-iteration lr warmup, the weight EMA,
prompt filtering by length. The pretraining-mix SFT init of App. C.3 is a checkpoint made by
train_sft.py with --ptx_frac=0.1 (configs/paper_sft.py says how), passed as init_from below. Not stated in the paper:
GAE lambda, the value-loss clip, weight decay, gradient clipping, the policy lr.
"""
out_dir = "out/paper/ppo_ptx"
init_from = "out/paper/sft"      # paper: the App. C.3 SFT model (2 epochs, 10% pretraining mix)
reward_model = "out/paper/rm"    # frozen RM; the value model starts from it (App. C.4)
iterations = 500         # 256k episodes / 512 per iteration (App. C.4)
rollout_batch = 512      # App. C.4
minibatch_size = 64      # App. C.4: 8 minibatches per batch
ppo_epochs = 1           # App. C.4: "a single inner epoch"
lr = 5e-6                # ours: inside the paper's sweep (App. E), below the 8.05e-6 where PPO diverged
value_lr = 9e-6          # App. C.4 (1.3B and 6B policies)
temperature = 1.0        # App. C.4
max_new_tokens = 128     # ours: GPT-2's context is 1024 (paper: up to 1k of a 2k context); memory
kl_coef = 0.02           # beta, sec. 3.5 / App. C.4, fixed
adaptive_kl = False
gamma = 1.0              # App. C.4: no discount
lam = 0.95               # not stated; ours
clip_eps = 0.2           # App. C.4
value_clip_eps = 0.2     # not stated; ours
ptx_coef = 27.8          # App. C.4 gamma. Uncertain match: the paper does not say how its PPO and
                         # pretraining losses are normalised; ours are per-token means, so 27.8 here
                         # may weigh ptx more than in the paper (the script's default is 0.2)
ptx_batch_size = 64      # paper: 8 pretraining examples per episode = 512 per 64-rollout minibatch;
                         # ours: 64, since one 512-sequence forward does not fit one GPU (no
                         # accumulation here); the loss is a per-token mean, so this changes its
                         # noise, not its weight
ptx_block_size = 256     # ours: not stated (GPT-3 examples are up to 2k tokens)
