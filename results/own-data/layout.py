"""Lay out the shared FSDD recordings as a class-per-folder tree and the ESC-10 clips as a csv (links to the shared
files), as in the README's worked example. Usage: python layout.py SHARED_DATA_DIR OUT_DIR"""
import csv
import re
import sys
from pathlib import Path

shared, out = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
for f in sorted((shared / "fsdd" / "recordings").glob("*.wav")):
    digit, speaker, take = re.fullmatch(r"(\d)_([a-z]+)_(\d+)\.wav", f.name).groups()
    split = "test" if int(take) < 5 else "val" if int(take) < 10 else "train"
    folder = out / "fsdd" / split / digit
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f.name).symlink_to(f)
esc = shared / "esc50-subset"
(out / "esc10").mkdir(parents=True, exist_ok=True)
with open(esc / "meta" / "esc50.csv", newline="") as src, open(out / "esc10" / "esc10.csv", "w", newline="") as dst:
    rows = csv.writer(dst)
    rows.writerow(["path", "label", "fold", "target"])
    for row in csv.DictReader(src):
        rows.writerow([esc / "audio" / row["filename"], row["category"], row["fold"], row["target"]])
