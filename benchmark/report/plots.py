"""Accuracy-vs-task figures from an accuracy matrix (matplotlib, through pandas)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..metrics import average_accuracy_curve  # noqa: E402
from ..results import save_figure  # noqa: E402


def plot_accuracy_vs_task(R: Sequence[Sequence[float]], task_names: Sequence[str], title: str, path: Path) -> Path:
    """Left: mean accuracy over the tasks seen so far after each task. Right: each task's accuracy over time
    (from the task's own training on), so forgetting shows as a falling line."""
    T = len(R)
    steps = [f"T{i}" for i in range(T)]
    fig, (ax_avg, ax_tasks) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    pd.Series(average_accuracy_curve(R), index=range(T)).plot(ax=ax_avg, marker="o", color="black")
    ax_avg.set_title("average accuracy on tasks seen so far")
    per_task = pd.DataFrame(
        {f"task {j}: {task_names[j]}": [R[i][j] if i >= j else None for i in range(T)] for j in range(T)}
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
