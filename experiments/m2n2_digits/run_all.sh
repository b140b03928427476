#!/usr/bin/env bash
# Every run behind the README table, one after the other (the machine is shared).
# Usage: bash experiments/m2n2_digits/run_all.sh   (from the repository root)
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p results
run() { python run.py "$@"; }

run --mode scratch --method m2n2 --evals 50000 --seeds 0 1 2 --out results/scratch_m2n2.json
for rule in csa tpa; do
  run --mode scratch --method cmaes --cma-sigma "$rule" --evals 50000 --seeds 0 1 2 \
      --out "results/scratch_cmaes_${rule}.json"
done
run --mode experts --method m2n2 --evals 10000 --seeds 0 1 2 --out results/experts_m2n2.json
run --mode experts --method slerp-grid --out results/experts_slerp_grid.json
for ablation in no-attraction no-split-point ga; do
  run --mode experts --method m2n2 --ablation "$ablation" --evals 10000 --seeds 0 1 2 \
      --out "results/experts_m2n2_${ablation}.json"
done
for ablation in no-attraction no-split-point ga; do
  run --mode scratch --method m2n2 --ablation "$ablation" --evals 50000 --seeds 0 1 2 \
      --out "results/scratch_m2n2_${ablation}.json"
done

# Five expert pairs (seeds 42, 0, 1, 2, 3) at the released learning rate and at the
# learning rate whose SLERP baseline matches the paper's (see the README)
PAIRS=(--expert-seeds 42 0 1 2 3)
run --mode experts --method slerp-grid "${PAIRS[@]}" --expert-lr 0.003 \
    --out results/pairs_lr0.003_slerp_grid.json
run --mode experts --method m2n2 --evals 10000 --seeds 0 "${PAIRS[@]}" --expert-lr 0.003 \
    --out results/pairs_lr0.003_m2n2.json
run --mode experts --method slerp-grid "${PAIRS[@]}" --expert-lr 0.015 \
    --out results/pairs_lr0.015_slerp_grid.json
run --mode experts --method m2n2 --evals 10000 --seeds 0 1 2 "${PAIRS[@]}" --expert-lr 0.015 \
    --out results/pairs_lr0.015_m2n2_none.json
for ablation in no-attraction no-split-point ga; do
  run --mode experts --method m2n2 --ablation "$ablation" --evals 10000 --seeds 0 \
      "${PAIRS[@]}" --expert-lr 0.015 --out "results/pairs_lr0.015_m2n2_${ablation}.json"
done
