#!/usr/bin/env bash
# The official loaders against the folder / csv sources, seed 0, from a clean worktree of one commit.
# Usage: run.sh WORKTREE_PARENT SHARED_DATA_DIR RESULTS_DIR  (WORKTREE_PARENT holds the checkout as audio_ticl/)
set -euo pipefail
wt=$1; shared=$(realpath "$2"); res=$(realpath "$3"); layout=/tmp/own-data
rm -rf "$layout" && python "$res/layout.py" "$shared" "$layout"
ticl() { PYTHONPATH=$wt python -m audio_ticl.benchmark "$@"; }
resume() { [[ -d $1 ]] && echo --resume || true; }  # continue a killed run
ticl run --preset fsdd-cpu --data-root "$shared/fsdd" --out "$res/fsdd-official" $(resume "$res/fsdd-official") --no-progress
ticl run --preset fsdd-cpu --data-root "$layout/fsdd" --set data.source=folder \
  --set data.options='{split: folders}' --set features.mean=-6.845978 --set features.std=5.5654526 \
  --set features.freqm=36 --set features.timem=20 --out "$res/fsdd-folder" $(resume "$res/fsdd-folder") --no-progress
ticl run --preset esc50-cpu --data-root "$shared/esc50-subset" --out "$res/esc10-official" $(resume "$res/esc10-official") --no-progress
ticl run --preset esc50-cpu --data-root "$layout/esc10/esc10.csv" --set data.source=csv \
  --set data.options='{fold_column: fold, train_folds: [1, 2, 3], val_folds: [4], test_folds: [5], id_column: target}' \
  --set features.mean=-6.6268077 --set features.std=5.358466 --set features.freqm=24 --set features.timem=96 \
  --out "$res/esc10-csv" $(resume "$res/esc10-csv") --no-progress
