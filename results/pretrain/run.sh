#!/bin/bash
# Issue 13's comparison, from the clean worktree /work/pc-run2/audio_ticl. Two lanes of one thread each.
# RESUME=--resume ./run.sh continues after a kill.
cd /work/pc-run2/audio_ticl
export PYTHONPATH=/work/pc-run2
T="python -m audio_ticl.benchmark"
O=/work/pretrain-runs
D=/work/shared/data
FRAME="--set features.kind=mfcc --set features.n_mfcc=128 --set model.patch_size=[128,2] --set model.fstride=128 --set model.tstride=2"
pre() {  # preset out
  if [ ! -f $O/pretrain/$2/summary.json ]; then
    $T pretrain --preset $1 --data-root $D/fsdd --set sources.1.root=$D/esc50-subset --set threads=1 --out $O/pretrain/$2 --no-progress $RESUME >> $O/pretrain-$2.log 2>&1
  fi
}
down() {  # dataset-folder data-root preset backbone extra-args...
  local ds=$1 root=$2 preset=$3 name=$4; shift 4
  $T run --preset $preset --data-root $D/$root --seeds 0,1,2 --set train.threads=1 --no-progress \
    --set methods.adapters.name=$name-adapters --set methods.linear-probe.name=$name-linear-probe "$@" \
    --out $O/$ds/$name $RESUME >> $O/$ds-$name.log 2>&1
}
waitfor() { while [ ! -f $1 ]; do sleep 30; done; }
MSPM="--set model.init=ssast:$O/pretrain/mspm/ssast.pth"
MFCC="--set model.init=ssast:$O/pretrain/mfcc/ssast.pth"
laneA() {
  pre mspm-fsdd-esc10 mspm
  down fsdd fsdd pretrain-compare patch-mspm $MSPM
  down fsdd fsdd pretrain-compare patch-scratch --set model.init=random
  down fsdd fsdd pretrain-compare patch-upstream
  down fsdd fsdd pretrain-compare frame-scratch --set model.init=random $FRAME
  waitfor $O/pretrain/mfcc/summary.json
  down fsdd fsdd pretrain-compare frame-mfcc $MFCC $FRAME
  date > $O/A.DONE
}
laneB() {
  waitfor /work/ssamba-runs/fsdd.DONE
  pre mfcc-fsdd-esc10 mfcc
  down esc10 esc50-subset pretrain-compare-esc50 frame-mfcc $MFCC $FRAME
  down esc10 esc50-subset pretrain-compare-esc50 frame-scratch --set model.init=random $FRAME
  down esc10 esc50-subset pretrain-compare-esc50 patch-scratch --set model.init=random
  down esc10 esc50-subset pretrain-compare-esc50 patch-upstream
  waitfor $O/pretrain/mspm/summary.json
  down esc10 esc50-subset pretrain-compare-esc50 patch-mspm $MSPM
  date > $O/B.DONE
}
laneA &
laneB &
wait
