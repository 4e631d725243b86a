#!/bin/bash
# Rebalanced second half of run.sh (same commit, same commands): lane A's FSDD runs split over both cores.
cd /work/pc-run2/audio_ticl
export PYTHONPATH=/work/pc-run2
T="python -m audio_ticl.benchmark"
O=/work/pretrain-runs
D=/work/shared/data
FRAME="--set features.kind=mfcc --set features.n_mfcc=128 --set model.patch_size=[128,2] --set model.fstride=128 --set model.tstride=2"
down() {  # dataset-folder data-root preset backbone extra-args...
  local ds=$1 root=$2 preset=$3 name=$4; shift 4
  $T run --preset $preset --data-root $D/$root --seeds 0,1,2 --set train.threads=1 --no-progress \
    --set methods.adapters.name=$name-adapters --set methods.linear-probe.name=$name-linear-probe "$@" \
    --out $O/$ds/$name $RESUME >> $O/$ds-$name.log 2>&1
}
waitfor() { while [ ! -f $1 ]; do sleep 30; done; }
MFCC="--set model.init=ssast:$O/pretrain/mfcc/ssast.pth"
laneA2() {
  while kill -0 18578 2>/dev/null; do sleep 20; done
  down fsdd fsdd pretrain-compare patch-scratch --set model.init=random
  down fsdd fsdd pretrain-compare patch-upstream
  date > $O/A.DONE
}
laneB2() {
  waitfor $O/B.DONE
  down fsdd fsdd pretrain-compare frame-scratch --set model.init=random $FRAME
  down fsdd fsdd pretrain-compare frame-mfcc $MFCC $FRAME
  date > $O/B2.DONE
}
laneA2 &
laneB2 &
wait
