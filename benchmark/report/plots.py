"""Figures (matplotlib, Agg, through pandas): the runner's per-method accuracy-vs-task plot, and the
comparisons of ``ticl plot`` across methods and run folders (curves, accuracy matrices, accuracy vs
parameters), each written as PNG and PDF."""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from ..metrics import average_accuracy_curve  # noqa: E402
from ..results import save_figure  # noqa: E402

if TYPE_CHECKING:
    from .collect import MethodRun


def plot_accuracy_vs_task(R: Sequence[Sequence[float]], task_names: Sequence[str], title: str, path: Path,
                          trained_task_by_task: bool = True) -> Path:
    """Left: mean accuracy over the tasks seen so far after each task. Right: each task's accuracy over time
    (from the task's own training on), so forgetting shows as a falling line. A strategy trained once at the
    end (``trained_task_by_task=False``, joint) has points after the last task only: its earlier rows are not
    measurements of the method."""
    T = len(R)
    steps = [f"T{i}" for i in range(T)]
    measured = [trained_task_by_task or i == T - 1 for i in range(T)]
    fig, (ax_avg, ax_tasks) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    curve = [v if measured[i] else None for i, v in enumerate(average_accuracy_curve(R))]
    pd.Series(curve, index=range(T), dtype=float).plot(ax=ax_avg, marker="o", color="black")
    ax_avg.set_title("average accuracy on tasks seen so far")
    per_task = pd.DataFrame(
        {f"task {j}: {task_names[j]}": [R[i][j] if i >= j and measured[i] else None for i in range(T)]
         for j in range(T)}, dtype=float,
    )
    per_task.plot(ax=ax_tasks, marker="o")
    ax_tasks.set_title("accuracy of each task after training task i")
    for ax in (ax_avg, ax_tasks):
        ax.set_xticks(range(T), steps)
        ax.set_xlabel("after training task")
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
    ax_avg.set_ylabel("test accuracy")
    ax_tasks.legend(fontsize=7, loc="lower left")
    fig.suptitle(title)
    fig.tight_layout()
    try:
        return save_figure(Path(path), fig)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------------------- comparisons across methods
PLOT_KINDS = ("curves", "matrix", "pet")
FORMATS = ("png", "pdf")


def method_styles(labels: Sequence[str]) -> dict[str, dict]:
    """Colour, marker and line style per method, fixed across every figure. Colour alone runs out at ten
    (tab10), so the marker and line style cycle with it and even eleven or more methods stay distinct."""
    colours = [*plt.get_cmap("tab10").colors, "black", "goldenrod"]
    markers = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "p", "h", "*"]
    dashes = ["-", "--", "-.", ":"]
    cycle = (
        matplotlib.cycler(color=colours)
        + matplotlib.cycler(marker=markers)
        + matplotlib.cycler(linestyle=[dashes[i % len(dashes)] for i in range(len(colours))])
    )()
    return {label: next(cycle) for label in labels}


def save_both(fig, out_dir: Path, stem: str) -> list[Path]:
    """``fig`` as ``<stem>.png`` and ``<stem>.pdf`` in ``out_dir`` (atomically), then closed."""
    try:
        return [save_figure(Path(out_dir) / f"{stem}.{ext}", fig) for ext in FORMATS]
    finally:
        plt.close(fig)


def _grid(n: int) -> tuple[int, int]:
    """Rows and columns of small multiples: one row up to four, then as square as it gets."""
    cols = n if n <= 4 else math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _seeds_note(frame: pd.DataFrame) -> str:
    n = frame.groupby("method")["seed"].nunique()
    return "" if n.max() == 1 else f"; mean over {n.max() if n.nunique() == 1 else f'{n.min()}-{n.max()}'} seeds"


