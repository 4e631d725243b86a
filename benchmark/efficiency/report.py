"""``efficiency.csv`` (plain numbers) and ``efficiency.md`` (formatted table, ratio columns and notes).

Ratios are "x faster than" (or "x less memory than") a reference: the reference's value divided by the row's at
the same geometry, so above 1 means the row is faster or smaller. Mixer ratios compare with the first mixer
listed at the same size and PET method; PET ratios compare with no PET method (``none``) at the same size and
mixer.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from audio_ticl.benchmark.efficiency.cases import DTYPES
from audio_ticl.benchmark.efficiency.choices import NO_PET
from audio_ticl.benchmark.efficiency.measure import COLUMNS, Row
from audio_ticl.benchmark.efficiency.memory import METHOD_NOTES
from audio_ticl.benchmark.results import write_csv, write_text
from audio_ticl.models.attention import fta_auto_path

GEOMETRY = ["scope", "frames", "stride"]
#: metric -> the header of its ratio column; a ratio is reference / row
METRICS = {
    "fwd_ms": "fwd: x faster than {}",
    "train_ms": "train: x faster than {}",
    "peak_mb": "x less memory than {}",
    "train_peak_mb": "train: x less memory than {}",
}


def frame(rows: Sequence[Row]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)


def _ratios(df: pd.DataFrame, column: str, reference: str, same: list[str]) -> pd.DataFrame:
    """For every metric measured: reference value / row value, matched on ``same``; NaN for the reference rows."""
    metrics = [m for m in METRICS if df[m].notna().any()]
    ref = df[df[column] == reference][same + metrics]
    merged = df[same].merge(ref, on=same, how="left", suffixes=("", "_ref"))
    out = pd.DataFrame(index=df.index)
    for m in metrics:
        ratio = merged[m].to_numpy() / df[m].to_numpy()
        out[METRICS[m].format(reference)] = pd.Series(ratio, index=df.index).where(df[column] != reference)
    return out


def with_ratios(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` and its ratio columns: against the first mixer (if several) and against ``none`` (if it and a PET
    method were measured)."""
    parts = [df]
    mixers = list(dict.fromkeys(df["mixer"]))
    if len(mixers) > 1:
        parts.append(_ratios(df, "mixer", mixers[0], [*GEOMETRY, "size", "pet"]))
    pets = set(df["pet"])
    if NO_PET in pets and len(pets) > 1:
        parts.append(_ratios(df, "pet", NO_PET, [*GEOMETRY, "size", "mixer"]))
    return pd.concat(parts, axis=1)


