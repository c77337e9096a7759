#!/usr/bin/env bash
# What made run.sh faster, as A/B pairs run back to back on one finished run's files (the VM's
# speed drifts 10-30% over minutes, so only figures of the same pair compare), each part of a
# stage, a few minutes in all:
#   collect and evaluate: one process of 2 threads, then 2 one-thread processes (run.sh's NPROC)
#   RM: random batches, then batches of similar length (group_batches=8)
#   SFT: dropout 0.1, then 0 (the default now)
#
#   bash experiments/stage_speed.sh out      # OUT of a finished `bash run.sh OUT`; ~5 min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out}
W=$OUT/world
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PY=${PYTHON:-python}
TORCHRUN=(env OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node=2)

timed() {   # timed LABEL CMD...: the command's wall time in seconds, its output kept in TMP
  local label=$1; shift
  local t0; t0=$(date +%s.%N)
  "$@" > "$TMP/$label.log" 2>&1 || { cat "$TMP/$label.log"; exit 1; }
  printf '%-44s %6.1f s\n' "$label" "$(echo "$(date +%s.%N) - $t0" | bc)"
}

COLLECT=(data/world/collect_comparisons.py --policy="$OUT/sft" --prompts_file="$W/prompts_rm.jsonl" --n_prompts=640)
timed "collect, 640 prompts, 1 process" "$PY" "${COLLECT[@]}" --out_dir="$TMP/c1"
timed "collect, 640 prompts, 2 processes" "${TORCHRUN[@]}" "${COLLECT[@]}" --out_dir="$TMP/c2"

mkdir -p "$TMP/e1" "$TMP/e2"
for d in e1 e2; do for n in base sft ppo ppo_ptx rm; do ln -s "$(cd "$OUT" && pwd)/$n" "$TMP/$d/$n"; done; done
EVAL=(evaluate.py --prompts_file="$W/prompts_eval.jsonl" --val_bin="$W/val.bin" --benchmark_file="$W/benchmark.jsonl"
      --max_prompts=128)
timed "evaluate, 128 prompts, 1 process" "$PY" "${EVAL[@]}" --out="$TMP/e1"
timed "evaluate, 128 prompts, 2 processes" "${TORCHRUN[@]}" "${EVAL[@]}" --out="$TMP/e2"

RM=(train_rm.py --init_from="$OUT/sft" --train_file="$W/comparisons_train.jsonl" --val_file="$W/comparisons_val.jsonl"
    --norm_file="$W/demos_train.jsonl" --max_train=960 --eval_interval=1000)
timed "rm, 120 steps, random batches" "$PY" "${RM[@]}" --group_batches=1 --out_dir="$TMP/r1"
timed "rm, 120 steps, grouped by length (8)" "$PY" "${RM[@]}" --group_batches=8 --out_dir="$TMP/r8"

SFT=(train_sft.py --init_from="$OUT/base" --train_file="$W/demos_train.jsonl" --val_file="$W/demos_val.jsonl"
     --ptx_bin="$W/train.bin" --stop_step=149 --eval_interval=1000 --n_samples=0)
timed "sft, 150 steps, dropout 0.1" "$PY" "${SFT[@]}" --dropout=0.1 --out_dir="$TMP/s1"
timed "sft, 150 steps, dropout 0" "$PY" "${SFT[@]}" --dropout=0.0 --out_dir="$TMP/s0"
