"""Log-log figures of ``ticl efficiency``: time and peak memory against tokens, one line per case label (mixer,
plus PET method, size or stride where several were measured), PNG and PDF, in the house style of
``benchmark.report.plots`` (its colour / marker / dash cycle)."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.ticker
import pandas as pd

from audio_ticl.benchmark.report.plots import method_styles, plt, save_both

#: figure stem -> its panels: (column, title, y label)
FIGURES = {
    "time_vs_tokens": [("fwd_ms", "forward", "median time (ms)"), ("train_ms", "train step", "median time (ms)")],
    "memory_vs_tokens": [("peak_mb", "forward", "peak memory (MB)"), ("train_peak_mb", "train step",
                                                                       "peak memory (MB)")],
}


def labels(df: pd.DataFrame) -> pd.Series:
    """The line of each row: its mixer, and whichever of PET method, size and stride vary in ``df``."""
    parts = [df["mixer"]]
    for column, prefix in (("pet", "pet "), ("size", ""), ("stride", "stride ")):
        if df[column].nunique() > 1:
            parts.append(prefix + df[column].astype(str))
    out = parts[0]
    for part in parts[1:]:
        out = out + ", " + part
    return out


def _minor_label(value: float, _pos: int) -> str:
    """Minor log ticks labelled at 2 and 5 of each decade only, so that a short axis still reads."""
    if value <= 0:
        return ""
    lead = round(value / 10 ** math.floor(math.log10(value)))
    return f"{value:g}" if lead in (2, 5) else ""


def _figure(df: pd.DataFrame, panels: list[tuple[str, str, str]], title: str):
    panels = [p for p in panels if (df[p[0]] > 0).any()]  # NaN (not measured) and 0 have no place on a log axis
    if not panels:
        return None
    df = df.assign(label=labels(df))
    styles = method_styles(list(dict.fromkeys(df["label"])))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False, layout="constrained")
    for ax, (column, panel, ylabel) in zip(axes[0], panels):
        for label, group in df.groupby("label", sort=False):
            g = group[group[column] > 0].sort_values("tokens")
            ax.plot(g["tokens"], g[column], label=label, markersize=5, **styles[label])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sorted(set(df["tokens"])))  # the measured lengths, in plain numbers
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_minor_label))
        ax.set_xlabel("patch tokens (log)")
        ax.set_ylabel(f"{ylabel} (log)")
        ax.set_title(panel, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][0].legend(fontsize=8)
    first = df.iloc[0]
    fig.suptitle(f"{title}: scope {first['scope']}, {first['device']} {first['dtype']}, batch {first['batch']}",
                 fontsize=10)
    return fig


def plot(df: pd.DataFrame, out: Path) -> list[Path]:
    """``time_vs_tokens`` and ``memory_vs_tokens`` as PNG and PDF in ``out`` (a figure with nothing measured is
    left out)."""
    paths = []
    for stem, panels in FIGURES.items():
        fig = _figure(df, panels, stem.replace("_", " "))
        if fig is not None:
            paths += save_both(fig, out, stem)
    return paths
