#!/usr/bin/env bash
# The small sweep against the same 4 cells run one after another (plain `ticl run`, torch's default 2 threads), on a
# quiet machine, from a clean worktree. Usage: run.sh WORKTREE_PARENT OUT_DIR
set -euo pipefail
wt=$1; out=$(realpath -m "$2"); here=$(dirname "$(realpath "$0")")
export PYTHONPATH=$wt
cd "$wt"
ticl() { python -m audio_ticl.benchmark "$@"; }
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s.%N)
for method in finetune aicl-gsa; do
  for seed in 0 1; do
    ticl run --preset fsdd-cpu --set data.root=/work/shared/data/fsdd --set train.epochs=4 \
      --set tuning.protocol=none --seed $seed --methods $method --out "$out/serial/method=$method,seed=$seed" \
      --no-progress > "$out/serial-$method-$seed.log" 2>&1
  done
done
serial=$(echo "$(date +%s.%N) - $start" | bc)
start=$(date +%s.%N)
ticl sweep run "$here/small.yaml" --out "$out/sweep" --num-cpus 2 --no-progress > "$out/sweep.log" 2>&1
sweep=$(echo "$(date +%s.%N) - $start" | bc)
printf "serial (4 cells one after another, 2 threads each): %.1f s\n" "$serial"
printf "sweep (local Ray, 2 cells at once, 1 thread each): %.1f s\n" "$sweep"
printf "ratio serial / sweep: %.2fx\n" "$(echo "$serial / $sweep" | bc -l)"