def plot_curves(runs: Sequence[MethodRun], out_dir: Path) -> list[Path]:
    """Left: average accuracy over the tasks seen so far after each task, per method, with a ±1 std band over
    seeds. Right: one small panel per method with each task's accuracy from its own training on (R[i][j],
    i >= j), so forgetting shows as a falling line.

    A strategy trained once after the last task (``joint``) has no points before the last task (its earlier rows
    are not measurements): it shows as one point at the last task, an upper bound."""
    from .collect import matrix_frame, trained_task_by_task

    labels = [r.label for r in runs]
    once = {r.label for r in runs if not all(trained_task_by_task(s) for s in r.seeds)}
    styles = method_styles(labels)
    R = matrix_frame(runs)
    R["accuracy"] *= 100
    seen = R[R["measured"]]
    curve = seen.groupby(["method", "seed", "after_task"], sort=False)["accuracy"].mean()
    curve = curve.groupby(["method", "after_task"], sort=False).agg(["mean", "std"]).reset_index()
    per_task = seen.groupby(["method", "after_task", "task"], sort=False)["accuracy"].mean().reset_index()
    T = int(R["after_task"].max()) + 1

    nrows, ncols = _grid(len(labels))
    fig = plt.figure(figsize=(5.5 + 2.6 * ncols, max(4.6, 2.3 * nrows + 1.6)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[5.5, 2.6 * ncols])
    ax = left.subplots()
    for label in labels:
        c = curve[curve["method"] == label]
        style = styles[label]
        name = f"{label} (trained once, at the end)" if label in once else label
        ax.plot(c["after_task"], c["mean"], label=name, markersize=5, **style)
        if c["std"].notna().any():
            ax.fill_between(c["after_task"], c["mean"] - c["std"], c["mean"] + c["std"], color=style["color"],
                            alpha=0.12, linewidth=0)
    ax.set_xticks(range(T), [f"T{i}" for i in range(T)])
    ax.set_xlabel("after training task")
    ax.set_ylabel("average accuracy on tasks seen so far (%)")
    ax.set_ylim(top=101)
    ax.grid(alpha=0.3)
    band = " (band: ±1 std over seeds)" if curve["std"].notna().any() else ""
    ax.set_title(f"Average accuracy{band}", fontsize=10)
    left.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncols=min(3, len(labels)),
                fontsize=8, frameon=False)

    grid = right.subplots(nrows, ncols, sharex=True, squeeze=False)
    axes = grid.ravel()
    task_colours = plt.get_cmap("Dark2" if T <= 8 else "tab20").colors

    def floor(values: pd.Series) -> float:
        return max(0.0, 10 * math.floor(values.min() / 10) - 5)

    common = floor(per_task["accuracy"])
    for k, (ax_m, label) in enumerate(zip(axes, labels)):
        p = per_task[per_task["method"] == label]
        for j, g in p.groupby("task"):
            ax_m.plot(g["after_task"], g["accuracy"], marker="o", markersize=3,
                      color=task_colours[j % len(task_colours)], label=f"task {j}")
        ax_m.set_title(label, fontsize=9)
        ax_m.grid(alpha=0.3)
        low = min(common, floor(p["accuracy"]))
        ax_m.set_ylim(low, 102)
        ax_m.set_xticks(range(T), [f"T{i}" for i in range(T)], fontsize=7)
        ax_m.tick_params(labelsize=7)
        if k % ncols:  # not the first column: y tick labels only where this panel's scale differs
            ax_m.yaxis.set_tick_params(labelleft=low != common)
        else:
            ax_m.set_ylabel("accuracy (%)", fontsize=8)
        if k + ncols >= len(labels):  # the lowest panel of its column: it carries the x axis
            ax_m.xaxis.set_tick_params(labelbottom=True)
            ax_m.set_xlabel("after training task", fontsize=8)
    for ax_m in axes[len(labels):]:
        ax_m.set_axis_off()
    handles = [matplotlib.lines.Line2D([], [], color=task_colours[j % len(task_colours)], marker="o", markersize=3)
               for j in range(T)]
    right.legend(handles, [f"task {j}" for j in range(T)], loc="outside lower center", ncols=min(T, 8), fontsize=8,
                 frameon=False)
    right.suptitle(f"Each task's accuracy from its own training on{_seeds_note(R)}", fontsize=10)
    return save_both(fig, out_dir, "curves")


