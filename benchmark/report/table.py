"""Paper-style TI-CL comparison table from run folders: Markdown, CSV or LaTeX (booktabs).

The numbers come from ``collect.method_frame`` (mean over seeds, sample std beside it). Markdown and LaTeX
show formatted cells with the best value of each column in bold; CSV keeps the plain numbers (means and
``_std`` columns) so that it reads back into pandas unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import pandas as pd
# pandas escapes cells and headers itself but has no public escaper for free text (the caption); this is
# the function its Styler uses for escape="latex", so caption and cells are escaped alike
from pandas.io.formats.style_render import _escape_latex

from .collect import BYTES_PER_PARAM, load_runs, method_frame, task_columns

Format = Literal["md", "csv", "latex"]
HIGHER, LOWER = 1, -1
PM = " ± "


@dataclass(frozen=True)
class Column:
    """One metric column: where its value is, how it is printed and which direction is better."""

    key: str
    header: str
    better: int
    scale: float = 1.0
    #: decimals after the point; None: three significant digits
    decimals: int | None = 1
    #: a parameter count, printed as 194, 44.2K, 1.23M
    count: bool = False
    #: whether it varies between seeds (then shown as mean ± std); parameter counts and FLOPs do not
    spread: bool = True

    def rounded(self, v: float) -> float:
        """The value as printed, so that cells that read the same compare equal when the best is picked."""
        x = v * self.scale
        return round(x, self.decimals) if self.decimals is not None else float(f"{x:.3g}")

    def show(self, v: float) -> str:
        x = self.rounded(v)
        if self.count and abs(x) >= 1e3:
            return f"{x / 1e6:.3g}M" if abs(x) >= 1e6 else f"{x / 1e3:.3g}K"
        if self.decimals is None:
            return f"{x:.3g}"
        return f"{x:.{self.decimals}f}"


def columns(frame: pd.DataFrame) -> list[Column]:
    """The table's metric columns, per-task accuracies first (as many as the longest task sequence)."""
    return [
        *(Column(c, f"T{c[len('acc_T'):]}", HIGHER, scale=100) for c in task_columns(frame)),
        Column("avg_accuracy", "Avg acc", HIGHER, scale=100),
        Column("avg_forgetting", "Forgetting", LOWER, scale=100),
        Column("bwt", "BWT", HIGHER, scale=100),
        Column("trainable_params", "Params", LOWER, decimals=None, count=True, spread=False),
        Column("pct_full_ft", "% of FT", LOWER, decimals=None, spread=False),
        Column("storage_mb", "Storage (MB)", LOWER, decimals=None, spread=False),
        Column("gflops_per_sample", "GFLOPs", LOWER, decimals=None, spread=False),
        Column("train_seconds", "Time (s)", LOWER),
    ]


ID_HEADERS = {"method": "Method", "strategy": "Strategy", "pet": "PET", "mixer": "Mixer"}


def best_mask(frame: pd.DataFrame, cols: Sequence[Column]) -> pd.DataFrame:
    """True where a cell holds its column's best value, compared as printed (cells that read the same are all
    marked) among the ranked rows on the same task sequence (numbers on other tasks are not comparable).
    A column where every contending row ties marks nothing: a bold on every row says nothing."""
    mask = pd.DataFrame(False, index=frame.index, columns=[c.key for c in cols])
    ranked = frame["ranked"].astype(bool)
    for _, group in frame[ranked].groupby("benchmark", sort=False):
        for c in cols:
            shown = group[c.key].dropna().map(c.rounded)
            if shown.nunique() < 2:
                continue
            target = shown.max() if c.better == HIGHER else shown.min()
            mask.loc[shown.index[shown == target], c.key] = True
    return mask


def _cell(row: pd.Series, c: Column) -> str:
    v = row[c.key]
    if pd.isna(v):
        return "–"
    text = c.show(v)
    std = row.get(f"{c.key}_std")
    if c.spread and row["n_seeds"] > 1 and not pd.isna(std):
        text += PM + c.show(std)
    return text


