"""Seed 0 of a committed multi-seed run folder against the same seed rerun through `ticl sweep`, cell by cell: each
method's search (chosen values, every trial's validation score) and its seed-0 run (accuracy matrix R, per-clip
outcomes, hyperparameters). Usage: python compare.py COMMITTED_RUN SWEEP_FOLDER [SEED]"""
import json
import sys
from pathlib import Path

committed, sweep = Path(sys.argv[1]), Path(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0


def load(path: Path) -> dict:
    return json.loads(path.read_text())


print("| method | commit (committed / sweep) | chosen equal | max abs trial-score diff | hyperparameters equal | "
      "R equal | max abs R diff (points) | test outcomes that differ | avg acc (committed / sweep) |")
print("|---|---|---|---|---|---|---|---|---|")
for method in [m["name"] for m in __import__("yaml").safe_load((committed / "config.yaml").read_text())["methods"]]:
    a = load(committed / method / f"seed{seed}" / "summary.json")
    b = load(sweep / f"method={method},seed={seed}" / method / "summary.json")
    sa = load(committed / "tuning" / method / "search.json")
    sb = load(sweep / f"search,method={method}" / "tuning" / method / "search.json")
    scores = max(abs(x["score"] - y["score"]) for x, y in zip(sa["trials"], sb["trials"]))
    ra, rb = a["accuracy_matrix"], b["accuracy_matrix"]
    diff = max(abs(x - y) for row_a, row_b in zip(ra, rb) for x, y in zip(row_a, row_b)) * 100
    clips = sum(ca != cb for row_a, row_b in zip(a["correct"], b["correct"]) for xa, xb in zip(row_a, row_b)
                for ca, cb in zip(xa, xb))
    commits = f"{a['environment']['git_commit'][:7]} / {b['environment']['git_commit'][:7]}"
    print(f"| {method} | {commits} | {sa['chosen'] == sb['chosen']} | {scores:.4f} | "
          f"{a['hyperparameters'] == b['hyperparameters']} | {ra == rb} | {diff:.1f} | {clips} | "
          f"{100 * a['avg_accuracy']:.1f} / {100 * b['avg_accuracy']:.1f} |")
