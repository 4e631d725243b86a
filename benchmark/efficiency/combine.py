"""``ticl efficiency --combine``: one table and one pair of figures from several runs' ``efficiency.csv`` files,
without measuring anything. Long sweeps are measured in parts (a 22k-token case wants one repeat, a 600-token case
five); the parts must agree on what makes their numbers comparable (device, dtype, threads, scope, batch), and a
case may come from one part only."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from audio_ticl.benchmark.efficiency.measure import COLUMNS
from audio_ticl.benchmark.errors import OptionError

#: columns that must hold one value across the combined files
SAME = ("device", "dtype", "threads", "scope", "batch")
#: what identifies a case
CASE = ("size", "mixer", "pet", "frames", "stride")
#: text columns (an empty cell reads back as NaN)
TEXT = ("memory_method", "skipped")


def read_part(path: Path) -> pd.DataFrame:
    """One run's ``efficiency.csv``, checked to have every column (``skipped`` may be missing: older runs)."""
    if not path.is_file():
        raise OptionError(f"--combine: {path} is not a file (expected a run's efficiency.csv)")
    df = pd.read_csv(path)
    if "skipped" not in df.columns:
        df["skipped"] = ""
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise OptionError(f"--combine: {path} lacks the column(s) {', '.join(missing)}; it is not an efficiency.csv")
    for column in TEXT:
        df[column] = df[column].fillna("").astype(str)
    return df[COLUMNS].assign(source=str(path))


def combine(paths: list[Path]) -> pd.DataFrame:
    """The rows of every file, ordered by token count (cases in their first file's order within a length)."""
    df = pd.concat([read_part(Path(p)) for p in paths], ignore_index=True)
    for column in SAME:
        values = sorted(set(df[column].astype(str)))
        if len(values) > 1:
            by_file = "; ".join(f"{src}: {', '.join(sorted(set(g[column].astype(str))))}"
                                for src, g in df.groupby("source", sort=False))
            raise OptionError(f"--combine: the files differ in {column} ({by_file}); their numbers are not one table")
    twice = df[df.duplicated(list(CASE), keep=False)]
    if not twice.empty:
        first = twice.iloc[0]
        case = ", ".join(f"{c} {first[c]}" for c in CASE)
        raise OptionError(f"--combine: the case ({case}) is in more than one file: "
                          f"{', '.join(dict.fromkeys(twice['source']))}")
    order = {mixer: i for i, mixer in enumerate(dict.fromkeys(df["mixer"]))}
    df = df.assign(_m=df["mixer"].map(order)).sort_values(["tokens", "_m"], kind="stable")
    return df.drop(columns="_m").reset_index(drop=True)