def _num(v: float) -> str:
    """Three significant digits without exponents (1212, 48.5, 0.731); '-' when not measured."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.1e}"


def _ratio(v: float) -> str:
    return "-" if math.isnan(v) else f"{v:.2f}x"


def _with_iqr(median: float, iqr: float) -> str:
    return "-" if math.isnan(median) else f"{_num(median)} ({_num(iqr)})"


def markdown_table(df: pd.DataFrame) -> str:
    """The formatted table: identity, geometry, times (IQR in brackets), throughput, FLOPs, memory, ratios."""
    full = with_ratios(df)
    cells = pd.DataFrame({
        "size": df["size"], "mixer": df["mixer"], "pet": df["pet"], "frames": df["frames"].astype(str),
        "grid": df["grid"], "tokens": df["tokens"].astype(str),
        "fwd ms (IQR)": [_with_iqr(m, q) if not why else "did not fit"
                         for m, q, why in zip(df["fwd_ms"], df["fwd_iqr_ms"], df["skipped"])],
        "tokens/s": df["tokens_per_s"].map(lambda v: "-" if math.isnan(v) else f"{v:,.0f}"),
        "GFLOPs": df["gflops"].map(_num),
        "peak MB": df["peak_mb"].map(_num),
    })
    if df["train_ms"].notna().any():
        cells["train ms (IQR)"] = [_with_iqr(m, q) for m, q in zip(df["train_ms"], df["train_iqr_ms"])]
        cells["train peak MB"] = df["train_peak_mb"].map(_num)
    for header in full.columns[len(df.columns):]:
        cells[header] = full[header].map(_ratio)
    return cells.to_markdown(index=False, disable_numparse=True)


def crossovers(df: pd.DataFrame) -> list[str]:
    """For every pair of mixers (same size, PET method, stride), where one overtakes the other in forward time, from
    the lengths both were measured at: "B overtakes A between 4800 and 7200 tokens" (A faster at every measured
    length up to the first, B at every one from the second), or which is faster throughout."""
    lines = []
    mixers = list(dict.fromkeys(df["mixer"]))
    for (size, pet, stride), group in df.groupby(["size", "pet", "stride"], sort=False):
        times = {m: group[group["mixer"] == m].set_index("tokens")["fwd_ms"].dropna() for m in mixers}
        for i, a in enumerate(mixers):
            for b in mixers[i + 1:]:
                common = sorted(set(times[a].index) & set(times[b].index))
                if len(common) < 1:
                    continue
                b_faster = [times[b][t] < times[a][t] for t in common]
                where = f"({size}, pet {pet}, stride {stride}; forward, measured at {', '.join(map(str, common))})"
                if all(b_faster) or not any(b_faster):
                    fast, slow = (b, a) if b_faster[0] else (a, b)
                    lines.append(f"{fast} is faster than {slow} at every length measured {where}")
                    continue
                winner, loser = (b, a) if b_faster[-1] else (a, b)
                wins = b_faster if winner == b else [not f for f in b_faster]
                k = len(wins)
                while k > 0 and wins[k - 1]:
                    k -= 1
                lines.append(f"{winner} overtakes {loser} between {common[k - 1]} and {common[k]} tokens {where}"
                             + ("" if not any(wins[:k]) else "; it was also faster at some shorter lengths"))
    return lines


def notes(df: pd.DataFrame, machine: str, repeats: int | None, warmup: int | None, busy: str = "",
          sources: list[str] | None = None) -> list[str]:
    """What the table's numbers are and where they were measured; ``sources``: the files a combined table came
    from (their repeats are in their own notes)."""
    first = df.iloc[0]
    scope = (
        "the mixer's attention op alone (TokenMixer.attend) on batch x heads x (tokens + prefix) x head_dim q, k, v"
        if first["scope"] == "op" else "the whole backbone's forward_features on a batch x frames x 128 fbank"
    )
    train = (
        "forward + backward of the op" if first["scope"] == "op" else
        "forward, linear head, cross-entropy, backward and an Adam step over every parameter (pet none) or over the "
        "PET modules and the head on a frozen backbone"
    )
    lines = [
        f"machine: {machine}; torch {torch.__version__}; device {first['device']}, {first['threads']} thread(s), "
        f"{first['dtype']}, batch {first['batch']}",
        f"scope {first['scope']}: {scope}; train step: {train}",
        (f"times: median and interquartile range of {repeats} repeats after {warmup} warm-up round(s), the cases "
         "interleaved within every repeat (torch.utils.benchmark.Timer, each measurement 2 untimed calls + 1 timed)"
         if sources is None else
         f"combined from {', '.join(sources)} (ticl efficiency --combine; each measured on its own, its repeats and "
         "machine in its efficiency.md); times: median and interquartile range of each part's repeats"),
        "frames -> grid (frequency x time patches, 16 x 16 patches over 128 mel bins at the stride) -> tokens "
        "(patch tokens; the prefix token, CLS, comes on top); tokens/s = batch x tokens / forward median; "
        "IQR: interquartile range of the repeats, in brackets",
        "GFLOPs: one forward, torch.utils.flop_counter.FlopCounterMode with benchmark.metrics' formulas "
        "(a multiply-add counts 2; softmax, scaling and elementwise ops are not counted)",
        *(METHOD_NOTES[m] for m in dict.fromkeys(df["memory_method"]) if m),
        "x faster / x less memory than R: R's median time (peak memory) divided by the row's at the same geometry, "
        "size and PET method (mixer ratios) or mixer (PET ratios); above 1 means better than R",
    ]
    for _, row in df[df["skipped"] != ""].iterrows():
        lines.append(f"not measured: {row['size']}/{row['mixer']}/{row['pet']} at {row['tokens']} tokens, batch "
                     f"{row['batch']}: {row['skipped']} (estimated before it ran; benchmark.efficiency.fit)")
    if "fta" in set(df["mixer"]):
        lines.append(f"fta computed by {fta_auto_path(first['device'], DTYPES[first['dtype']])}")
    return lines + crossovers(df) + ([busy] if busy else [])


def markdown(df: pd.DataFrame, machine: str, repeats: int | None, warmup: int | None, busy: str = "",
             sources: list[str] | None = None) -> str:
    body = "\n".join(f"- {line}" for line in notes(df, machine, repeats, warmup, busy, sources))
    return f"{markdown_table(df)}\n\n{body}\n"


def write_table(df: pd.DataFrame, out: Path) -> Path:
    """``efficiency.csv`` in ``out``, written atomically (first: the numbers survive a failure after them)."""
    return write_csv(Path(out) / "efficiency.csv", df)


def write_markdown(text: str, out: Path) -> Path:
    return write_text(Path(out) / "efficiency.md", text)