def plot_matrices(runs: Sequence[MethodRun], out_dir: Path) -> list[Path]:
    """One annotated heatmap of R[i][j] per method (mean over seeds, with the std under it when there are
    several). Entries above the diagonal are greyed out: those tasks were not trained yet (chance level); so are
    the rows before the last of a strategy trained once at the end (joint), which are not measurements."""
    from .collect import matrix_frame

    labels = [r.label for r in runs]
    R = matrix_frame(runs)
    R["accuracy"] *= 100
    stats = R.groupby(["method", "after_task", "task"], sort=False).agg(
        mean=("accuracy", "mean"), std=("accuracy", "std"), measured=("measured", "all"))
    nrows, ncols = _grid(len(labels))
    T = int(R["after_task"].max()) + 1
    size = max(2.6, 0.55 * T + 0.8)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols + 1.0, size * nrows + 0.8), squeeze=False,
                             layout="constrained")
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.88")
    # whole percentages when every entry is one (or the cells are small), else one decimal (82.5, not 82)
    shown = R.loc[R["measured"], "accuracy"]
    whole = T > 6 or bool(np.allclose(shown, shown.round()))
    digits = 0 if whole else 1
    image = None
    for ax, label in zip(axes.ravel(), labels):
        s = stats.loc[label]
        mean = s["mean"].unstack("task")
        std = s["std"].unstack("task")
        n = len(mean)
        trained = s["measured"].unstack("task").to_numpy(dtype=bool)
        image = ax.imshow(np.ma.masked_array(mean.to_numpy(), ~trained), cmap=cmap, vmin=0, vmax=100)
        for i, j in zip(*np.nonzero(trained)):
            v = mean.iat[i, j]
            text = f"{v:.{digits}f}"
            if not pd.isna(std.iat[i, j]):
                text += f"\n±{std.iat[i, j]:.{digits}f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7 if n <= 6 else 5,
                    color="black" if v > 60 else "white")
        ax.set_xticks(range(n), [f"T{j}" for j in range(n)], fontsize=7)
        ax.set_yticks(range(n), [f"T{i}" for i in range(n)], fontsize=7)
        ax.set_title(label, fontsize=9)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(labels):
            ax.set_axis_off()
            continue
        if k + ncols >= len(labels):  # the lowest panel of its column
            ax.set_xlabel("evaluated on task", fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("after training task", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.8, label="test accuracy (%)")
    once = ""
    if (R["trained"] & ~R["measured"]).any():
        once = "; rows before the last of a method trained once at the end"
    fig.suptitle(f"Accuracy matrix R[i][j] (%){_seeds_note(R)}; grey: task not trained yet (chance level){once}",
                 fontsize=10)
    return save_both(fig, out_dir, "matrix")


#: where a point's label may go, tried in this order: (dx, dy) in points, horizontal and vertical alignment
_LABEL_SPOTS = (
    (8, 0, "left", "center"), (-8, 0, "right", "center"), (0, 8, "center", "bottom"), (0, -8, "center", "top"),
    (8, 8, "left", "bottom"), (-8, 8, "right", "bottom"), (8, -8, "left", "top"), (-8, -8, "right", "top"),
)


def _place_labels(ax, points: Sequence[tuple[str, float, float]]) -> None:
    """Label each point at the first of ``_LABEL_SPOTS`` where the text stays inside the axes and clear of
    the labels placed before it (matplotlib does not place labels itself; this greedy search is enough for
    a dozen points)."""
    fig = ax.figure
    fig.draw_without_rendering()  # settle the layout, so that measured extents are final
    renderer = fig.canvas.get_renderer()
    frame_box = ax.get_window_extent(renderer)
    marker = 5 * fig.dpi / 72  # half a marker, in pixels
    taken = [Bbox.from_extents(px - marker, py - marker, px + marker, py + marker)
             for px, py in ax.transData.transform([(x, y) for _, x, y in points])]
    for text, x, y in points:
        chosen = None
        for dx, dy, ha, va in _LABEL_SPOTS:
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                fontsize=8)
            box = label.get_window_extent(renderer).expanded(1.05, 1.15)
            inside = frame_box.containsx(box.x0) and frame_box.containsx(box.x1) and \
                frame_box.containsy(box.y0) and frame_box.containsy(box.y1)
            if inside and not any(box.overlaps(other) for other in taken):
                chosen = (label, box)
                break
            label.remove()
        if chosen is None:  # nowhere free: the first choice, overlapping, beats no label
            dx, dy, ha, va = _LABEL_SPOTS[0]
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                                fontsize=8)
            chosen = (label, label.get_window_extent(renderer))
        taken.append(chosen[1])


