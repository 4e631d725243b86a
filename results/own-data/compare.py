"""Compare two run folders method by method: accuracy matrix, per-clip outcomes, hyperparameters and every search
trial's validation score. Usage: python compare.py RUN_A RUN_B"""
import json
import sys
from pathlib import Path

a, b = Path(sys.argv[1]), Path(sys.argv[2])
print(f"| method | chosen (A / B) | search scores equal | R equal | max abs R diff | test clips that differ |")
print("|---|---|---|---|---|---|")
for folder in sorted(p for p in a.iterdir() if (p / "summary.json").is_file()):
    m = folder.name
    sa, sb = (json.loads((r / m / "summary.json").read_text()) for r in (a, b))
    ta, tb = (json.loads((r / "tuning" / m / "search.json").read_text()) if (r / "tuning" / m).is_dir() else None
              for r in (a, b))
    scores = "-" if ta is None else str([t["score"] for t in ta["trials"]] == [t["score"] for t in tb["trials"]])
    chosen = "-" if ta is None else f"{ta['chosen']} / {tb['chosen']}"
    diff = max(abs(x - y) for ra, rb in zip(sa["accuracy_matrix"], sb["accuracy_matrix"]) for x, y in zip(ra, rb))
    clips = sum(ca != cb for ra, rb in zip(sa["correct"], sb["correct"]) for xa, xb in zip(ra, rb)
                for ca, cb in zip(xa, xb))
    print(f"| {m} | {chosen} | {scores} | {sa['accuracy_matrix'] == sb['accuracy_matrix']} | {diff:.6f} | {clips} |")
