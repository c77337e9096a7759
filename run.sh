#!/usr/bin/env bash
# The main job: the whole InstructGPT pipeline on the default world, on a laptop CPU.
#
#   bash run.sh [OUT]          # default OUT=out; ~10 minutes on 2 CPU cores (569 s measured; ~1.9x that on a slower VM)
#   PRESET=configs/micro bash run.sh out_micro    # a tiny end-to-end run in ~1-2 minutes (the tests use it)
#
# On a machine without the requirements, it first makes a local environment in .venv and says
# what it installs (scripts/env.sh; PYTHON=... skips that and uses the given interpreter).
#
# Stages: build the world -> 0 pretrain -> 1 SFT -> collect comparisons (simulated labelers rank
# SFT samples) -> 2 reward model -> 3 PPO (ptx_coef=0) and PPO-ptx -> evaluate. Each stage's
# output goes to OUT/<stage>/ and its log to OUT/logs/<stage>.log; the first failing stage stops
# the run with its message. PRESET=DIR adds --config=DIR/<stage>.py to a stage when that file
# exists (before run.sh's own paths, which win; ppo_ptx uses ppo.py).
# EXTRA_ARGS (e.g. "--device=cuda --compile=True") is added to every training script.
# NPROC (default: the CPU's cores, or 1 with a GPU) runs the sampling stages, collect and evaluate,
# as that many one-thread processes under torchrun: on a CPU, decoding is small products that one
# thread per core keeps busier than one process's threads do (2 cores, back to back: collect of
# 640 prompts 28.0 -> 22.8 s, evaluate of 128 prompts 56.5 -> 54.5 s; experiments/stage_speed.sh).
# Training stages gain nothing from it (measured) and run as one process.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${1:-out}
source scripts/env.sh   # sets PY
WORLD="$OUT/world"
mkdir -p "$OUT/logs"
echo "{}" > "$OUT/wall_times.json"
T_START=$(date +%s)

if [ -z "${NPROC:-}" ]; then
  NPROC=$("$PY" -c "import os, torch; print(1 if torch.cuda.is_available() else len(os.sched_getaffinity(0)))")
fi
LAUNCH=("$PY")   # how the sampling stages start: one process, or torchrun with NPROC one-thread processes
if [ "$NPROC" -gt 1 ]; then
  LAUNCH=(env OMP_NUM_THREADS=1 "$PY" -m torch.distributed.run --standalone --nproc_per_node="$NPROC")
fi

stage() {   # stage NAME SCRIPT ARGS...: run it, show and log its output, record its wall time
  local name=$1 script=$2; shift 2
  local run=("$PY") on=""
  case $name in collect|evaluate) run=("${LAUNCH[@]}"); [ "$NPROC" -gt 1 ] && on=" on $NPROC processes";; esac
  local preset=()
  local file="${PRESET:-}/${name%_ptx}.py"   # ppo_ptx shares ppo's preset
  if [ -n "${PRESET:-}" ] && [ -f "$file" ]; then preset=("--config=$file"); fi
  echo
  echo "=== [$name] $script ${preset[*]:-} $*$on  ($(( $(date +%s) - T_START ))s so far)"
  local t0; t0=$(date +%s.%N)
  if ! "${run[@]}" "$script" "${preset[@]}" "$@" 2>&1 | tee "$OUT/logs/$name.log"; then
    echo "run.sh: stage '$name' failed; its log is $OUT/logs/$name.log" >&2
    exit 1
  fi
  "$PY" - "$OUT/wall_times.json" "$name" "$t0" <<'EOF'
import json, sys, time
path, name, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
times = json.load(open(path)); times[name] = round(time.time() - t0, 1)
json.dump(times, open(path, "w"), indent=1)
EOF
}

# shellcheck disable=SC2086
stage world    data/world/prepare.py --out_dir="$WORLD"
stage pretrain pretrain.py --out_dir="$OUT/base" --train_bin="$WORLD/train.bin" --val_bin="$WORLD/val.bin" \
               --tokenizer="$WORLD/tokenizer.tiktoken" ${EXTRA_ARGS:-}
stage sft      train_sft.py --init_from="$OUT/base" --out_dir="$OUT/sft" \
               --train_file="$WORLD/demos_train.jsonl" --val_file="$WORLD/demos_val.jsonl" --ptx_bin="$WORLD/train.bin" ${EXTRA_ARGS:-}
stage collect  data/world/collect_comparisons.py --policy="$OUT/sft" --prompts_file="$WORLD/prompts_rm.jsonl" \
               --out_dir="$WORLD"
stage rm       train_rm.py --init_from="$OUT/sft" --out_dir="$OUT/rm" --train_file="$WORLD/comparisons_train.jsonl" \
               --val_file="$WORLD/comparisons_val.jsonl" --norm_file="$WORLD/demos_train.jsonl" ${EXTRA_ARGS:-}
for run in ppo ppo_ptx; do
  ptx=(); [ "$run" = ppo ] && ptx=(--ptx_coef=0)
  stage "$run" train_ppo.py --init_from="$OUT/sft" --reward_model="$OUT/rm" --out_dir="$OUT/$run" \
                 --prompts_file="$WORLD/prompts_ppo.jsonl" --ptx_bin="$WORLD/train.bin" ${EXTRA_ARGS:-} "${ptx[@]}"
done
stage evaluate evaluate.py --out="$OUT" --prompts_file="$WORLD/prompts_eval.jsonl" --val_bin="$WORLD/val.bin" \
               --benchmark_file="$WORLD/benchmark.jsonl"
echo
echo "run.sh: done in $(( $(date +%s) - T_START ))s; report in $OUT/eval/report.md"
