#!/usr/bin/env bash
# The one prepared device check (issue 22), for a CUDA machine with no network, in about 8 minutes:
#   1. the test suite's CUDA tests (bf16 vs float32, compiled vs eager, CUDA-graph sampler vs
#      eager, PPO's first minibatch under bf16, SDPA's kernel);
#   2. bench.py at GPT-2 124M's shapes, bf16, compiled, beside Hugging Face transformers in the
#      same process (--peer=True; skipped with a note if transformers is not installed): training
#      tokens/s and MFU, generate new tokens/s, the SDPA kernels that ran;
#   3. GPT-2-shaped SFT, RM and PPO-ptx (the configs/gpt2_hh_* presets, random weights, random
#      local data from scripts/gpu_check.py) for a few hundred steps each (PPO: iterations x
#      minibatches), printing tokens/s and peak memory per stage.
# Everything goes to one log and one JSON: $OUT/gpu_check.log and $OUT/gpu_check.json ($OUT
# defaults to out/gpu_check). Nothing is downloaded (HF_HUB_OFFLINE=1; all inputs are made here).
#
#   bash scripts/gpu_check.sh                       # PYTHON=... to pick the interpreter
#   SFT_DEMOS=3200 PPO_ITERS=12 bash scripts/gpu_check.sh   # fewer steps
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_check}
PY=${PYTHON:-python}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
exec > >(tee "$LOG") 2>&1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
t_start=$(date +%s)
status=0
run() {   # run NAME TIMEOUT_S CMD...: time-limited, logged; a failure is counted, the check goes on
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%H:%M:%S), limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc in $(( $(date +%s) - t0 ))s"
  [ $rc -eq 0 ] || status=1
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

# 1. CUDA tests
run cuda_tests 150 $PY -m pytest -q -rs tests/test_cuda.py tests/test_model.py -k "cuda or bf16"

# 2. bench beside the peer: GPT-2 124M, the GPT-2 SFT preset's batch (32 x 512)
run bench 150 $PY bench.py --device=cuda --dtype=bfloat16 --compile=True --gpt2=True --peer=True \
  --only=train,generate --warmup=3 --steps=10 --gen_reps=2 --out="$OUT/bench_gpt2.json"

# 3. the stages, GPT-2-shaped, random weights and data
run data 60 $PY scripts/gpu_check.py data "$WORK" --n_demos="${SFT_DEMOS:-6400}" --n_comparisons="${RM_PAIRS:-6400}"
common=(--device=cuda --dtype=bfloat16 --compile=True --tokenizer="$WORK/bytes.tiktoken")
run sft 100 $PY scripts/gpu_check.py stage sft "$WORK/sft.json" train_sft.py --config=configs/gpt2_hh_sft.py \
  "${common[@]}" --init_from="$WORK/base" --out_dir="$WORK/sft" --train_file="$WORK/demos_train.jsonl" \
  --val_file="$WORK/demos_val.jsonl" --epochs=1 --warmup_steps=10 --eval_interval=100000 --n_samples=0 --log_interval=10
run rm 100 $PY scripts/gpu_check.py stage rm "$WORK/rm.json" train_rm.py --config=configs/gpt2_hh_rm.py \
  "${common[@]}" --init_from="$WORK/sft" --out_dir="$WORK/rm" --train_file="$WORK/comparisons_train.jsonl" \
  --val_file="$WORK/comparisons_val.jsonl" --norm_file="$WORK/demos_val.jsonl" --norm_samples=64 \
  --warmup_steps=10 --eval_interval=100000 --log_interval=10
run ppo_ptx 150 $PY scripts/gpu_check.py stage ppo_ptx "$WORK/ppo_ptx.json" train_ppo.py --config=configs/gpt2_hh_ppo.py \
  "${common[@]}" --init_from="$WORK/sft" --reward_model="$WORK/rm" --out_dir="$WORK/ppo_ptx" \
  --prompts_file="$WORK/prompts.jsonl" --ptx_bin="$WORK/ptx.bin" --iterations="${PPO_ITERS:-24}" \
  --ckpt_interval=0

cp "$OUT/bench_gpt2.json" "$OUT/gpu_check.json" 2>/dev/null || echo '{}' > "$OUT/gpu_check.json"
$PY scripts/gpu_check.py summary "$OUT/gpu_check.json" "$WORK/sft.json" "$WORK/rm.json" "$WORK/ppo_ptx.json"
echo "=== done in $(( $(date +%s) - t_start ))s, status $status; log $LOG, JSON $OUT/gpu_check.json"
exit $status
