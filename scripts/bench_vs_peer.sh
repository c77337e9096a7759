#!/usr/bin/env bash
# bench.py beside the peer harness (../shared/bench: Hugging Face transformers + TRL), alternating,
# ROUNDS times, on this machine's CPU: the figures the README's Speed table and issue 22 compare.
# The peers run in their own virtual environments (../shared/bench/README.md says how to make them).
#
#   HF_PY=peer-venv/bin/python PPO_PY=ppo-venv/bin/python bash scripts/bench_vs_peer.sh [ROUNDS] [OUT]
#
# Each round: ours, then peer_hf.py, then peer_trl_ppo.py (TRL 1.12's PPOTrainer), back to back, so
# that the VM's drift over minutes (~10-30%) hits both sides of a round alike. Writes
# OUT/round<i>_{ours,hf,trl_ppo}.json and prints one table of the ratios per round.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
OUT=${2:-out/bench}
BENCH=${BENCH:-../shared/bench}
: "${HF_PY:?set HF_PY to the python of the peer_hf.py venv}"
: "${PPO_PY:?set PPO_PY to the python of the peer_trl_ppo.py venv}"
PY=${PYTHON:-python}
mkdir -p "$OUT"
for i in $(seq 1 "$ROUNDS"); do
  echo "round $i: ours" >&2
  "$PY" bench.py --out="$OUT/round${i}_ours.json" > /dev/null
  echo "round $i: peer_hf.py" >&2
  HF_HUB_OFFLINE=1 "$HF_PY" "$BENCH/peer_hf.py" --out "$OUT/round${i}_hf.json" > /dev/null
  echo "round $i: peer_trl_ppo.py" >&2
  HF_HUB_OFFLINE=1 "$PPO_PY" "$BENCH/peer_trl_ppo.py" --out "$OUT/round${i}_trl_ppo.json" > /dev/null
done
"$PY" - "$OUT" "$ROUNDS" <<'EOF'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rows = [("train tokens/s", "train_tokens_per_s", "hf"), ("generate new tokens/s", "generate_tokens_per_s", "hf"),
        ("RM pairs/s", "rm_pairs_per_s", "hf"), ("PPO iteration s (TRL 1.12 PPOTrainer)", "ppo_iter_s", "trl_ppo"),
        ("PPO rollout s", "ppo_rollout_s", "trl_ppo")]   # (label, key in both JSONs, peer)
runs = [{side: json.load(open(f"{out}/round{i}_{side}.json")) for side in ("ours", "hf", "trl_ppo")}
        for i in range(1, rounds + 1)]
print(f"{'workload':40s} " + " | ".join(f"round {i}: ours / peer = ratio" for i in range(1, rounds + 1)))
for label, key, peer in rows:
    cells = []
    for r in runs:
        a, b = r["ours"].get(key), r[peer].get(key)
        cells.append(f"{a:.4g} / {b:.4g} = {a / b:.2f}x" if a and b else f"{a} / {b}")
    print(f"{label:40s} " + " | ".join(cells))
print("(ratio: ours / peer; above 1 is faster for the rates, below 1 is faster for the times)")
EOF
