#!/usr/bin/env bash
# Does a faster PPO show the alignment tax? PPO and PPO-ptx re-run from a finished run's SFT and
# RM at another learning rate (everything else the default), then evaluated against SFT (no
# reference rows) and compared item by item on the benchmark. The finished run is only read: the
# study writes OUT/studies/ppo_lr<LR>/{ppo,ppo_ptx,eval}, with links to OUT/sft and OUT/rm.
#
#   bash experiments/ppo_lr_tax.sh out 1e-4     # OUT of a finished `bash run.sh OUT`; 2 min on 2 cores
#
# As run.sh: PRESET=configs/micro takes that preset's ppo.py and evaluate.py (the test does),
# NPROC the evaluation's processes (default 2), PYTHON the interpreter, EXTRA_ARGS more PPO flags.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(cd "${1:-out}" && pwd)
LR=${2:-1e-4}
W=$OUT/world
S=$OUT/studies/ppo_lr$LR
PY=${PYTHON:-python}
ppo_preset=(); eval_preset=()
if [ -n "${PRESET:-}" ]; then ppo_preset=("--config=$PRESET/ppo.py"); eval_preset=("--config=$PRESET/evaluate.py"); fi
NPROC=${NPROC:-2}
LAUNCH=("$PY")
if [ "$NPROC" -gt 1 ]; then
  LAUNCH=(env OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC")
fi
mkdir -p "$S"
ln -sfn "$OUT/sft" "$S/sft"
ln -sfn "$OUT/rm" "$S/rm"
for run in ppo ppo_ptx; do
  ptx=(); [ "$run" = ppo ] && ptx=(--ptx_coef=0)
  "$PY" train_ppo.py "${ppo_preset[@]}" --init_from="$OUT/sft" --reward_model="$OUT/rm" --out_dir="$S/$run" --lr="$LR" \
        --prompts_file="$W/prompts_ppo.jsonl" --ptx_bin="$W/train.bin" "${ptx[@]}" ${EXTRA_ARGS:-} > "$S/$run.log"
  tail -n 1 "$S/$run.log"
done
"${LAUNCH[@]}" evaluate.py "${eval_preset[@]}" \
    --out="$S" --policies=sft,ppo,ppo_ptx --temperatures= --best_of=0 --prompts_file="$W/prompts_eval.jsonl" \
    --val_bin="$W/val.bin" --benchmark_file="$W/benchmark.jsonl" > "$S/evaluate.log"
"$PY" - "$S/eval/report.json" <<'PY'
import json, sys
for name, p in json.load(open(sys.argv[1]))["policies"].items():
    lo, hi = p["gold_vs_sft_ci95"]
    print(f"{name:8s} gold - SFT's {p['gold_vs_sft']:+.3f} [{lo:+.3f}, {hi:+.3f}]  win {p['win_rate_vs_sft']:.3f}  "
          f"KL {p['kl_to_sft']:.2f}  pretrain val loss {p['pretrain_val_loss']:.3f}  benchmark {p['benchmark_accuracy']:.3f} "
          f"[{p['benchmark_accuracy_ci95'][0]:.3f}, {p['benchmark_accuracy_ci95'][1]:.3f}]")
PY
"$PY" experiments/benchmark_flips.py --out="$S" --benchmark_file="$W/benchmark.jsonl" --policies=sft,ppo,ppo_ptx
