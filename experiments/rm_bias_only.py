"""The reward model as the paper normalises it, by its bias alone (demonstrations' mean score 0,
their spread whatever training left), made from a checkpoint that train_rm.py also normalised in
gain (standard deviation 1). PPO against each shows what the gain does to the value loss's clip
(value_clip_eps = 0.2 is in the RM's units) and to explained_var:

    python experiments/rm_bias_only.py --rm=out/rm --out_dir=out/rm_bias_only
    python train_ppo.py --reward_model=out/rm_bias_only --ptx_coef=0 --out_dir=out/ppo_bias_only
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from nanoinstruct import common  # noqa: E402

cfg = common.get_config(dict(rm="out/rm", out_dir="out/rm_bias_only"))
model, ckpt = common.load_model(cfg["rm"], "cpu", scalar_head=True, verbose=False)
std = ckpt["reward_norm"]["std"]
model.score_head.weight.data *= std        # (raw - mean) / std  ->  raw - mean
model.score_head.bias.data *= std
common.save_run(cfg["out_dir"], ckpt["config"], model, ckpt["step"], reward_norm={**ckpt["reward_norm"], "std_undone": True})
print(f"wrote {cfg['out_dir']}: the head scaled by the demonstrations' standard deviation {std:.4f} (gain undone)")
