"""Paper-style TI-CL comparison table from run folders: Markdown, CSV or LaTeX (booktabs).

The numbers come from ``collect.method_frame`` (mean over seeds, sample std beside it, a bootstrap interval
over seeds and test clips for the headline metrics). Markdown and LaTeX show formatted cells, e.g.
``85.4 ± 8.0 [80.1, 90.2]`` (mean ± std [95 % interval]), with the best value of each column in bold, a Commit
column and footnotes on what was measured and where it came from; CSV keeps the plain numbers (means, ``_std``,
``_lo`` and ``_hi`` columns) so that it reads back into pandas unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

# pandas escapes cells and headers itself but has no public escaper for free text (the caption); this is
# the function its Styler uses for escape="latex", so caption and cells are escaped alike
from pandas.io.formats.style_render import _escape_latex

from .collect import (
    BOOT_SEED,
    BYTES_PER_PARAM,
    CI_LEVEL,
    N_BOOT,
    load_runs,
    method_frame,
    short_commit,
    task_columns,
)
from .config_notes import config_notes
from .hyperparameters import CONFIG_NOTE

Format = Literal["md", "csv", "latex"]
HIGHER, LOWER = 1, -1
PM = " ± "
#: a value that is not measured (joint's forgetting, BWT and plasticity) or a task a row does not have
MISSING = "-"


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
    #: whether the cell carries the bootstrap interval ``[<key>_lo, <key>_hi]``
    ci: bool = False

    def rounded(self, v: float) -> float:
        """The value as printed, so that cells that read the same compare equal when the best is picked."""
        x = v * self.scale
        return round(x, self.decimals) if self.decimals is not None else float(f"{x:.3g}")

    def show(self, v: float) -> str:
        x = self.rounded(v) + 0.0  # -0.0 + 0.0 is 0.0: no "-0.0" cells
        if self.count and abs(x) >= 1e3:
            return f"{x / 1e6:.3g}M" if abs(x) >= 1e6 else f"{x / 1e3:.3g}K"
        if self.decimals is None:
            return f"{x:.3g}"
        return f"{x:.{self.decimals}f}"


def columns(frame: pd.DataFrame) -> list[Column]:
    """The table's metric columns, per-task accuracies first (as many as the longest task sequence)."""
    return [
        *(Column(c, f"T{c[len('acc_T'):]}", HIGHER, scale=100) for c in task_columns(frame)),
        Column("avg_accuracy", "Avg acc", HIGHER, scale=100, ci=True),
        Column("avg_forgetting", "Forgetting", LOWER, scale=100, ci=True),
        Column("plasticity", "Plasticity", HIGHER, scale=100, ci=True),
        Column("bwt", "BWT", HIGHER, scale=100),
        Column("trainable_params", "Params", LOWER, decimals=None, count=True, spread=False),
        Column("pct_full_ft", "% of FT", LOWER, decimals=None, spread=False),
        Column("storage_mb", "Storage (MB)", LOWER, decimals=None, spread=False),
        Column("gflops_per_sample", "GFLOPs", LOWER, decimals=None, spread=False),
        Column("train_seconds", "Time (s)", LOWER),
    ]


ID_HEADERS = {"method": "Method", "strategy": "Strategy", "pet": "PET", "mixer": "Mixer"}
#: text columns after the metrics
TRAIL_HEADERS = {"git_commit": "Commit"}


def _commits(versions: str) -> list[str]:
    """A row's source versions (several when its seeds ran from different ones), as short hashes."""
    return [short_commit(v) for v in str(versions).split(", ")]


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
        return MISSING
    text = c.show(v)
    std = row.get(f"{c.key}_std")
    if c.spread and row["n_seeds"] > 1 and not pd.isna(std):
        text += PM + c.show(std)
    lo, hi = row.get(f"{c.key}_lo"), row.get(f"{c.key}_hi")
    if c.ci and lo is not None and hi is not None and not (pd.isna(lo) or pd.isna(hi)):
        text += f" [{c.show(lo)}, {c.show(hi)}]"
    return text


