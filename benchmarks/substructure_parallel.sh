#!/usr/bin/env bash
# Train several (candidate, seed) runs of benchmarks/substructure_latent.py side by side, one
# process each, on one machine (a GPU machine: fit(device="auto") picks the GPU, and the
# processes share it), then wait for all of them. Only the train stage: evaluate afterwards
# with `--stages eval` on any machine (the run folders are portable).
#
#   benchmarks/substructure_parallel.sh RUN_DIR BUDGET_MIN THREADS "CANDIDATE ..." "SEED ..."
#
# e.g. (the session of 2026-12-04, one H200):
#   benchmarks/substructure_parallel.sh runs/substructure_gpu 5.5 2 "aux-big aux-big-time" "0 1 2"
#
# PYTHON names the interpreter (default: python). Each run logs to
# RUN_DIR/<candidate>-s<seed>.log; a run whose budget ends first writes PROGRESS.json and the
# same command continues it (fit resumes from last.pt).
set -euo pipefail
if [ "$#" -ne 5 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
run_dir=$1 budget=$2 threads=$3 candidates=$4 seeds=$5
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$run_dir"
pids=()
for cand in $candidates; do
    for seed in $seeds; do
        "${PYTHON:-python}" "$here/substructure_latent.py" --stages train --candidate "$cand" \
            --seed "$seed" --threads "$threads" --budget-min "$budget" \
            --run-dir "$run_dir" > "$run_dir/$cand-s$seed.log" 2>&1 &
        pids+=("$!")
    done
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
exit "$status"