def display_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells as text with plain column headers, best-value mask of the same shape)."""
    cols = columns(frame)
    shown = frame[list(ID_HEADERS)].rename(columns=ID_HEADERS)
    for c in cols:
        shown[c.header] = [_cell(row, c) for _, row in frame.iterrows()]
    mask = best_mask(frame, cols).rename(columns={c.key: c.header for c in cols})
    mask = pd.concat([pd.DataFrame(False, index=frame.index, columns=list(ID_HEADERS.values())), mask], axis=1)
    return shown, mask


def _arrows(frame: pd.DataFrame) -> dict[str, int]:
    """Metric header -> which direction is better."""
    return {c.header: c.better for c in columns(frame)}


def notes(frame: pd.DataFrame) -> list[str]:
    """The footnote: what the columns mean, which direction is better, what is left out of the ranking."""
    lines = [
        "Best value per column in bold (↑ higher is better: task and average accuracy, BWT; ↓ lower is better: "
        "forgetting, parameters, storage, GFLOPs, time).",
        "T0, T1, ...: accuracy (%) on each task after the last task; Avg acc: their mean; forgetting and BWT in "
        "percentage points.",
    ]
    names = set(frame["task_names"])
    if len(names) == 1 and "" not in names:
        lines.append("Tasks: " + "; ".join(f"T{j} {n}" for j, n in enumerate(names.pop().split(" | "))) + ".")
    elif "" in names:
        lines.append("The seeds have different tasks (seeded class order): Tj is each seed's j-th task.")
    if frame["benchmark"].nunique() > 1:
        lines.append(
            f"The rows are on {frame['benchmark'].nunique()} different task sequences; the best is marked among "
            "the rows on the same one."
        )
    refs = frame.drop_duplicates("full_ft_reference")
    by_row = [r for r in refs["full_ft_reference"] if r != "backbone"]
    sources = []
    if by_row:
        sources.append(f"the trainable parameters of the fine-tuning row{'s' if len(by_row) > 1 else ''} "
                       f"({', '.join(by_row)})")
    if "backbone" in set(refs["full_ft_reference"]):
        sources.append("the backbone's parameter count (no fine-tuning row on the same backbone)")
    lines.append(
        "Params: trainable parameters, mean per task (PET modules and head, or the whole model); "
        f"% of FT: relative to {' or '.join(sources)}."
    )
    lines.append(
        f"Storage: every task's own parameters (PET modules and head) at {BYTES_PER_PARAM} bytes, summed over the "
        "tasks; replay buffers and regulariser state are not included. GFLOPs: one sample's forward pass, mean "
        "over tasks. Time: training time, summed over the tasks."
    )
    multi = frame[frame["n_seeds"] > 1]
    if len(multi):
        counts = sorted(set(multi["n_seeds"]))
        over = f"{counts[0]} seeds" if len(counts) == 1 else ", ".join(
            f"{m}: {n}" for m, n in zip(multi["method"], multi["n_seeds"])) + " seeds"
        lines.append(f"Mean ± sample std over {over}; parameters, storage and GFLOPs do not vary with the seed.")
    unranked = frame.loc[~frame["ranked"].astype(bool), "method"].tolist()
    if unranked:
        lines.append(
            f"Not ranked: {', '.join(unranked)} (trains once on every task at the end: an upper bound, whose "
            "forgetting and BWT are artefacts of that schedule)."
        )
    return lines


# --------------------------------------------------------------------------------------------- renderers
def to_markdown(frame: pd.DataFrame) -> str:
    shown, mask = display_frame(frame)
    bold = shown.where(~mask, "**" + shown + "**")
    arrows = _arrows(frame)
    bold.columns = [f"{h} {'↑' if arrows[h] == HIGHER else '↓'}" if h in arrows else h for h in bold.columns]
    align = ["left"] * len(ID_HEADERS) + ["right"] * len(arrows)
    table = bold.to_markdown(index=False, colalign=align, disable_numparse=True)
    return table + "\n\n" + "\n".join(f"- {line}" for line in notes(frame)) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """Plain numbers (means, ``_std`` columns, the reference used for % of full FT), one row per method."""
    return frame.to_csv(index=False)


def _latex_text(text: str) -> str:
    """Unicode that pdflatex's default setup may not know, written as LaTeX (after escaping)."""
    return text.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("–", "--")


def _latex_number(text: str) -> str:
    return _latex_text(text).replace("-", "$-$") if text != "–" else "--"


def to_latex(frame: pd.DataFrame, caption: str = "Task-incremental continual learning results.",
             label: str = "tab:ticl") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``), names escaped for LaTeX."""
    shown, mask = display_frame(frame)
    arrows = _arrows(frame)
    styler = shown.style.hide(axis="index")
    styler = styler.format(escape="latex", subset=list(ID_HEADERS.values()))
    styler = styler.format(_latex_number, escape="latex", subset=list(arrows))
    escaped = {_escape_latex(h): better for h, better in arrows.items()}  # the formatter sees escaped text
    styler = styler.format_index(
        lambda h: h + {HIGHER: r" $\uparrow$", LOWER: r" $\downarrow$"}.get(escaped.get(h), ""),
        escape="latex", axis=1,
    )
    styler = styler.apply(lambda _: mask.map(lambda best: "textbf:--rwrap;" if best else ""), axis=None)
    note = " ".join(notes(frame))
    full_caption = caption.rstrip() + " " + _latex_text(_escape_latex(note))
    latex = styler.to_latex(
        caption=full_caption,
        label=label,
        position="t",
        position_float="centering",
        hrules=True,
        column_format="l" * len(ID_HEADERS) + "r" * len(arrows),
    )
    return latex.replace("\\centering\n", "\\centering\n\\small\n\\setlength{\\tabcolsep}{4pt}\n", 1)


def render(frame: pd.DataFrame, fmt: Format) -> str:
    if fmt == "md":
        return to_markdown(frame)
    if fmt == "csv":
        return to_csv(frame)
    if fmt == "latex":
        return to_latex(frame)
    raise ValueError(f"unknown table format '{fmt}' (md, csv, latex)")


def build_table(run_dirs: Iterable[Path], fmt: Format = "md") -> str:
    """The table of every method of the given run folders (refuses unfinished folders)."""
    return render(method_frame(load_runs(run_dirs)), fmt)
