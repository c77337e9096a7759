"""The experiments of the handout, with what an instructor should expect. Not handed out: `make`
writes each experiment's task into ASSIGNMENT.md and the expected results into the instructor's
notes only. Figures quoted as measured come from the README's results on the default world
(one `bash run.sh`, 2 CPU cores); the rest are expectations, and say so."""

EXPERIMENTS = [
    dict(title="The pipeline runs end to end",
         task="Run the micro pipeline, `PRESET=configs/micro bash run.sh out/micro` (a few minutes on a laptop): every "
              "stage, on a tiny world, ending with the results table. It checks that your parts work together, "
              "not what they achieve (two PPO iterations).",
         expected="It finishes and prints the table; its numbers mean nothing at this size. A part that passes its "
                  "checks but breaks here is usually a dtype or device assumption (bf16 autocast, the float32 "
                  "reward head)."),
    dict(title="Does PPO raise the gold score?",
         task="Run the whole paper on the default world, `bash run.sh out` (about 15 minutes on 2 CPU cores). From "
              "out/eval/report.md, report the gold score of PPO and PPO-ptx against SFT's (the difference with its "
              "95% interval) and their KL to SFT, and set them beside the two reference rows that use no RL (SFT "
              "sampled at temperature 0.7; SFT's best of 2 samples by the reward model). Plot `rm_score` and "
              "`gold` over the iterations of out/ppo/metrics.jsonl: does the reward model's score rise faster "
              "than the gold score, and why would it?",
         expected="Measured (README): PPO and PPO-ptx gain about +0.02 gold over SFT (+0.024 [+0.007, +0.041] "
                  "each), at a KL to SFT of 0.39 and 0.55; both are below SFT at temperature 0.7 (+0.078) and "
                  "SFT's best of 2 (+0.044). The RM score rises far more than the gold score (RM +0.144 -> "
                  "+0.544, gold 0.738 -> 0.776): the policy exploits the reward model's errors (Gao et al. 2023). Gains "
                  "this small move with the run; an interval that crosses 0 is a legitimate result."),
    dict(title="Whitening the advantages",
         task="Rerun stage 3 from the same SFT and reward model without whitening: `python train_ppo.py "
              "--ptx_coef=0 --whiten=False --out_dir=out/ppo_nowhiten`. Compare with out/ppo: the mean `gold`, `kl`, "
              "`clip_frac` and `approx_kl` over the last 10 iterations of metrics.jsonl. Then explain what "
              "whitening makes the step size independent of.",
         expected="Expected, not measured in this project: without whitening the policy's step follows the scale "
                  "of the raw advantages (RM scores of a few units, minus the KL term), so `clip_frac` and "
                  "`approx_kl` change with that scale and the run is noisier; the gold gain is no larger. "
                  "Whitening makes the update invariant to the reward's scale and offset (Andrychowicz et al. "
                  "2021 found advantage normalisation a modest help)."),
    dict(title="Clipping the value loss",
         task="Turn the value clip off, `python train_ppo.py --ptx_coef=0 --value_clip_eps=1e9 "
              "--out_dir=out/ppo_novclip`, and compare `explained_var`, `value_loss`, `value_clip_frac` and the "
              "`gold` with out/ppo.",
         expected="Expected, not measured in this project: `value_clip_frac` drops to 0 and the value model fits "
                  "the returns at least as fast (`explained_var` no lower); the gold score about unchanged. "
                  "Engstrom et al. 2020 and Andrychowicz et al. 2021 found value clipping no help, or a slight "
                  "harm."),
    dict(title="The pretraining mix (ptx)",
         task="Compare the `ppo` (ptx_coef=0) and `ppo_ptx` rows of your report: gold score, KL to SFT and the "
              "pretraining validation loss (the alignment tax). Where on this world is the corpus forgotten: "
              "in SFT or in PPO? What does ptx buy back, and at what cost?",
         expected="Measured (README): pretraining val loss SFT 5.535, PPO 5.524, PPO-ptx 1.769 (base 1.015) at "
                  "the same gold (0.776 both): SFT, not PPO, is where the corpus is forgotten here, and ptx "
                  "recovers most of it at no cost in gold; PPO-ptx drifts further from SFT (KL 0.55 vs 0.39)."),
    dict(title="The adaptive KL controller",
         task="Run `python train_ppo.py --ptx_coef=0 --adaptive_kl=True --target_kl=0.2 --kl_horizon=1000 "
              "--out_dir=out/ppo_akl` and plot `kl` and `kl_coef` over the iterations.",
         expected="Expected: `kl_coef` grows while the sequence KL is above 0.2 and shrinks while it is below, by at "
                  "most 1 + 0.2 * 64 / 1000 (1.3%) per iteration, so over 45 iterations it moves by at most about "
                  "x1.8 or x0.55; the KL is pulled toward the target but need not reach it."),
]