def display_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cells as text with plain column headers, best-value mask of the same shape)."""
    cols = columns(frame)
    shown = frame[list(ID_HEADERS)].rename(columns=ID_HEADERS)
    for c in cols:
        shown[c.header] = [_cell(row, c) for _, row in frame.iterrows()]
    shown[TRAIL_HEADERS["git_commit"]] = [", ".join(_commits(v)) for v in frame["git_commit"]]
    mask = best_mask(frame, cols).rename(columns={c.key: c.header for c in cols})
    mask = pd.concat([pd.DataFrame(False, index=frame.index, columns=list(ID_HEADERS.values())), mask,
                      pd.DataFrame(False, index=frame.index, columns=list(TRAIL_HEADERS.values()))], axis=1)
    return shown, mask


def _arrows(frame: pd.DataFrame) -> dict[str, int]:
    """Metric header -> which direction is better."""
    return {c.header: c.better for c in columns(frame)}


def _names(labels) -> str:
    return ", ".join(labels)


def _provenance_notes(frame: pd.DataFrame) -> list[str]:
    """The commits behind the rows: flagged when the table mixes source versions or has dirty rows."""
    lines = ["Commit: the source version each row ran from (short hash; +dirty: the tree had uncommitted changes)."]
    by_commit: dict[str, list[str]] = {}
    for method, versions in zip(frame["method"], frame["git_commit"]):
        for commit in _commits(versions):
            by_commit.setdefault(commit, []).append(method)
    if len(by_commit) > 1:
        lines.append(
            f"Caution: the rows come from {len(by_commit)} source versions, "
            + "; ".join(f"{commit} ({_names(methods)})" for commit, methods in by_commit.items())
            + ": differences between them may come from the code, not only from the methods."
        )
    dirty = frame.loc[frame["dirty"].astype(bool), "method"].tolist()
    if dirty:
        lines.append(
            f"Caution: run from a source tree with uncommitted changes (+dirty; the changes are in each method "
            f"folder's source.diff): {_names(dirty)}."
        )
    return lines


def _hyperparameter_notes(frame: pd.DataFrame) -> list[str]:
    """Where each row's hyperparameters came from: the validation search (protocol, chosen values) or the
    config."""
    from_config = frame.loc[frame["hp_note"] == CONFIG_NOTE, "method"].tolist()
    lines = [f"Hyperparameters of {method}: {note}." for method, note in zip(frame["method"], frame["hp_note"])
             if note != CONFIG_NOTE]
    if from_config:
        which = "all rows" if len(from_config) == len(frame) else _names(from_config)
        lines.append(f"Hyperparameters: {CONFIG_NOTE} ({which}).")
    return lines


def notes(frame: pd.DataFrame) -> list[str]:
    """The footnote: what the columns mean, which direction is better, what is left out of the ranking, where
    the rows came from (commits, hyperparameters)."""
    multi = frame[frame["n_seeds"] > 1]
    lines = [
        "Best value per column in bold (↑ higher is better: task and average accuracy, plasticity, BWT; ↓ lower "
        "is better: forgetting, parameters, storage, GFLOPs, time).",
        "T0, T1, ...: accuracy (%) on each task after the last task; Avg acc: their mean; Forgetting: each earlier "
        "task's best accuracy since it was trained minus its final one, averaged; Plasticity: accuracy on each task "
        "right after training it (mean of R[j][j]); BWT: final minus just-trained accuracy, averaged over the "
        "earlier tasks; forgetting, plasticity and BWT in percentage points.",
    ]
    seeds_part = "the seeds and, within each drawn seed, each task's test clips" if len(multi) else \
        "each task's test clips"
    lines.append(
        f"[low, high]: {100 * CI_LEVEL:g} % percentile bootstrap interval of the "
        f"{'mean over seeds' if len(multi) else 'value'}, resampling {seeds_part} ({N_BOOT} draws, seed "
        f"{BOOT_SEED})."
    )
    no_ci = frame.loc[frame["avg_accuracy_lo"].isna(), "method"].tolist()
    if no_ci:
        lines.append(f"No interval for {_names(no_ci)}: the summary has no per-clip outcomes.")
    names = set(frame["task_names"])
    if len(names) == 1 and "" not in names:
        lines.append("Tasks: " + "; ".join(f"T{j} {n}" for j, n in enumerate(names.pop().split(" | "))) + ".")
    elif "" in names:
        lines.append("The seeds of some rows have different tasks (each its own class order): Tj is each seed's "
                     "j-th task.")
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
    state = frame[frame["method_state_mb"] > 0]
    state_part = ""
    if len(state):
        state_part = " (method state: " + ", ".join(
            f"{m} {v:.3g} MB" for m, v in zip(state["method"], state["method_state_mb"])) + ")"
    lines.append(
        f"Storage: every task's own parameters (PET modules and head) at {BYTES_PER_PARAM} bytes, summed over the "
        "tasks, plus the method's own state kept across tasks after the last one (EWC's Fisher and anchors, SI's "
        f"importances, replay and A-GEM memories){state_part}. GFLOPs: one sample's forward pass, mean over "
        "tasks. Time: training time, summed over the tasks."
    )
    if len(multi):
        counts = sorted(set(multi["n_seeds"]))
        over = f"{counts[0]} seeds" if len(counts) == 1 else ", ".join(
            f"{m}: {n}" for m, n in zip(multi["method"], multi["n_seeds"])) + " seeds"
        lines.append(f"Mean ± sample std over {over}; parameters, storage and GFLOPs are shown without spread.")
    unranked = frame.loc[~frame["ranked"].astype(bool), "method"].tolist()
    if unranked:
        lines.append(
            f"Not ranked: {_names(unranked)} (trained once on every task at the end: an upper bound; forgetting, "
            f"plasticity and BWT are not measured for it and shown as {MISSING})."
        )
    lines += _provenance_notes(frame)
    lines += frame.attrs.get("config_notes", [])
    lines += _hyperparameter_notes(frame)
    return lines


# --------------------------------------------------------------------------------------------- renderers
def to_markdown(frame: pd.DataFrame) -> str:
    shown, mask = display_frame(frame)
    bold = shown.where(~mask, "**" + shown + "**")
    arrows = _arrows(frame)
    bold.columns = [f"{h} {'↑' if arrows[h] == HIGHER else '↓'}" if h in arrows else h for h in bold.columns]
    align = ["left"] * len(ID_HEADERS) + ["right"] * len(arrows) + ["left"] * len(TRAIL_HEADERS)
    table = bold.to_markdown(index=False, colalign=align, disable_numparse=True)
    return table + "\n\n" + "\n".join(f"- {line}" for line in notes(frame)) + "\n"


def to_csv(frame: pd.DataFrame) -> str:
    """Plain numbers (means, ``_std`` columns, bootstrap bounds ``_lo`` / ``_hi``, the reference used for % of
    full FT, commits), one row per method."""
    return frame.to_csv(index=False)


def _latex_text(text: str) -> str:
    """Unicode that pdflatex's default setup may not know, written as LaTeX (after escaping)."""
    return text.replace("±", r"$\pm$").replace("↑", r"$\uparrow$").replace("↓", r"$\downarrow$").replace("–", "--")


def _latex_number(text: str) -> str:
    return _latex_text(text).replace("-", "$-$") if text != MISSING else "--"


def to_latex(frame: pd.DataFrame, caption: str = "Task-incremental continual learning results.",
             label: str = "tab:ticl") -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``), names escaped for LaTeX."""
    shown, mask = display_frame(frame)
    arrows = _arrows(frame)
    styler = shown.style.hide(axis="index")
    styler = styler.format(escape="latex", subset=[*ID_HEADERS.values(), *TRAIL_HEADERS.values()])
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
        column_format="l" * len(ID_HEADERS) + "r" * len(arrows) + "l" * len(TRAIL_HEADERS),
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
    runs = load_runs(run_dirs)
    frame = method_frame(runs)
    frame.attrs["config_notes"] = config_notes([(run.label, run.folder) for run in runs])
    return render(frame, fmt)