def plot_pet(runs: Sequence[MethodRun], out_dir: Path) -> list[Path]:
    """Average accuracy after the last task against trainable parameters per task (log x), one labelled point
    per method; methods that land on the same spot share one label instead of printing over each other."""
    from .collect import method_frame

    frame = method_frame(runs)
    styles = method_styles(list(frame["method"]))
    frame["acc"] = 100 * frame["avg_accuracy"]
    frame["acc_std"] = 100 * frame["avg_accuracy_std"]
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    for _, row in frame.iterrows():
        style = styles[row["method"]]
        ax.errorbar(row["trainable_params"], row["acc"], yerr=None if pd.isna(row["acc_std"]) else row["acc_std"],
                    color=style["color"], marker=style["marker"], markersize=8, capsize=3, linestyle="none")
    ax.set_xscale("log")
    lo, hi = np.log10(frame["trainable_params"].min()), np.log10(frame["trainable_params"].max())
    pad = max(0.35, 0.12 * (hi - lo))
    ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    # one label per spot: points within 2 % in parameters and 0.1 points in accuracy are the same spot
    frame["spot"] = list(zip(np.round(np.log10(frame["trainable_params"]) / 0.01), frame["acc"].round(1)))
    spots = [(", ".join(g["method"]), g["trainable_params"].iloc[0], g["acc"].iloc[0])
             for _, g in frame.groupby("spot", sort=False)]
    ax.margins(y=0.12)
    ax.set_xlabel("trainable parameters per task (log scale)")
    ax.set_ylabel("average accuracy after the last task (%)")
    ax.grid(alpha=0.3, which="both")
    refs = frame["full_ft_params"].unique()
    if len(refs) == 1:  # one backbone: also show the share of full fine-tuning
        ref = float(refs[0])
        top = ax.secondary_xaxis("top", functions=(lambda p: 100 * p / ref, lambda q: q * ref / 100))
        top.set_xlabel("% of full fine-tuning", fontsize=8)
        # plain percentages at 1-2-5 steps (decades only over a wide range), not 10^k notation
        subs = (1.0,) if hi - lo + 2 * pad > 2 else (1.0, 2.0, 5.0)
        top.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
        top.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}%"))
        top.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    spread = " (error bars: ±1 std over seeds)" if frame["acc_std"].notna().any() else ""
    ax.set_title(f"Accuracy against trainable parameters{spread}", fontsize=10)
    ax.set_ylim(*ax.get_ylim())  # fix the limits before the labels are measured
    _place_labels(ax, spots)
    return save_both(fig, out_dir, "pet")


def plot_runs(run_dirs: Sequence[Path], out_dir: Path, kind: str = "all") -> list[Path]:
    """Write the chosen comparison figures (or all of them) of the given run folders as PNG and PDF."""
    from .collect import load_runs

    kinds = PLOT_KINDS if kind == "all" else (kind,)
    unknown = set(kinds) - set(PLOT_KINDS)
    if unknown:
        raise ValueError(f"unknown plot kind {sorted(unknown)}; expected one of {PLOT_KINDS} or all")
    runs = load_runs(run_dirs)
    makers = {"curves": plot_curves, "matrix": plot_matrices, "pet": plot_pet}
    return [path for k in kinds for path in makers[k](runs, out_dir)]
